"""The edge of jaxgan: load data, train epoch by epoch, write what a person reads.

Writes into the workdir: config.json, metrics.jsonl (one object per epoch),
samples/epoch_NNNN.png (the same fixed noise every time), losses.png,
checkpoints/<epoch>/ (Orbax: every --checkpoint-every epochs, at the end and on
Ctrl-C) and final_params/ (the last G and D params, and G's EMA with --ema-decay:
`load_final_params`); with --eval-every, best_params/ (those of the best FID so far).
With --ema-decay the grids and the evaluations use G's EMA.
TensorBoard events, progress.gif and interpolation.png (jaxgan.summaries).
Trains on every device (`jaxgan.parallel`); with several processes, process 0
alone writes the files and every process takes part in the checkpoints.
"""

from __future__ import annotations

import errno
import importlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan import compiles, data, epochs, evaluate, files, loop, parallel, reporting, runs
from jaxgan.build import make_gan
from jaxgan.config import Config, ConfigError
from jaxgan.gan import GAN
from jaxgan.step import TrainState, create_train_state, generate_jit, init_train_state

if TYPE_CHECKING:
    from jaxgan.checkpoint import Checkpointer


@jax.jit
def all_finite(tree) -> jax.Array:
    return jnp.all(jnp.stack([jnp.isfinite(x).all() for x in jax.tree.leaves(tree)]))


def fit(
    config: Config,
    *,
    gan: GAN | None = None,
    dtype=None,
    prng_impl: str = "threefry2x32",
    init_params: dict | None = None,
    devices: int | None = None,
    per_step: bool | None = None,
    dense: str = "xla",
) -> Path:
    """Trains the GAN `config` describes (or resumes it); returns the workdir.

    `gan` (a `jaxgan.gan.GAN`: your own networks, losses or optimisers) replaces the
    one `config` describes; `config` still sets the data, batch size, epochs and outputs.
    `init_params` ({"g_params", "d_params"}, optionally "g_ema_params" and "d_stats"; as
    `load_final_params` returns them)
    replaces the seed's initial weights, e.g. with weights converted from torch.
    `devices`: train on the first N devices (default: all of them, in every process).
    `per_step`: one compiled call a step instead of one an epoch (`jaxgan.epochs.loop`, the
    same numbers); None chooses it for `--arch dcgan` on the CPU, where XLA runs convolutions
    about 10x slower inside the epoch's loop.
    `dense`: "pallas" runs the MLPs' hidden layers as Pallas kernels (`jaxgan.pallas_dense`), the same maths.
    Raises ConfigError, DataError or CheckpointError before anything is written
    on bad input; runs.Diverged or runs.Interrupted after saving what was good.
    With `config.seeds`, trains those seeds as one program instead (`jaxgan.seeds`).
    """
    if config.seeds is not None:
        from jaxgan import seeds

        if gan is not None or init_params is not None:
            raise ConfigError("--seeds trains the GAN the config describes from each seed's own weights; leave out gan and init_params.")
        return seeds.fit(config, dtype=dtype, prng_impl=prng_impl, devices=devices, per_step=per_step, dense=dense)
    split = compiles.Split()
    # Orbax takes about half a second to import and is first needed to open the checkpoints:
    # imported beside the data loading and the initial state's compilation.
    threading.Thread(target=importlib.import_module, args=("jaxgan.checkpoint",), daemon=True).start()
    train = data.load("train", dataset=config.dataset, data_dir=config.data_dir, digit=config.digit, subset=config.subset)
    image_shape, num_classes = train.image_shape, int(train.labels_N.max()) + 1
    # Before make_gan: a DCGAN of the wrong image size is refused in one sentence, not by its module.
    config.check_data_size(len(train), image_shape, None if gan is None else gan.d_steps)
    article_like = make_gan(config, int(np.prod(image_shape)), dtype, image_shape=image_shape, num_classes=num_classes, dense=dense)
    gan = gan or article_like
    _check_gan(gan, image_shape, num_classes, jax.eval_shape(lambda: jax.random.key(config.seed, impl=prng_impl)))
    mesh = parallel.data_mesh(config.batch_size, devices)
    custom = gan != article_like
    run_info = run_record(config, gan, image_shape, dtype=dtype, prng_impl=prng_impl, dense=dense, devices=mesh.size, custom=custom)
    eval_reference = evaluate.test_reference(config.eval_n, config.seed) if config.eval_every else None
    images_NxD = parallel.put_replicated(train.flat_NxD, mesh)
    labels_N = parallel.put_replicated(train.labels_N.astype(np.int32), mesh) if gan.num_classes else None
    state = parallel.put_replicated(init_train_state(gan, config.seed, prng_impl, init_params), mesh)
    if per_step is None:
        per_step = config.arch == "dcgan" and jax.default_backend() == "cpu"
    run_epoch = epochs.compile(mesh, config.batch_size, per_step)
    steps_per_epoch = data.steps_per_epoch(len(train), config.batch_size, gan.d_steps)
    trainer = JaxTrainer(gan, state, run_epoch, images_NxD, labels_N, image_shape, steps_per_epoch, split)

    def evaluate_now() -> dict:
        samples = evaluate.generate_jax(gan, jax.device_get(trainer.sampling_params()), config.eval_n, config.seed)
        figures = evaluate.evaluate_samples(samples, eval_reference, evaluate.sample_labels(gan.num_classes, config.eval_n))
        return figures | ({"generator": "ema"} if gan.ema_decay else {})

    team = loop.Team(parallel.is_main_process(), parallel.share_refusal, parallel.wait_for_all)
    if gan.ema_decay and team.is_main:
        print(f"sample grids and evaluations use G's EMA (decay {gan.ema_decay}, a copy of G before step {gan.ema_start})")
    return loop.run(config, run_info, trainer, title="jaxgan", team=team, evaluate=evaluate_now,
                    report=lambda: {"compilations": split.summary()})


