"""The article's step, pure: `TrainState` (one pytree) and one step of a `jaxgan.gan.GAN`.

No I/O here. A step is the article's: D on real images against the real target
and on G(fresh noise) against the fake target, one Adam step on D; then G on
fresh noise against the real target through the updated D, one Adam step on G.
Dropout in D is active in both halves, as in the article (D never leaves train mode).

The same jitted step trains any `GAN`: other networks, other losses (`jaxgan.losses`),
class labels, a gradient penalty and several D updates per G update. How a step
gets its batches, epoch by epoch and over devices, is `jaxgan.epochs`; the GAN a
config describes, `jaxgan.build`.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from gancore import reporting
from jaxgan import losses
from jaxgan.gan import GAN
from jaxgan.models import SpectralNormed

Params = Any
Metrics = dict[str, jax.Array]


@struct.dataclass
class TrainState:
    step: jax.Array
    g_params: Params
    d_params: Params
    g_opt_state: optax.OptState
    d_opt_state: optax.OptState
    key: jax.Array
    gan: GAN = struct.field(pytree_node=False)
    ema_params: Params | None = None  # G's EMA when gan.ema_decay > 0; None keeps the article's pytree
    d_stats: Params = None  # D's "batch_stats" (spectral norm's power-iteration vectors); None: it has none


def _given_params(drawn: Params, given: Params, which: str) -> Params:
    """`given` as float32 arrays, after checking it has `drawn`'s layers and shapes."""
    want = {jax.tree_util.keystr(p): x.shape for p, x in jax.tree_util.tree_leaves_with_path(drawn)}
    got = {jax.tree_util.keystr(p): jnp.shape(x) for p, x in jax.tree_util.tree_leaves_with_path(given)}
    for name in sorted(want.keys() | got.keys()):
        if want.get(name) != got.get(name):
            needs = want.get(name, "no such entry")
            raise ValueError(f"{which} params{name} is {got.get(name, 'missing')}; the model needs {needs}.")
    return jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), given)


def _labels(gan: GAN, labels_B: jax.Array | None) -> dict:
    """The `labels_B` keyword of a conditional GAN's networks ({} for an unconditional one)."""
    if not gan.num_classes:
        return {}
    if labels_B is None:
        raise ValueError(f"this GAN is conditional (num_classes={gan.num_classes}); pass the labels of the batch.")
    return {"labels_B": labels_B}


def create_train_state(
    gan: GAN,
    key: jax.Array,
    g_params: Params | None = None,
    d_params: Params | None = None,
    g_ema_params: Params | None = None,
    d_stats: Params | None = None,
) -> TrainState:
    """A fresh state; the params given replace the drawn ones (e.g. weights converted from torch, or
    what `jaxgan.fit.load_final_params` returns: G's EMA and D's spectral-norm stats included)."""
    g_key, d_key, train_key = jax.random.split(key, 3)
    label = _labels(gan, jnp.zeros((1,), jnp.int32)) if gan.num_classes else {}
    drawn_g = gan.generator.init(g_key, jnp.zeros((1, gan.latent_dim)), **label)["params"]
    d_variables = gan.discriminator.init(d_key, jnp.zeros((1, gan.data_dim)), **label, train=False)
    drawn_d = d_variables["params"]
    g_params = drawn_g if g_params is None else _given_params(drawn_g, g_params, "generator")
    d_params = drawn_d if d_params is None else _given_params(drawn_d, d_params, "discriminator")
    drawn_stats = d_variables.get("batch_stats")
    if d_stats is not None and drawn_stats is not None:
        drawn_stats = _given_params(drawn_stats, d_stats, "discriminator stats")
    ema = g_params if g_ema_params is None else _given_params(drawn_g, g_ema_params, "generator EMA")
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        g_params=g_params,
        d_params=d_params,
        g_opt_state=gan.g_tx.init(g_params),
        d_opt_state=gan.d_tx.init(d_params),
        key=train_key,
        gan=gan,
        # A copy: the donated state must not hold one buffer twice.
        ema_params=jax.tree.map(jnp.copy, ema) if gan.ema_decay else None,
        d_stats=drawn_stats,
    )


def generate(gan: GAN, g_params: Params, z_BxZ: jax.Array, labels_B: jax.Array | None = None) -> jax.Array:
    """G(z): images flattened to [B, data_dim], in [-1, 1] (a conditional G's labels default to the classes in turn)."""
    if gan.num_classes and labels_B is None:
        labels_B = reporting.classes_in_turn(gan.num_classes, z_BxZ.shape[0])
    return gan.generator.apply({"params": g_params}, z_BxZ, **_labels(gan, labels_B))


