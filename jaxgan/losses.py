"""GAN losses on discriminator logits, built on optax's sigmoid cross-entropy.

The article uses `nn.BCELoss` on a sigmoid output; on logits the same loss is
computed without the sigmoid's saturation (BCELoss clamps log() at -100 instead).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def bce(logits_B: jax.Array, target: float) -> jax.Array:
    """Mean binary cross-entropy of sigmoid(logits) against a constant target."""
    return jnp.mean(optax.sigmoid_binary_cross_entropy(logits_B, jnp.full_like(logits_B, target)))


def discriminator_loss(
    real_logits_B: jax.Array, fake_logits_B: jax.Array, real_target: float = 1.0, fake_target: float = 0.0
) -> jax.Array:
    """BCE(D(x), real) + BCE(D(G(z)), fake), each a batch mean, as the article sums them."""
    return bce(real_logits_B, real_target) + bce(fake_logits_B, fake_target)


def generator_loss(
    fake_logits_B: jax.Array, kind: str = "non_saturating", real_target: float = 1.0, fake_target: float = 0.0
) -> jax.Array:
    """The generator's loss on D(G(z)).

    non_saturating (the article): minimise BCE(D(G(z)), real), i.e. -log D(G(z)).
    minimax (Goodfellow et al.'s original): minimise -BCE(D(G(z)), fake), i.e. log(1 - D(G(z))).
    """
    if kind == "non_saturating":
        return bce(fake_logits_B, real_target)
    if kind == "minimax":
        return -bce(fake_logits_B, fake_target)
    raise ValueError(f"unknown generator loss {kind!r}; choose non_saturating or minimax.")
