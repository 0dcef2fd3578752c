"""Samples from the final generator of a finished run of either framework, as NumPy.

Both frameworks get the same noise, `jaxgan.reporting.fixed_noise(n, latent_dim, seed)`.
Torch and JAX are imported only for a run of their own framework.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def jax_samples(workdir: Path, config: dict, n: int, seed: int, generator: str = "raw") -> np.ndarray:
    from jaxgan.build import gan_of_run
    from jaxgan.evaluate import generate_jax
    from jaxgan.fit import load_final_params

    gan = gan_of_run(config, None if config.get("dtype", "float32") == "float32" else config["dtype"])
    return generate_jax(gan, load_final_params(workdir)["g_ema_params" if generator == "ema" else "g_params"], n, seed)


def final_samples(workdir: Path, config: dict, n: int, seed: int, generator: str = "raw") -> np.ndarray:
    """`config` is the run's config.json (see jaxgan.evaluate.read_run_config); `generator`:
    "raw" (G) or "ema" (G's EMA, of a jaxgan run with --ema-decay)."""
    if config["framework"] == "jax":
        return jax_samples(workdir, config, n, seed, generator)
    from torch_baseline.samples import final_samples as torch_samples

    return torch_samples(workdir, config, n, seed)
