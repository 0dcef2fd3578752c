"""The pure training core: one `TrainState` pytree and the article's step.

No I/O here. A step is the article's: D on real images against the real target
and on G(fresh noise) against the fake target, one Adam step on D; then G on
fresh noise against the real target through the updated D, one Adam step on G.
Dropout in D is active in both halves, as in the article (D never leaves train mode).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxgan import losses
from jaxgan.data import to_unit_range
from jaxgan.models import Discriminator, Generator

Params = Any
Metrics = dict[str, jax.Array]


@dataclasses.dataclass(frozen=True)
class GAN:
    """Everything static about a run: the two networks, their optimisers and the losses.

    Plain values only, so two GANs built from equal configs compare equal and a
    second run in the same process reuses the compiled step.
    """

    generator: Generator
    discriminator: Discriminator
    lr: float = 2e-4
    latent_dim: int = 128
    data_dim: int = 784
    real_target: float = 1.0
    fake_target: float = 0.0
    g_loss: str = "non_saturating"

    @property
    def g_tx(self) -> optax.GradientTransformation:
        return optax.adam(self.lr)

    @property
    def d_tx(self) -> optax.GradientTransformation:
        return optax.adam(self.lr)


def make_gan(config, data_dim: int = 784, dtype: jnp.dtype | None = None, precision=None) -> GAN:
    """The GAN a `jaxgan.config.Config` describes (the article's by default)."""
    return GAN(
        generator=Generator(tuple(config.g_features), data_dim, dtype, precision),
        discriminator=Discriminator(tuple(config.d_features), config.dropout, dtype, precision),
        lr=config.lr,
        latent_dim=config.latent_dim,
        data_dim=data_dim,
        real_target=config.real_target,
        fake_target=config.fake_target,
        g_loss=config.g_loss,
    )


@struct.dataclass
class TrainState:
    step: jax.Array
    g_params: Params
    d_params: Params
    g_opt_state: optax.OptState
    d_opt_state: optax.OptState
    key: jax.Array
    gan: GAN = struct.field(pytree_node=False)


def _given_params(drawn: Params, given: Params, which: str) -> Params:
    """`given` as float32 arrays, after checking it has `drawn`'s layers and shapes."""
    want = {jax.tree_util.keystr(p): x.shape for p, x in jax.tree_util.tree_leaves_with_path(drawn)}
    got = {jax.tree_util.keystr(p): jnp.shape(x) for p, x in jax.tree_util.tree_leaves_with_path(given)}
    for name in sorted(want.keys() | got.keys()):
        if want.get(name) != got.get(name):
            needs = want.get(name, "no such entry")
            raise ValueError(f"{which} params{name} is {got.get(name, 'missing')}; the model needs {needs}.")
    return jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), given)


def create_train_state(gan: GAN, key: jax.Array, g_params: Params | None = None, d_params: Params | None = None) -> TrainState:
    """A fresh state; `g_params`/`d_params`, when given, replace the drawn weights (e.g. weights converted from torch)."""
    g_key, d_key, train_key = jax.random.split(key, 3)
    drawn_g = gan.generator.init(g_key, jnp.zeros((1, gan.latent_dim)))["params"]
    drawn_d = gan.discriminator.init(d_key, jnp.zeros((1, gan.data_dim)), train=False)["params"]
    g_params = drawn_g if g_params is None else _given_params(drawn_g, g_params, "generator")
    d_params = drawn_d if d_params is None else _given_params(drawn_d, d_params, "discriminator")
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        g_params=g_params,
        d_params=d_params,
        g_opt_state=gan.g_tx.init(g_params),
        d_opt_state=gan.d_tx.init(d_params),
        key=train_key,
        gan=gan,
    )


def generate(gan: GAN, g_params: Params, z_BxZ: jax.Array) -> jax.Array:
    """G(z): images flattened to [B, data_dim], in [-1, 1]."""
    return gan.generator.apply({"params": g_params}, z_BxZ)


def discriminate(gan: GAN, d_params: Params, x_BxD: jax.Array, dropout_key: jax.Array | None) -> jax.Array:
    """D's logits; dropout is active when a key is given, off when it is None."""
    rngs = None if dropout_key is None else {"dropout": dropout_key}
    return gan.discriminator.apply({"params": d_params}, x_BxD, train=dropout_key is not None, rngs=rngs)


def d_loss_fn(d_params, gan: GAN, x_real_BxD, x_fake_BxD, dropout_key) -> tuple[jax.Array, Metrics]:
    real_key, fake_key = (None, None) if dropout_key is None else jax.random.split(dropout_key)
    real_logits_B = discriminate(gan, d_params, x_real_BxD, real_key)
    fake_logits_B = discriminate(gan, d_params, x_fake_BxD, fake_key)
    loss = losses.discriminator_loss(real_logits_B, fake_logits_B, gan.real_target, gan.fake_target)
    return loss, {"d_real": jnp.mean(jax.nn.sigmoid(real_logits_B)), "d_fake": jnp.mean(jax.nn.sigmoid(fake_logits_B))}


