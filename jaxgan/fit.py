"""The edge of jaxgan: load data, train epoch by epoch, write what a person reads.

Writes into the workdir: config.json, metrics.jsonl (one object per epoch),
samples/epoch_NNNN.png (the same fixed noise every time), losses.png,
checkpoints/<epoch>/ (Orbax: every --checkpoint-every epochs, at the end and on
Ctrl-C) and final_params/ (the last G and D params: `load_final_params`).
TensorBoard events, progress.gif and interpolation.png (jaxgan.summaries).
Trains on every device (`jaxgan.parallel`); with several processes, process 0
alone writes the files and every process takes part in the checkpoints.
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from tqdm import tqdm

from jaxgan import data, epochs, evaluate, parallel, reporting, runs, summaries
from jaxgan.checkpoint import Checkpointer
from jaxgan.config import Config, ConfigError
from jaxgan.build import make_gan
from jaxgan.step import GAN, classes_in_turn, create_train_state, generate

GRID_SIZE = 64


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
) -> Path:
    """Trains the GAN `config` describes (or resumes it); returns the workdir.

    `gan` (a `jaxgan.train.GAN`: your own networks, losses or optimisers) replaces the
    one `config` describes; `config` still sets the data, batch size, epochs and outputs.
    `init_params` ({"g_params", "d_params"}, as `load_final_params` returns them)
    replaces the seed's initial weights, e.g. with weights converted from torch.
    `devices`: train on the first N devices (default: all of them, in every process).
    `per_step`: one compiled call a step instead of one an epoch (`jaxgan.train.loop_epoch`, the
    same numbers); None chooses it for `--arch dcgan` on the CPU, where XLA runs convolutions
    about 10x slower inside the epoch's loop.
    Raises ConfigError, DataError or CheckpointError before anything is written
    on bad input; runs.Diverged or runs.Interrupted after saving what was good.
    """
    train = data.load("train", dataset=config.dataset, data_dir=config.data_dir, digit=config.digit, subset=config.subset)
    image_shape, num_classes = train.image_shape, int(train.labels_N.max()) + 1
    # Before make_gan: a DCGAN of the wrong image size is refused in one sentence, not by its module.
    config.check_data_size(len(train), image_shape, None if gan is None else gan.d_steps)
    article_like = make_gan(config, int(np.prod(image_shape)), dtype, image_shape=image_shape, num_classes=num_classes)
    gan = gan or article_like
    init_key = jax.random.key(config.seed, impl=prng_impl)
    _check_gan(gan, image_shape, num_classes, init_key)
    mesh = parallel.data_mesh(config.batch_size, devices)
    custom = gan != article_like
    run_info = {
        **config.to_dict(), "framework": "jax", "dtype": str(dtype or "float32"), "prng": prng_impl,
        "beta1": None if custom else gan.beta1,  # the Adam beta1 in effect (--beta1 or the architecture's)
        "image_shape": list(image_shape), "num_classes": gan.num_classes, "devices": mesh.size, "processes": jax.process_count(),
        # A custom GAN is described by what it is, not by the config's research fields.
        "model": gan.describe() if custom else None,
    }
    eval_reference = evaluate.test_reference(config.eval_n, config.seed) if config.eval_every else None
    workdir, refusal = Path(config.workdir), None
    if parallel.is_main_process():
        try:
            runs.prepare_workdir(config, run_info)
        except ConfigError as e:
            refusal = str(e)
    refusal = parallel.share_refusal(refusal)
    if refusal:
        raise ConfigError(refusal)

    images_NxD = parallel.put_replicated(train.flat_NxD, mesh)
    labels_N = parallel.put_replicated(train.labels_N.astype(np.int32), mesh) if gan.num_classes else None
    state = create_train_state(gan, init_key, **(init_params or {}))
    state = parallel.put_replicated(state, mesh)
    checkpointer = Checkpointer(workdir, keep=config.keep_checkpoints)
    try:
        if per_step is None:
            per_step = config.arch == "dcgan" and jax.default_backend() == "cpu"
        train_epoch = epochs.compile(mesh, config.batch_size, per_step)
        state, records = _train(config, workdir, gan, state, checkpointer, images_NxD, labels_N, image_shape, run_info, train_epoch, eval_reference)
    finally:
        checkpointer.close()
    if parallel.is_main_process():
        reporting.plot_losses(records, workdir / "losses.png", title="jaxgan")
        summaries.save_progress_gif(workdir / "samples", workdir / "progress.gif", config.epochs)
        g_params = jax.device_get(state.g_params)
        steps = 10  # a conditional G draws row r as class r (mod num_classes)
        row_labels = lambda n: classes_in_turn(gan.num_classes, n, every=steps) if gan.num_classes else None  # noqa: E731
        summaries.save_interpolation(
            lambda z: generate(gan, g_params, z, row_labels(len(z))), workdir / "interpolation.png", image_shape,
            gan.latent_dim, config.seed, steps=steps,
        )
    with ocp.StandardCheckpointer() as final:
        # Host copies: the saved params restore on any devices, not only on this run's mesh.
        params = jax.device_get({"g_params": state.g_params, "d_params": state.d_params})
        final.save((workdir / "final_params").absolute(), params, force=True)
    return workdir


def _train(config, workdir, gan, state, checkpointer, images_NxD, labels_N, image_shape, run_info, train_epoch, eval_reference):
    records, first_epoch = [], 1
    if config.resume:
        state, meta = checkpointer.restore_latest(state)
        runs.check_epochs_left(workdir, meta["epoch"], config.epochs)
        if parallel.is_main_process():
            runs.reopen_for_resume(workdir, run_info)
            records = runs.keep_metrics_through(workdir / "metrics.jsonl", meta["epoch"])
        parallel.wait_for_all("resume")
        first_epoch = meta["epoch"] + 1
        if parallel.is_main_process():
            print(f"resuming {workdir} from epoch {meta['epoch']} (step {meta['step']})")
    z_grid, grid_labels, grid_cols = sample_grid_inputs(gan, config.seed)
    steps_per_epoch = images_NxD.shape[0] // (config.batch_size * gan.d_steps)
    main = parallel.is_main_process()

    bar = tqdm(range(first_epoch, config.epochs + 1), unit="epoch", initial=first_epoch - 1, total=config.epochs, disable=not main)
    log = reporting.MetricsLog(workdir / "metrics.jsonl", append=config.resume) if main else _Silent()
    tensorboard = summaries.TensorBoard(workdir, first_epoch) if main else _Silent()
    with log, tensorboard, runs.StopFlag() as stop, bar:
        for epoch in bar:
            start = time.perf_counter()
            new_state, metrics = train_epoch(state, images_NxD, labels_N)
            metrics, finite = jax.device_get((metrics, all_finite((new_state.g_params, new_state.d_params))))
            means = {k: float(np.mean(metrics[k])) for k in reporting.METRIC_KEYS}
            record = runs.epoch_record(epoch, int(new_state.step), means, time.perf_counter() - start, steps_per_epoch)
            runs.stop_if_diverged(epoch, means, bool(finite), checkpointer)
            state = new_state
            if main and config.eval_every and epoch % config.eval_every == 0:
                samples = evaluate.generate_jax(gan, jax.device_get(state.g_params), config.eval_n, config.seed)
                record |= evaluate.evaluate_samples(samples, eval_reference, evaluate.sample_labels(gan.num_classes, config.eval_n))
            log.write(record)
            tensorboard.scalars(record)
            records.append(record)
            bar.set_postfix(runs.progress(record))
            if main and (epoch % config.sample_every == 0 or epoch == config.epochs):
                # On this process's first device, from the replicated params' host copy.
                samples = np.asarray(generate(gan, jax.device_get(state.g_params), z_grid, grid_labels))
                reporting.save_grid(samples, workdir / "samples" / f"epoch_{epoch:04d}.png", image_shape, grid_cols)
                tensorboard.image("samples", workdir / "samples" / f"epoch_{epoch:04d}.png", epoch)
            if epoch % config.checkpoint_every == 0 or epoch == config.epochs or stop.set:
                checkpointer.save(epoch, state, run_info)
            if stop.set:
                raise runs.Interrupted(f"checkpoint of epoch {epoch} saved in {checkpointer.directory}; continue with --resume.")
    return state, records


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


def sample_grid_inputs(gan: GAN, seed: int) -> tuple[np.ndarray, np.ndarray | None, int | None]:
    """(z_NxZ, labels_N, columns) of the fixed sample grid: 64 samples, or, for a
    conditional GAN, one class a row with the same noise down each column."""
    if not gan.num_classes:
        return reporting.fixed_noise(GRID_SIZE, gan.latent_dim, seed), None, None
    cols = 10
    z_CxZ = reporting.fixed_noise(cols, gan.latent_dim, seed)
    n = gan.num_classes * cols
    return np.tile(z_CxZ, (gan.num_classes, 1)), classes_in_turn(gan.num_classes, n, every=cols), cols


class _Silent:
    """The metrics log and TensorBoard writer of a process other than 0: writes nothing."""

    def write(self, record: dict) -> None:
        pass

    def scalars(self, record: dict) -> None:
        pass

    def image(self, tag: str, png: Path, step: int) -> None:
        pass

    def __enter__(self) -> _Silent:
        return self

    def __exit__(self, *exc) -> None:
        pass


def load_final_params(workdir: Path | str) -> dict:
    """{"g_params", "d_params"} that `fit` saved at the end of a run."""
    with ocp.StandardCheckpointer() as checkpointer:
        return checkpointer.restore((Path(workdir) / "final_params").absolute())

