"""The edge of jaxgan: load data, train epoch by epoch, write what a person reads.

Writes into the workdir: config.json, metrics.jsonl (one object per epoch),
samples/epoch_NNNN.png (the same fixed noise every time), losses.png,
checkpoints/<epoch>/ (Orbax: every --checkpoint-every epochs, at the end and on
Ctrl-C) and final_params/ (the last G and D params, and G's EMA with --ema-decay:
`load_final_params`); with --eval-every, best_params/ (those of the best FID so far).
With --ema-decay the grids and the evaluations use G's EMA.
TensorBoard events, progress.gif and interpolation.png (gancore.summaries).
Trains on every device (`jaxgan.parallel`); with several processes, process 0
alone writes the files and every process takes part in the checkpoints.
"""

from __future__ import annotations

import importlib
import threading
from pathlib import Path

import jax
import numpy as np

from gancore import data, loop
from gancore.config import Config, ConfigError
from jaxgan import compiles, epochs, evaluate, parallel
from jaxgan.build import make_gan
from jaxgan.gan import GAN
from jaxgan.step import create_train_state, init_train_state
from jaxgan.trainer import JaxTrainer, run_record


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
        return evaluate.evaluate_generator(gan, jax.device_get(trainer.sampling_params()), config.eval_n, config.seed, eval_reference)

    team = loop.Team(parallel.is_main_process(), parallel.share_refusal, parallel.wait_for_all)
    if gan.ema_decay and team.is_main:
        print(f"sample grids and evaluations use G's EMA (decay {gan.ema_decay}, a copy of G before step {gan.ema_start})")
    return loop.run(config, run_info, trainer, title="jaxgan", team=team, evaluate=evaluate_now, report=lambda: {"compilations": split.summary()})


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