def init_train_state(gan: GAN, seed: int, prng_impl: str = "threefry2x32", given: dict | None = None) -> TrainState:
    """`create_train_state` from the key of `seed` as one compiled program (op by op it is dozens);
    `given`: its params keywords (None: the drawn ones).

    A spectrally normalised D is still drawn op by op: its init divides each kernel by a power
    iteration's estimate, which rounds differently once fused, and a seed keeps its params.
    """
    if isinstance(gan.discriminator, SpectralNormed):
        return create_train_state(gan, jax.random.key(seed, impl=prng_impl), **(given or {}))
    return _compiled_init(gan, prng_impl, given or {}, np.uint32(seed))


# The seed is traced (as uint32, which keeps every seed's key bits): one program for every seed.
@functools.partial(jax.jit, static_argnums=(0, 1))
def _compiled_init(gan: GAN, prng_impl: str, given: dict, seed: jax.Array) -> TrainState:
    return create_train_state(gan, jax.random.key(seed, impl=prng_impl), **given)


# One compiled program a batch shape (the sample grid, the interpolation strip) instead of one an operation.
generate_jit = jax.jit(generate, static_argnums=0)


def discriminate(
    gan: GAN,
    d_params: Params,
    x_BxD: jax.Array,
    dropout_key: jax.Array | None,
    labels_B: jax.Array | None = None,
    d_stats: Params = None,
    update_stats: bool = False,
):
    """D's logits; dropout is active when a key is given, off when it is None. `d_stats`: D's
    "batch_stats", read as they are; with `update_stats`, (logits, the stats this pass advanced)."""
    rngs = None if dropout_key is None else {"dropout": dropout_key}
    variables = {"params": d_params} | ({} if d_stats is None else {"batch_stats": d_stats})
    mutable = ["batch_stats"] if update_stats and d_stats is not None else False
    out = gan.discriminator.apply(variables, x_BxD, **_labels(gan, labels_B), train=dropout_key is not None, rngs=rngs, mutable=mutable)
    if not update_stats:
        return out
    return (out[0], out[1]["batch_stats"]) if mutable else (out, None)


def d_loss_fn(d_params, gan: GAN, x_real_BxD, x_fake_BxD, dropout_key, labels_B=None, gp_key=None, d_stats=None, step=None):
    """D's loss on a real and a fake batch (the fakes drawn for the real batch's labels), plus the
    gradient penalty when `gan.gp_weight` > 0 (then `gp_key` draws its mixing weights and dropout)
    and R1 when `gan.r1_weight` > 0 (through the real pass's dropout mask: the D it penalises; with
    `gan.r1_every` = k > 1, only when `step` is divisible by k, k times as heavy).
    With `gan.one_d_pass`, one D call over both batches stacked (`_stacked_pass`) in place of two.
    Returns (loss, (metrics, d_stats as the real pass advanced them)); the other passes read `d_stats`."""
    if gan.one_d_pass:
        real_logits_B, fake_logits_B, new_stats, real_critic = _stacked_pass(gan, d_params, x_real_BxD, x_fake_BxD, dropout_key, labels_B, d_stats)
    else:
        real_key, fake_key = (None, None) if dropout_key is None else jax.random.split(dropout_key)
        real_logits_B, new_stats = discriminate(gan, d_params, x_real_BxD, real_key, labels_B, d_stats, update_stats=True)
        fake_logits_B = discriminate(gan, d_params, x_fake_BxD, fake_key, labels_B, d_stats)
        real_critic = lambda x_BxD: discriminate(gan, d_params, x_BxD, real_key, labels_B, d_stats)
    loss = gan.d_loss(real_logits_B, fake_logits_B)
    if gan.gp_weight:
        if gp_key is None:
            raise ValueError("this GAN has a gradient penalty (gp_weight > 0); pass gp_key, the key of its mixing weights.")
        mix_key, gp_dropout_key = jax.random.split(gp_key)
        gp_dropout_key = None if dropout_key is None else gp_dropout_key
        critic = lambda x_BxD: discriminate(gan, d_params, x_BxD, gp_dropout_key, labels_B, d_stats)
        loss = loss + gan.gp_weight * losses.gradient_penalty(critic, x_real_BxD, x_fake_BxD, mix_key)
    if gan.r1_weight:
        r1 = lambda: gan.r1_weight * gan.r1_every * losses.r1_penalty(real_critic, x_real_BxD)
        if gan.r1_every == 1:
            loss = loss + r1()
        elif step is None:
            raise ValueError(f"this GAN applies R1 every {gan.r1_every} steps (r1_every); pass step, the number of this step.")
        else:
            # Lazy R1: the other steps skip the penalty's double backward pass at run time. Both branches in
            # the type `loss + r1()` would have (R1, a gradient in the images, takes their dtype; a custom
            # D's logits, and so the loss, may be bfloat16).
            dtype = jnp.result_type(loss, x_real_BxD)
            loss = loss + jax.lax.cond(step % gan.r1_every == 0, lambda: r1().astype(dtype), lambda: jnp.zeros((), dtype))
    return loss, ({"d_real": jnp.mean(jax.nn.sigmoid(real_logits_B)), "d_fake": jnp.mean(jax.nn.sigmoid(fake_logits_B))}, new_stats)


