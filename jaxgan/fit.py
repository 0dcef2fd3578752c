"""The edge of jaxgan: load data, train epoch by epoch, write what a person reads.

Writes into the workdir: config.json, metrics.jsonl (one object per epoch),
samples/epoch_NNNN.png (the same fixed noise every time), losses.png and
final_params/ (the last G and D params, an Orbax checkpoint: `load_final_params`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
from tqdm import tqdm

from jaxgan import data, evaluate, reporting
from jaxgan.config import Config, prepare_workdir
from jaxgan.train import create_train_state, generate, make_gan, train_epoch

GRID_SIZE = 64


def epoch_record(epoch: int, step: int, metrics_per_step: dict, seconds: float, n_steps: int) -> dict:
    means = {k: float(np.mean(metrics_per_step[k])) for k in reporting.METRIC_KEYS}
    return {"epoch": epoch, "step": step, **means, "seconds": round(seconds, 4), "steps_per_s": round(n_steps / seconds, 2)}


def fit(config: Config, *, dtype=None) -> Path:
    """Trains the GAN `config` describes; returns the workdir.

    Raises ConfigError or DataError (before anything is written) on bad input.
    """
    train = data.load("train", data_dir=config.data_dir, digit=config.digit, subset=config.subset)
    config.check_data_size(len(train))
    eval_reference = evaluate.test_reference(config.eval_n, config.seed) if config.eval_every else None
    workdir = prepare_workdir(config)
    (workdir / "config.json").write_text(json.dumps({**config.to_dict(), "framework": "jax", "device": str(jax.devices()[0])}, indent=2))

    images_NxD = jax.device_put(train.flat_NxD)
    image_shape = train.images_NxHxW.shape[1:]
    gan = make_gan(config, data_dim=images_NxD.shape[1], dtype=dtype)
    state = create_train_state(gan, jax.random.key(config.seed))
    z_grid = reporting.fixed_noise(GRID_SIZE, gan.latent_dim, config.seed)
    steps_per_epoch = len(train) // config.batch_size

    records = []
    with reporting.MetricsLog(workdir / "metrics.jsonl") as log, tqdm(range(1, config.epochs + 1), unit="epoch") as bar:
        for epoch in bar:
            start = time.perf_counter()
            state, metrics = train_epoch(state, images_NxD, config.batch_size)
            metrics = jax.device_get(metrics)  # the epoch's only host sync
            record = epoch_record(epoch, int(state.step), metrics, time.perf_counter() - start, steps_per_epoch)
            if config.eval_every and epoch % config.eval_every == 0:
                samples = evaluate.generate_jax(gan, state.g_params, config.eval_n, config.seed)
                record |= evaluate.evaluate_samples(samples, eval_reference)
            log.write(record)
            records.append(record)
            bar.set_postfix(
                d_loss=f"{record['d_loss']:.3f}", g_loss=f"{record['g_loss']:.3f}",
                d_real=f"{record['d_real']:.3f}", d_fake=f"{record['d_fake']:.3f}", steps_s=f"{record['steps_per_s']:.0f}",
            )
            if epoch % config.sample_every == 0 or epoch == config.epochs:
                samples = np.asarray(generate(gan, state.g_params, z_grid))
                reporting.save_grid(samples, workdir / "samples" / f"epoch_{epoch:04d}.png", image_shape)
    reporting.plot_losses(records, workdir / "losses.png", title="jaxgan")
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save((workdir / "final_params").absolute(), {"g_params": state.g_params, "d_params": state.d_params}, force=True)
    return workdir


def load_final_params(workdir: Path | str) -> dict:
    """{"g_params", "d_params"} that `fit` saved at the end of a run."""
    with ocp.StandardCheckpointer() as checkpointer:
        return checkpointer.restore((Path(workdir) / "final_params").absolute())