def g_loss_fn(g_params, d_params, gan: GAN, z_BxZ, dropout_key) -> jax.Array:
    fake_logits_B = discriminate(gan, d_params, generate(gan, g_params, z_BxZ), dropout_key)
    return losses.generator_loss(fake_logits_B, gan.g_loss, gan.real_target, gan.fake_target)


def update(
    state: TrainState,
    x_real_BxD: jax.Array,
    z_d_BxZ: jax.Array,
    z_g_BxZ: jax.Array,
    d_dropout_key: jax.Array | None,
    g_dropout_key: jax.Array | None,
) -> tuple[TrainState, Metrics]:
    """The article's step on given images and noise (dropout off where a key is None).

    Tests call this with the same numbers PyTorch gets.
    """
    gan = state.gan
    # The article does not detach G(z) here; D's gradients are the same either way.
    x_fake_BxD = jax.lax.stop_gradient(generate(gan, state.g_params, z_d_BxZ))
    (d_loss, d_metrics), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(
        state.d_params, gan, x_real_BxD, x_fake_BxD, d_dropout_key
    )
    d_updates, d_opt_state = gan.d_tx.update(d_grads, state.d_opt_state, state.d_params)
    d_params = optax.apply_updates(state.d_params, d_updates)

    g_loss, g_grads = jax.value_and_grad(g_loss_fn)(state.g_params, d_params, gan, z_g_BxZ, g_dropout_key)
    g_updates, g_opt_state = gan.g_tx.update(g_grads, state.g_opt_state, state.g_params)
    g_params = optax.apply_updates(state.g_params, g_updates)

    new_state = state.replace(
        step=state.step + 1, g_params=g_params, d_params=d_params, g_opt_state=g_opt_state, d_opt_state=d_opt_state
    )
    return new_state, {"d_loss": d_loss, "g_loss": g_loss, **d_metrics}


def _step_keys(state: TrainState) -> tuple[jax.Array, jax.Array]:
    """(noise key, shuffle key) of this step: a function of the run's key and the step alone,
    so a resumed run draws exactly what an uninterrupted one would."""
    noise_base, shuffle_base = jax.random.split(state.key)
    return jax.random.fold_in(noise_base, state.step), jax.random.fold_in(shuffle_base, state.step)


def _along_batch(x: jax.Array, batch_sharding: jax.sharding.Sharding | None) -> jax.Array:
    """`x` split along its first axis as `batch_sharding` says (unchanged when None)."""
    return x if batch_sharding is None else jax.lax.with_sharding_constraint(x, batch_sharding)


def _train_step(state: TrainState, x_real_BxD: jax.Array, batch_sharding=None) -> tuple[TrainState, Metrics]:
    z_d_key, z_g_key, d_drop_key, g_drop_key = jax.random.split(_step_keys(state)[0], 4)
    shape = (x_real_BxD.shape[0], state.gan.latent_dim)
    # Partitionable threefry: each device draws its own rows of the very numbers one device would.
    z_d_BxZ = _along_batch(jax.random.normal(z_d_key, shape), batch_sharding)
    z_g_BxZ = _along_batch(jax.random.normal(z_g_key, shape), batch_sharding)
    return update(state, x_real_BxD, z_d_BxZ, z_g_BxZ, d_drop_key, g_drop_key)


train_step = jax.jit(_train_step, donate_argnums=0)
train_step.__doc__ = """(state, x_real_BxD in [-1, 1]) -> (state, metrics): one step with fresh noise and dropout."""


def epoch_batches(state: TrainState, n_images: int, batch_size: int) -> jax.Array:
    """idx_NbxB: this epoch's shuffled image indices, drawn from the step at its start;
    the last partial batch is dropped."""
    n_batches = n_images // batch_size
    perm_N = jax.random.permutation(_step_keys(state)[1], n_images)
    return perm_N[: n_batches * batch_size].reshape(n_batches, batch_size)


def scan_epoch(
    state: TrainState, images_NxD: jax.Array, batch_size: int, batch_sharding: jax.sharding.Sharding | None = None
) -> tuple[TrainState, Metrics]:
    """One epoch: shuffle on the device, `lax.scan` over the batches (not jitted: see `train_epoch`).

    `images_NxD` are uint8 pixels resident on the device, scaled to [-1, 1] inside the step.
    With `batch_sharding` (`jaxgan.parallel`), each batch and its noise are split along
    the batch axis: every device gathers and trains on its own rows.
    Returns the new state and each metric per step, shape [n_batches].
    """

    def body(state, idx_B):
        x_real_BxD = to_unit_range(images_NxD[_along_batch(idx_B, batch_sharding)])
        return _train_step(state, x_real_BxD, batch_sharding)

    return jax.lax.scan(body, state, epoch_batches(state, images_NxD.shape[0], batch_size))


train_epoch = jax.jit(scan_epoch, static_argnames=("batch_size", "batch_sharding"), donate_argnums=0)
train_epoch.__doc__ = """(state, images_NxD uint8, batch_size) -> (state, metrics per step): one epoch as one compiled call."""
