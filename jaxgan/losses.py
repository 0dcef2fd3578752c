"""GAN losses on the discriminator's raw output, each a pure function.

Discriminator losses map (real_logits_B, fake_logits_B) to a scalar, generator
losses map fake_logits_B to a scalar. The published pairings:

- d_bce + g_non_saturating: the article (and Goodfellow et al.'s practical advice).
- d_bce + g_minimax: Goodfellow et al. 2014's original minimax game.
- d_least_squares + g_least_squares: LSGAN (Mao et al. 2017, a=0, b=c=1).
- d_hinge + g_hinge: Miyato et al. 2018 (SN-GAN) and SAGAN.
- d_wasserstein + g_wasserstein + gradient_penalty, several critic steps per
  generator step: WGAN-GP (Gulrajani et al. 2017).
- r1_penalty on real images beside any of them: Mescheder et al. 2018 (with d_bce
  and g_non_saturating, as StyleGAN uses it).

The BCE losses read D's output as a logit (the article uses `nn.BCELoss` on a
sigmoid output; on logits the same loss is computed without the sigmoid's
saturation, where BCELoss clamps log() at -100 instead). All the others read it
as an unbounded score: no sigmoid is applied.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from gancore import config


def bce(logits_B: jax.Array, target: float) -> jax.Array:
    """Mean binary cross-entropy of sigmoid(logits) against a constant target."""
    return jnp.mean(optax.sigmoid_binary_cross_entropy(logits_B, jnp.full_like(logits_B, target)))


def d_bce(real_logits_B: jax.Array, fake_logits_B: jax.Array, real_target: float = 1.0, fake_target: float = 0.0) -> jax.Array:
    """BCE(D(x), real) + BCE(D(G(z)), fake), each a batch mean, as the article sums them."""
    return bce(real_logits_B, real_target) + bce(fake_logits_B, fake_target)


def d_least_squares(real_logits_B: jax.Array, fake_logits_B: jax.Array) -> jax.Array:
    """LSGAN's critic: 0.5 mean((D(x) - 1)^2) + 0.5 mean(D(G(z))^2)."""
    return 0.5 * jnp.mean((real_logits_B - 1.0) ** 2) + 0.5 * jnp.mean(fake_logits_B**2)


def d_hinge(real_logits_B: jax.Array, fake_logits_B: jax.Array) -> jax.Array:
    """mean(relu(1 - D(x))) + mean(relu(1 + D(G(z))))."""
    return jnp.mean(jax.nn.relu(1.0 - real_logits_B)) + jnp.mean(jax.nn.relu(1.0 + fake_logits_B))


def d_wasserstein(real_logits_B: jax.Array, fake_logits_B: jax.Array) -> jax.Array:
    """mean(D(G(z))) - mean(D(x)): the negated Wasserstein-1 estimate; needs a Lipschitz constraint."""
    return jnp.mean(fake_logits_B) - jnp.mean(real_logits_B)


def g_non_saturating(fake_logits_B: jax.Array, real_target: float = 1.0) -> jax.Array:
    """BCE(D(G(z)), real), i.e. -log D(G(z)): the article's generator loss."""
    return bce(fake_logits_B, real_target)


def g_minimax(fake_logits_B: jax.Array, fake_target: float = 0.0) -> jax.Array:
    """-BCE(D(G(z)), fake), i.e. log(1 - D(G(z))): Goodfellow et al.'s original, which saturates."""
    return -bce(fake_logits_B, fake_target)


def g_least_squares(fake_logits_B: jax.Array) -> jax.Array:
    """LSGAN's generator: 0.5 mean((D(G(z)) - 1)^2)."""
    return 0.5 * jnp.mean((fake_logits_B - 1.0) ** 2)


def g_hinge(fake_logits_B: jax.Array) -> jax.Array:
    """-mean(D(G(z))): the hinge GAN's generator loss is not itself a hinge."""
    return -jnp.mean(fake_logits_B)


def g_wasserstein(fake_logits_B: jax.Array) -> jax.Array:
    """-mean(D(G(z)))."""
    return -jnp.mean(fake_logits_B)


