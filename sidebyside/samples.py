"""Samples of a run of either framework, as NumPy: from its final generator (`final_samples`) or from
its newest intact checkpoint (`checkpoint_samples`, scripts/sample.py's, also of a run still training).

Both frameworks get the same noise, `gancore.reporting.fixed_noise(n, latent_dim, seed)`.
Torch and JAX are imported only for a run of their own framework.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from gancore.config import Config, UserError


def jax_samples(workdir: Path, config: dict, n: int, seed: int, generator: str = "raw") -> np.ndarray:
    from jaxgan.build import gan_of_run
    from jaxgan.evaluate import generate_jax
    from jaxgan.fit import load_final_params

    gan = gan_of_run(config, None if config.get("dtype", "float32") == "float32" else config["dtype"])
    return generate_jax(gan, load_final_params(workdir)["g_ema_params" if generator == "ema" else "g_params"], n, seed)


def final_samples(workdir: Path, config: dict, n: int, seed: int, generator: str = "raw") -> np.ndarray:
    """`config` is the run's config.json (see jaxgan.evaluate.finished_run_config); `generator`:
    "raw" (G) or "ema" (G's EMA, of a jaxgan run with --ema-decay).

    Raises UserError when the final params are missing or cannot be read (a run killed
    while writing them), saying how to finish the run.
    """
    framework = config["framework"]
    final = "final_params" if framework == "jax" else "final.pt"
    try:
        if framework == "jax":
            return jax_samples(workdir, config, n, seed, generator)
        from torch_baseline.samples import final_samples as torch_samples

        return torch_samples(workdir, config, n, seed)
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - missing, empty or torn: the run did not finish writing them
        text = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise UserError(
            f"{Path(workdir) / final} cannot be read ({type(e).__name__}: {text}); finish the run with "
            f"scripts/train_{framework}.py --workdir {workdir} --resume --epochs {config.get('epochs')} and the flags it was started with."
        ) from None


def checkpoint_samples(workdir: Path, config: dict, z_NxZ: np.ndarray) -> tuple[np.ndarray, int]:
    """G's samples at `z_NxZ` (its EMA's where a jaxgan run keeps one) from the newest checkpoint of `workdir`
    that reads back intact, and that checkpoint's epoch; a reader leaves corrupt ones where they are.
    `config` is the run's config.json. Raises UserError when no checkpoint is saved yet."""
    draw = _jax_checkpoint_samples if config["framework"] == "jax" else _torch_checkpoint_samples
    return draw(Path(workdir), config, z_NxZ)


def _jax_checkpoint_samples(workdir: Path, config: dict, z_NxZ: np.ndarray) -> tuple[np.ndarray, int]:
    from jaxgan.build import gan_of_run
    from jaxgan.checkpoint import Checkpointer
    from jaxgan.step import generate_jit, init_train_state

    gan = gan_of_run(config, None if config.get("dtype", "float32") == "float32" else config["dtype"])
    # The training run's own init program (a load from the compilation cache where it ran), not dozens op by op.
    like = init_train_state(gan, 0, config.get("prng", "threefry2x32"))
    with contextlib.closing(Checkpointer(workdir, read_only=True)) as checkpointer:
        state, meta = _newest(checkpointer, like)
    params = state.g_params if state.ema_params is None else state.ema_params
    return np.asarray(generate_jit(gan, params, z_NxZ)), meta["epoch"]


def _torch_checkpoint_samples(workdir: Path, config: dict, z_NxZ: np.ndarray) -> tuple[np.ndarray, int]:
    import torch

    from torch_baseline.checkpoint import Checkpointer
    from torch_baseline.model import Generator

    settings = Config.from_dict(config)
    ckpt, _ = _newest(Checkpointer(workdir, read_only=True), None)
    G = Generator(settings.latent_dim, settings.g_features, int(np.prod(config["image_shape"])))
    G.load_state_dict(ckpt["generator"])
    with torch.no_grad():
        return G(torch.from_numpy(z_NxZ)).numpy(), ckpt["epoch"]


def _newest(checkpointer, like):
    """The newest intact checkpoint, corrupt ones left where they are (set_aside=False: a reader changes nothing)."""
    from gancore.resume import restore_latest

    restored = restore_latest(checkpointer, like, set_aside=False)
    if restored is None:
        raise UserError(f"{checkpointer.directory} holds no checkpoint yet; sample the run once it has saved one.")
    return restored