def _stacked_pass(gan: GAN, d_params, x_real_BxD, x_fake_BxD, dropout_key, labels_B, d_stats):
    """`gan.one_d_pass`: D once over [real; fake] (labels stacked alike), one dropout draw over the 2B rows.
    Returns (real_logits_B, fake_logits_B, d_stats advanced once, R1's critic: the real rows of the same pass).
    Spectral norm's power iteration runs from the stored u in every pass, so both halves see the sigma
    the two passes saw, and u advances once per D update as before."""
    B = x_real_BxD.shape[0]
    labels_2B = None if labels_B is None else jnp.concatenate([labels_B, labels_B])

    def stacked(x_BxD, update_stats=False):
        x_2BxD = jnp.concatenate([x_BxD, x_fake_BxD])
        return discriminate(gan, d_params, x_2BxD, dropout_key, labels_2B, d_stats, update_stats=update_stats)

    logits_2B, new_stats = stacked(x_real_BxD, update_stats=True)
    # R1 penalises the D that scored the reals: the same rows of the same dropout mask.
    return logits_2B[:B], logits_2B[B:], new_stats, lambda x_BxD: stacked(x_BxD)[:B]


def g_loss_fn(g_params, d_params, gan: GAN, z_BxZ, dropout_key, labels_B=None, d_stats=None) -> jax.Array:
    fake_logits_B = discriminate(gan, d_params, generate(gan, g_params, z_BxZ, labels_B), dropout_key, labels_B, d_stats)
    return gan.g_loss(fake_logits_B)


def d_update(state: TrainState, x_real_BxD, z_BxZ, dropout_key, labels_B=None, gp_key=None) -> tuple[TrainState, jax.Array, Metrics]:
    """One Adam step of D on a real batch and G(z); the step counter is left alone."""
    gan = state.gan
    # The article does not detach G(z) here; D's gradients are the same either way.
    x_fake_BxD = jax.lax.stop_gradient(generate(gan, state.g_params, z_BxZ, labels_B))
    (d_loss, (d_metrics, d_stats)), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(
        state.d_params, gan, x_real_BxD, x_fake_BxD, dropout_key, labels_B, gp_key, state.d_stats, state.step
    )
    d_updates, d_opt_state = gan.d_tx.update(d_grads, state.d_opt_state, state.d_params)
    d_params = optax.apply_updates(state.d_params, d_updates)
    return state.replace(d_params=d_params, d_opt_state=d_opt_state, d_stats=d_stats), d_loss, d_metrics


def g_update(state: TrainState, z_BxZ, dropout_key, labels_B=None) -> tuple[TrainState, jax.Array]:
    """One Adam step of G through the current D (its stats as they are); the step counter is left alone."""
    gan = state.gan
    g_loss, g_grads = jax.value_and_grad(g_loss_fn)(state.g_params, state.d_params, gan, z_BxZ, dropout_key, labels_B, state.d_stats)
    g_updates, g_opt_state = gan.g_tx.update(g_grads, state.g_opt_state, state.g_params)
    state = state.replace(g_params=optax.apply_updates(state.g_params, g_updates), g_opt_state=g_opt_state)
    return ema_update(state), g_loss


def ema_update(state: TrainState) -> TrainState:
    """G's EMA after this step's G update: a copy of G before step `ema_start`, then
    decay * EMA + (1 - decay) * G. Without an EMA (the article) the state is returned as it is."""
    if state.ema_params is None:
        return state
    weight = jnp.where(state.step < state.gan.ema_start, 1.0, 1.0 - state.gan.ema_decay)
    return state.replace(ema_params=optax.incremental_update(state.g_params, state.ema_params, weight))