def gradient_penalty(critic: Callable[[jax.Array], jax.Array], x_real_BxD: jax.Array, x_fake_BxD: jax.Array, key: jax.Array) -> jax.Array:
    """WGAN-GP's penalty, not yet multiplied by its weight lambda.

    Args:
      critic: maps [B, D] to [B] sample by sample (no batch statistics), so that the
        gradient of critic(x).sum() holds each sample's own input gradient.
      x_real_BxD, x_fake_BxD: the batches to interpolate between.
      key: draws the interpolation weights eps_B ~ U(0, 1), one per sample.

    Returns:
      mean_i (||d critic(x_hat)_i / d x_hat_i||_2 - 1)^2 at x_hat = eps x_real + (1 - eps) x_fake.
    """
    eps_Bx1 = jax.random.uniform(key, (x_real_BxD.shape[0], 1), dtype=x_real_BxD.dtype)
    x_hat_BxD = eps_Bx1 * x_real_BxD + (1.0 - eps_Bx1) * x_fake_BxD
    grads_BxD = jax.grad(lambda x: critic(x).sum())(x_hat_BxD)
    sq_norms_B = jnp.sum(grads_BxD**2, axis=-1)
    # sqrt's derivative is infinite at 0 (a critic flat at some x_hat, e.g. dead ReLUs): take it as 0 there.
    nonzero_B = sq_norms_B > 0
    norms_B = jnp.where(nonzero_B, jnp.sqrt(jnp.where(nonzero_B, sq_norms_B, 1.0)), 0.0)
    return jnp.mean((norms_B - 1.0) ** 2)


def r1_penalty(critic: Callable[[jax.Array], jax.Array], x_real_BxD: jax.Array) -> jax.Array:
    """R1 (Mescheder et al. 2018), not yet multiplied by its weight gamma.

    Args:
      critic: maps [B, D] to [B] sample by sample, as for `gradient_penalty`.
      x_real_BxD: the real batch, where D's input gradient is penalised.

    Returns:
      1/2 mean_i ||d critic(x)_i / d x_i||_2^2: D's loss gains gamma times this.
    """
    grads_BxD = jax.grad(lambda x: critic(x).sum())(x_real_BxD)
    return 0.5 * jnp.mean(jnp.sum(grads_BxD**2, axis=-1))


# By name, as gancore.config declares them (the names the flags take): d_<name> and g_<name> above.
D_LOSSES: dict[str, Callable[..., jax.Array]] = {name: globals()[f"d_{name}"] for name in config.D_LOSSES}
G_LOSSES: dict[str, Callable[..., jax.Array]] = {name: globals()[f"g_{name}"] for name in config.G_LOSSES}


@dataclasses.dataclass(frozen=True)
class Bound:
    """fn with keyword arguments bound, like functools.partial but equal (and hashing equal) when fn and kwargs are,
    so two GANs built from equal configs share one compiled step."""

    fn: Callable
    kwargs: tuple[tuple[str, Any], ...] = ()

    def __call__(self, *args):
        return self.fn(*args, **dict(self.kwargs))


def bind(fn: Callable, **kwargs) -> Callable:
    """fn itself when no kwargs are given, else a hashable Bound of fn and the sorted kwargs."""
    return Bound(fn, tuple(sorted(kwargs.items()))) if kwargs else fn


# The BCE targets each named loss reads; the others read none.
_TARGETS_READ = {"bce": ("real_target", "fake_target"), "non_saturating": ("real_target",), "minimax": ("fake_target",)}


def _named(table: dict[str, Callable], which: str, kind: str, real_target: float, fake_target: float) -> Callable:
    if kind not in table:
        raise ValueError(f"unknown {which} loss {kind!r}; choose one of {', '.join(table)}.")
    targets = {"real_target": real_target, "fake_target": fake_target}
    defaults = {"real_target": 1.0, "fake_target": 0.0}
    # Targets at their defaults stay unbound, so the article's GAN holds the plain functions.
    return bind(table[kind], **{t: targets[t] for t in _TARGETS_READ.get(kind, ()) if targets[t] != defaults[t]})


def d_loss_named(kind: str, real_target: float = 1.0, fake_target: float = 0.0) -> Callable:
    """D_LOSSES[kind], with the BCE targets bound where it reads them."""
    return _named(D_LOSSES, "discriminator", kind, real_target, fake_target)


def g_loss_named(kind: str, real_target: float = 1.0, fake_target: float = 0.0) -> Callable:
    """G_LOSSES[kind], with the BCE target bound where it reads one."""
    return _named(G_LOSSES, "generator", kind, real_target, fake_target)