def run_record(
    config: Config, gan: GAN, image_shape: tuple[int, ...], *, dtype, prng_impl: str, dense: str, devices: int, custom: bool = False
) -> dict:
    """config.json of a jaxgan run: the settings, and what the GAN and the data made of them."""
    return {
        **config.run_record("jax", dtype=str(dtype or "float32"), prng=prng_impl, dense=dense),
        "beta1": None if custom else gan.beta1,  # the Adam beta1 in effect (--beta1 or the architecture's)
        "image_shape": list(image_shape), "num_classes": gan.num_classes, "devices": devices, "processes": jax.process_count(),
        # A custom GAN is described by what it is, not by the config's research fields.
        "model": gan.describe() if custom else None,
    }


class JaxTrainer:
    """jaxgan's side of `jaxgan.loop`: a `TrainState` on the mesh and its compiled epoch."""

    def __init__(
        self, gan: GAN, state: TrainState, run_epoch, images_NxD, labels_N, image_shape: tuple[int, ...], steps_per_epoch: int,
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


def _check_gan(gan: GAN, image_shape: tuple[int, ...], num_classes: int, key: jax.Array) -> None:
    """ConfigError, before anything is written, when a GAN does not fit the data or its networks
    do not take the calls the training makes."""
    data_dim = int(np.prod(image_shape))
    if gan.data_dim != data_dim:
        raise ConfigError(f"the GAN's data_dim is {gan.data_dim} but the images have {data_dim} values; build it with data_dim={data_dim}.")
    if gan.num_classes and gan.num_classes < num_classes:
        raise ConfigError(f"the GAN has num_classes={gan.num_classes} but the labels go up to {num_classes - 1}; build it with num_classes={num_classes}.")
    try:
        jax.eval_shape(lambda k: create_train_state(gan, k), key)
    except (TypeError, ValueError) as e:
        labels = ", labels_B" if gan.num_classes else ""
        raise ConfigError(
            f"the GAN's networks do not take the training's calls ({str(e).splitlines()[0]}); G must take (z_BxZ{labels}) "
            f"and D (x_BxD{labels}, *, train) and return [B, {data_dim}] images and [B] logits."
        ) from None


def load_final_params(workdir: Path | str, name: str = "final_params") -> dict:
    """{"g_params", "d_params"} (and "g_ema_params" with --ema-decay, "d_stats" with --spectral-norm)
    that `fit` saved at the end of a run, as `fit(init_params=...)` takes them; `name="best_params"`:
    those of the best FID of its --eval-every evaluations."""
    import orbax.checkpoint as ocp

    with ocp.StandardCheckpointer() as checkpointer:
        return checkpointer.restore((Path(workdir) / name).absolute())

