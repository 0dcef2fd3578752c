"""How an epoch is run: shuffled on the device, its steps scanned or called one by one, on a mesh.

One entry: `compile(mesh, batch_size, per_step=False)` returns
`run(state, images_NxD, labels_N=None) -> (state, metrics per step)`, one epoch on the
devices of `mesh` (`jaxgan.parallel.data_mesh`; one device is a mesh of one).
By default the epoch's steps are one `lax.scan`, one compiled call an epoch; `per_step`
makes one compiled call a step instead (the same numbers), for networks XLA runs slowly
inside a loop, such as convolutions on the CPU (about 10x slower in a `lax.scan` there).

Without a mesh: `run(state, images_NxD, batch_size, labels_N=None)` is the scanned
epoch compiled for the default device, and `scan`, `loop`, `step_at` and
`shuffled_batches` are its parts.
`images_NxD` are uint8 pixels resident on the device, scaled to [-1, 1] inside the step;
`labels_N` the class of each (a conditional GAN needs them). The images left over by
the last whole step are dropped.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from gancore.data import steps_per_epoch, to_unit_range
from jaxgan import parallel
from jaxgan.step import Metrics, TrainState, along_batch, step_keys, step_on_batches


def shuffled_batches(state: TrainState, n_images: int, batch_size: int) -> jax.Array:
    """idx_SxKxB: this epoch's shuffled image indices, S steps of K = `gan.d_steps` batches,
    drawn from the step at its start."""
    k = state.gan.d_steps
    n_steps = steps_per_epoch(n_images, batch_size, k)
    perm_N = jax.random.permutation(step_keys(state)[1], n_images)
    return perm_N[: n_steps * k * batch_size].reshape(n_steps, k, batch_size)


def step_at(state: TrainState, idx_KxB: jax.Array, images_NxD: jax.Array, labels_N: jax.Array | None = None, batch_sharding=None) -> tuple[TrainState, Metrics]:
    """One step on the images (and labels) at `idx_KxB`, gathered on the device.

    With `batch_sharding`, each batch and its noise are split along the batch axis:
    every device gathers and trains on its own rows.
    """
    if state.gan.num_classes and labels_N is None:
        raise ValueError("this GAN is conditional; pass labels_N.")
    per_batch = None if batch_sharding is None else NamedSharding(batch_sharding.mesh, P(None, *batch_sharding.spec))
    idx_KxB = along_batch(idx_KxB, per_batch)
    labels_KxB = labels_N[idx_KxB] if state.gan.num_classes else None
    return step_on_batches(state, to_unit_range(images_NxD[idx_KxB]), labels_KxB, batch_sharding)


def scan(
    state: TrainState, images_NxD: jax.Array, batch_size: int, labels_N: jax.Array | None = None, batch_sharding=None, unroll: int = 1
) -> tuple[TrainState, Metrics]:
    """One epoch, `step_at` under `lax.scan` (not compiled: `run` and `compile` compile it); `unroll` steps
    per loop iteration (the same steps: XLA may fuse across them, at the cost of a longer compile)."""
    body = functools.partial(step_at, images_NxD=images_NxD, labels_N=labels_N, batch_sharding=batch_sharding)
    return jax.lax.scan(body, state, shuffled_batches(state, images_NxD.shape[0], batch_size), unroll=unroll)


_shuffled_batches = jax.jit(shuffled_batches, static_argnums=(1, 2))


def loop(step, state: TrainState, images_NxD: jax.Array, batch_size: int, labels_N: jax.Array | None = None):
    """The epoch `scan` computes, as one call of `step` (`step_at` compiled) a step; metrics stacked per step."""
    idx_SxKxB = _shuffled_batches(state, images_NxD.shape[0], batch_size)
    per_step = []
    for s in range(idx_SxKxB.shape[0]):
        state, metrics = step(state, idx_SxKxB[s], images_NxD, labels_N)
        per_step.append(metrics)
    return state, jax.tree.map(lambda *m: jnp.stack(m), *per_step)


@functools.partial(jax.jit, static_argnames=("batch_size", "unroll"), donate_argnums=0)
def run(state: TrainState, images_NxD: jax.Array, batch_size: int, labels_N: jax.Array | None = None, unroll: int = 1) -> tuple[TrainState, Metrics]:
    """One epoch as one compiled call on the default device: the new state and each metric per step, shape [steps]."""
    return scan(state, images_NxD, batch_size, labels_N, unroll=unroll)


@functools.cache
def compile(mesh: Mesh, batch_size: int, per_step: bool = False, unroll: int = 1):
    """`run(state, images_NxD, labels_N=None) -> (state, metrics per step)`: one epoch compiled for `mesh`.

    State and images come in replicated, each batch is split along the mesh's data axis,
    and the new state and metrics come out replicated. With `per_step`, `loop` over
    `step_at` compiled for `mesh` (the same numbers); `unroll`: `scan`'s.
    """
    whole, batch_sharding = parallel.replicated(mesh), NamedSharding(mesh, P(parallel.DATA))
    if per_step:
        step = jax.jit(
            functools.partial(step_at, batch_sharding=batch_sharding),
            in_shardings=whole,
            out_shardings=(whole, whole),
            donate_argnums=0,
        )
        return lambda state, images_NxD, labels_N=None: loop(step, state, images_NxD, batch_size, labels_N)

    def epoch(state, images_NxD, labels_N=None):
        return scan(state, images_NxD, batch_size, labels_N, batch_sharding, unroll)

    return jax.jit(epoch, in_shardings=whole, out_shardings=(whole, whole), donate_argnums=0)
