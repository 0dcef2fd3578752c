"""K runs' train states as one: each leaf stacked along a leading seed axis, one compiled epoch for all.

Member k of a stacked `TrainState` holds run k's params, optimiser states and key along axis 0
of each leaf; the step is one scalar, shared (the members take their steps together), so that a
branch on the step (lazy R1's `lax.cond`) stays a branch under `jax.vmap` instead of computing
both sides. Each member draws from its own key what the single run of its seed draws: weights,
shuffles, noise and dropout (`jaxgan.epochs.scan`, `step_at`, vmapped over the members).

A member whose params or losses stop being finite in an epoch is stopped: its update of that
epoch and of every later one is masked out, so its state stays at its last finite values
(the end of the epoch before) while the others go on. The program runs on one device.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from gancore import reporting
from jaxgan import epochs
from jaxgan.step import TrainState

# The leaves an update changes (the key never does: steps fold their number into it).
_TRAINED = ("g_params", "d_params", "g_opt_state", "d_opt_state", "ema_params", "d_stats")


def stack(states: list[TrainState]) -> TrainState:
    """The members' states (all at one step) as one stacked state."""
    # A copy of the step: the stacked state is donated to the epoch, the members' states are not.
    return jax.tree.map(lambda *xs: jnp.stack(xs), *[s.replace(step=None) for s in states]).replace(step=jnp.array(states[0].step))


def member(state: TrainState, k: int) -> TrainState:
    """Member k of a stacked state, as the single run of its seed holds it."""
    return jax.tree.map(lambda x: x[k], state.replace(step=None)).replace(step=state.step)


def _axes(state: TrainState) -> TrainState:
    """vmap's axes of a stacked state: 0 for every leaf but the shared step."""
    return jax.tree.map(lambda _: 0, state.replace(step=None))


def _finite(state: TrainState, metrics: dict) -> jax.Array:
    """Whether one member's params and every metric of its epoch are finite."""
    leaves = jax.tree.leaves((state.g_params, state.d_params, metrics))
    return jnp.all(jnp.stack([jnp.isfinite(x).all() for x in leaves]))


def _masked(old: TrainState, new: TrainState, alive_K: jax.Array, metrics: dict) -> tuple[TrainState, jax.Array]:
    """`new` for the members alive and finite after it, `old` for the others; and who is alive now."""
    alive_K = alive_K & jax.vmap(_finite, in_axes=(_axes(new), 0))(new, metrics)
    pick = lambda n, o: jnp.where(alive_K.reshape((-1,) + (1,) * (n.ndim - 1)), n, o)
    return new.replace(**{f: jax.tree.map(pick, getattr(new, f), getattr(old, f)) for f in _TRAINED}), alive_K


def _unrolled(state: TrainState, idx_KxDxB: jax.Array, images_NxD: jax.Array, labels_N: jax.Array | None):
    """One step of each member, written out one after the other in one program (not vmapped)."""
    outs = [epochs.step_at(member(state, k), idx_KxDxB[k], images_NxD, labels_N) for k in range(idx_KxDxB.shape[0])]
    return stack([s for s, _ in outs]), jax.tree.map(lambda *m: jnp.stack(m), *[m for _, m in outs])


def compile_epoch(like: TrainState, batch_size: int, per_step: bool = False, unrolled: bool = False):
    """`run(state, alive_K, images_NxD, labels_N) -> (state, alive_K, metrics_KxS)`: one epoch of every
    member of a stacked state shaped like `like`, stopped members masked; with `per_step`, one
    compiled call a step (`jaxgan.epochs.loop`'s way, for convolutions on the CPU), the same numbers.
    `unrolled` (with `per_step`): the members' steps written out one by one in the step's program
    instead of vmapped, where a vmapped convolution (a grouped one, a group a member) runs slowly."""
    axes = _axes(like)
    if not per_step:

        def epoch(state, alive_K, images_NxD, labels_N):
            scan = lambda s: epochs.scan(s, images_NxD, batch_size, labels_N)
            new, metrics = jax.vmap(scan, in_axes=(axes,), out_axes=(axes, 0))(state)
            return (*_masked(state, new, alive_K, metrics), metrics)

        return jax.jit(epoch, donate_argnums=0)

    shuffle = jax.jit(jax.vmap(epochs.shuffled_batches, in_axes=(axes, None, None)), static_argnums=(1, 2))
    vmapped = jax.vmap(epochs.step_at, in_axes=(axes, 0, None, None), out_axes=(axes, 0))
    step = jax.jit(_unrolled if unrolled else vmapped, donate_argnums=0)
    copy, mask = jax.jit(functools.partial(jax.tree.map, jnp.copy)), jax.jit(_masked, donate_argnums=1)

    def loop(state, alive_K, images_NxD, labels_N):
        start, idx_KxSxDxB = copy(state), shuffle(state, images_NxD.shape[0], batch_size)
        per_step = []
        for s in range(idx_KxSxDxB.shape[1]):
            state, metrics = step(state, idx_KxSxDxB[:, s], images_NxD, labels_N)
            per_step.append(metrics)
        metrics = jax.tree.map(lambda *m: jnp.stack(m, axis=1), *per_step)
        return (*mask(start, state, alive_K, metrics), metrics)

    return loop


class Stacked:
    """K members trained together: a stacked state on the default device, who is alive, the compiled epoch."""

    def __init__(self, states: list[TrainState], run_epoch, images_NxD, labels_N, steps_per_epoch: int):
        state = stack(states)
        # Every argument of the epoch committed to that one device, as a checkpoint's arrays are restored
        # (`load`): an uncommitted argument lowers to another program, which a resumed run compiled anew.
        self._sharding = jax.tree.leaves(state)[0].sharding
        self.state, self._run_epoch = self._put(state), run_epoch
        self.alive_K = self._put(jnp.ones(len(states), bool))
        self._images_NxD, self._labels_N = self._put(images_NxD), self._put(labels_N)
        self.steps_per_epoch = steps_per_epoch

    def _put(self, tree):
        return jax.device_put(tree, self._sharding)

    def load(self, state: TrainState, alive_K: np.ndarray) -> None:
        self.state, self.alive_K = self._put(state), self._put(jnp.asarray(alive_K))

    def train_epochs(self, k: int) -> tuple[list[list[dict[str, float]]], np.ndarray]:
        """k epochs: each epoch's metric means per member ([epoch][member]), and alive_ExK, who is alive
        after each epoch (a member's means of the epoch it stopped in are not finite)."""
        state, alive_K, per_epoch, alive = self.state, self.alive_K, [], []
        for _ in range(k):  # dispatched back to back; one device-to-host transfer at the end
            state, alive_K, metrics = self._run_epoch(state, alive_K, self._images_NxD, self._labels_N)
            per_epoch.append(metrics)
            alive.append(alive_K)
        per_epoch, alive_ExK = jax.device_get((per_epoch, jnp.stack(alive)))
        self.state, self.alive_K = state, alive_K
        # On the host and per member, as the single run averages its epoch.
        means = [[{key: float(np.mean(m[key][i])) for key in reporting.METRIC_KEYS} for i in range(len(alive_K))] for m in per_epoch]
        return means, alive_ExK

    def step(self) -> int:
        return int(jax.device_get(self.state.step))