def update(
    state: TrainState,
    x_real_BxD: jax.Array,
    z_d_BxZ: jax.Array,
    z_g_BxZ: jax.Array,
    d_dropout_key: jax.Array | None,
    g_dropout_key: jax.Array | None,
    labels_B: jax.Array | None = None,
    gp_key: jax.Array | None = None,
) -> tuple[TrainState, Metrics]:
    """The article's step on given images and noise (dropout off where a key is None): D, then G.

    Tests call this with the same numbers PyTorch gets.
    """
    state, d_loss, d_metrics = d_update(state, x_real_BxD, z_d_BxZ, d_dropout_key, labels_B, gp_key)
    state, g_loss = g_update(state, z_g_BxZ, g_dropout_key, labels_B)
    return state.replace(step=state.step + 1), {"d_loss": d_loss, "g_loss": g_loss, **d_metrics}


def step_keys(state: TrainState) -> tuple[jax.Array, jax.Array]:
    """(noise key, shuffle key) of this step: a function of the run's key and the step alone,
    so a resumed run draws exactly what an uninterrupted one would."""
    noise_base, shuffle_base = jax.random.split(state.key)
    return jax.random.fold_in(noise_base, state.step), jax.random.fold_in(shuffle_base, state.step)


def along_batch(x: jax.Array, batch_sharding: jax.sharding.Sharding | None) -> jax.Array:
    """`x` split along its first axis as `batch_sharding` says (unchanged when None)."""
    return x if batch_sharding is None else jax.lax.with_sharding_constraint(x, batch_sharding)


def step_on_batches(state: TrainState, x_real_KxBxD: jax.Array, labels_KxB: jax.Array | None, batch_sharding=None):
    """`gan.d_steps` = K D updates, the k-th on batch k, then one G update, on noise from
    `step_keys`; with `batch_sharding`, the noise is split along the batch as the images are."""
    gan = state.gan
    noise_key = step_keys(state)[0]
    # split(key, 5)[:4] == split(key, 4): the article's step keeps the keys it always had.
    z_d_key, z_g_key, d_drop_key, g_drop_key, gp_key = jax.random.split(noise_key, 5)
    gp_key = gp_key if gan.gp_weight else None
    batch_labels = lambda k: None if labels_KxB is None else labels_KxB[k]
    shape = (x_real_KxBxD.shape[1], gan.latent_dim)
    # Partitionable threefry: each device draws its own rows of the very numbers one device would.
    z_g_BxZ = along_batch(jax.random.normal(z_g_key, shape), batch_sharding)
    if gan.d_steps == 1:  # the article's step: no scan of one, keys as they always were
        z_d_BxZ = along_batch(jax.random.normal(z_d_key, shape), batch_sharding)
        return update(state, x_real_KxBxD[0], z_d_BxZ, z_g_BxZ, d_drop_key, g_drop_key, batch_labels(0), gp_key)

    def d_step(state, k):
        fold = lambda key: None if key is None else jax.random.fold_in(key, k)
        z_d_BxZ = along_batch(jax.random.normal(fold(z_d_key), shape), batch_sharding)
        state, d_loss, d_metrics = d_update(state, x_real_KxBxD[k], z_d_BxZ, fold(d_drop_key), batch_labels(k), fold(gp_key))
        return state, {"d_loss": d_loss, **d_metrics}

    state, d_metrics = jax.lax.scan(d_step, state, jnp.arange(gan.d_steps))
    # The last D update's figures, as a d_steps=1 run reports its only one.
    d_metrics = jax.tree.map(lambda m_K: m_K[-1], d_metrics)
    state, g_loss = g_update(state, z_g_BxZ, g_drop_key, batch_labels(-1))
    return state.replace(step=state.step + 1), {"g_loss": g_loss, **d_metrics}


@functools.partial(jax.jit, donate_argnums=0)
def train_step(state: TrainState, x_real: jax.Array, labels: jax.Array | None = None) -> tuple[TrainState, Metrics]:
    """One step with fresh noise and dropout: x_real_BxD in [-1, 1] (or x_real_KxBxD, one
    batch per D update, when `gan.d_steps` = K > 1); labels_B (labels_KxB) for a conditional GAN."""
    if x_real.ndim == 2:
        x_real, labels = x_real[None], None if labels is None else labels[None]
    if x_real.shape[0] != state.gan.d_steps:
        raise ValueError(f"this GAN takes {state.gan.d_steps} batches a step (d_steps); got x_real of shape {x_real.shape}.")
    return step_on_batches(state, x_real, labels)
