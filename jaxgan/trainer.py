"""jaxgan's side of `gancore.loop`: a `TrainState` on a mesh, its compiled epoch, and the run's config.json.

`fit` builds one `JaxTrainer` for a run; `jaxgan.seeds` one view a seed of its stacked state.
"""

from __future__ import annotations

import errno
import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np

from gancore import files, reporting, runs
from gancore.config import Config
from jaxgan import compiles, parallel
from jaxgan.gan import GAN
from jaxgan.step import TrainState, generate_jit

if TYPE_CHECKING:
    from jaxgan.checkpoint import Checkpointer


@jax.jit
def all_finite(tree) -> jax.Array:
    return jnp.all(jnp.stack([jnp.isfinite(x).all() for x in jax.tree.leaves(tree)]))


def run_record(config: Config, gan: GAN, image_shape: tuple[int, ...], *, dtype, prng_impl: str, dense: str, devices: int, custom: bool = False) -> dict:
    """config.json of a jaxgan run: the settings and the data's (`Config.run_record`), and what the GAN made of them."""
    return {
        **config.run_record("jax", image_shape, dtype=str(dtype or "float32"), prng=prng_impl, dense=dense),
        **({"beta1": None} if custom else {}),  # a custom GAN's Adam is its own, not the config's
        "num_classes": gan.num_classes,
        "devices": devices,
        "processes": jax.process_count(),
        # A custom GAN is described by what it is, not by the config's research fields.
        "model": _model(config, gan) if custom else None,
    }


def _model(config: Config, gan: GAN) -> str:
    """A custom GAN's description; when resuming a run saved with the earlier words for this same GAN
    (`GAN.earlier_description`), those words, so that runs saved before `GAN.describe` changed still resume."""
    if config.resume:
        try:
            saved = json.loads((Path(config.workdir) / "config.json").read_text())["model"]
        except (OSError, ValueError, KeyError, TypeError):  # runs.prepare_workdir refuses such a workdir in one sentence
            saved = None
        if saved == gan.earlier_description():
            return saved
    return gan.describe()


class JaxTrainer:
    """jaxgan's side of `gancore.loop`: a `TrainState` on the mesh and its compiled epoch."""

    def __init__(
        self,
        gan: GAN,
        state: TrainState,
        run_epoch,
        images_NxD,
        labels_N,
        image_shape: tuple[int, ...],
        steps_per_epoch: int,
        split: compiles.Split | None = None,
    ):
        self.gan, self.state, self._run_epoch, self._split = gan, state, run_epoch, split or compiles.Split()
        self._images_NxD, self._labels_N = images_NxD, labels_N
        self.image_shape, self.latent_dim, self.num_classes = image_shape, gan.latent_dim, gan.num_classes
        self.steps_per_epoch = steps_per_epoch
        self._step, self._warmed = 0, False

    def open_checkpointer(self, workdir: Path, keep: int) -> Checkpointer:
        from jaxgan.checkpoint import Checkpointer

        return Checkpointer(workdir, keep=keep)

    def snapshot(self) -> TrainState:
        return self.state

    def load(self, snapshot: TrainState) -> None:
        self.state, self._step = snapshot, int(jax.device_get(snapshot.step))

    def train_epochs(self, k: int) -> tuple[list[dict[str, float]], bool]:
        state, per_epoch = self.state, []
        self._split.mark()
        warming = None if self._warmed else self._warm_sampling()
        for _ in range(k):  # dispatched back to back: the host does not wait for the device here
            state, metrics = self._run_epoch(state, self._images_NxD, self._labels_N)
            per_epoch.append(metrics)
        # The call's one device-to-host transfer: every epoch's metrics, the step and the finiteness flag.
        per_epoch, self._step, finite = jax.device_get((per_epoch, state.step, all_finite((state.g_params, state.d_params))))
        self.state = state
        if warming is not None:
            warming.join()
        self._split.mark()
        return [{key: float(np.mean(m[key])) for key in reporting.METRIC_KEYS} for m in per_epoch], bool(finite)

    def _warm_sampling(self) -> threading.Thread:
        """Compiles G's program for the sample grid beside the first epoch's, instead of in the loop's way after it."""
        self._warmed = True
        z_NxZ, labels_N, _ = reporting.sample_grid_inputs(self.latent_dim, self.num_classes, seed=0)
        params = jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), self.sampling_params())  # shapes only: no transfer
        thread = threading.Thread(target=generate_jit, args=(self.gan, params, z_NxZ, labels_N), daemon=True)
        thread.start()
        return thread

    def step(self) -> int:
        return int(self._step)

    def sampling_params(self):
        """The generator's params that draw samples: G's EMA when the run keeps one, else G's."""
        return self.state.g_params if self.state.ema_params is None else self.state.ema_params

    def sample(self, z_NxZ: np.ndarray, labels_N: np.ndarray | None) -> jax.Array:
        # On this process's first device, from the replicated params' host copy; not waited for.
        return generate_jit(self.gan, jax.device_get(self.sampling_params()), z_NxZ, labels_N)

    def save_final(self, workdir: Path) -> None:
        self._save_params(workdir, "final_params")

    def save_best(self, workdir: Path) -> None:
        self._save_params(workdir, "best_params")

    def _save_params(self, workdir: Path, name: str) -> None:
        """WORKDIR/`name`/: G's and D's params (and G's EMA, D's spectral-norm stats), replacing the old
        folder only once complete."""
        final, tmp = (workdir / name).absolute(), (workdir / f".{name}.tmp").absolute()
        params = {"g_params": self.state.g_params, "d_params": self.state.d_params}
        if self.state.ema_params is not None:
            params["g_ema_params"] = self.state.ema_params
        if self.state.d_stats is not None:
            params["d_stats"] = self.state.d_stats
        import orbax.checkpoint as ocp

        try:
            with ocp.StandardCheckpointer() as checkpointer:
                # Host copies: the saved params restore on any devices, not only on this run's mesh.
                checkpointer.save(tmp, jax.device_get(params), force=True)
        except Exception as e:  # noqa: BLE001 - Orbax reports a full disk or a read-only folder in many forms
            raise OSError(errno.EIO, runs.first_line(e), str(final)) from None
        if parallel.is_main_process():
            files.replace_dir(tmp, final)
        parallel.wait_for_all(name.replace("_", "-"))
