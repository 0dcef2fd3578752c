"""Samples from the final generator of a finished run of either framework, as NumPy.

Both frameworks get the same noise, `reporting.fixed_noise(n, latent_dim, seed)`.
Torch and JAX are imported only for a run of their own framework.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jaxgan import reporting


def torch_samples(workdir: Path, config: dict, n: int, seed: int) -> np.ndarray:
    import torch

    from torch_baseline.model import Generator

    G = Generator(config["latent_dim"], config["g_features"], int(np.prod(config.get("image_shape", (28, 28)))))
    G.load_state_dict(torch.load(Path(workdir) / "final.pt", map_location="cpu", weights_only=True)["generator"])
    G.eval()
    z_NxZ = reporting.fixed_noise(n, config["latent_dim"], seed)
    with torch.no_grad():
        return np.concatenate([G(torch.from_numpy(z_NxZ[i : i + 1000])).numpy() for i in range(0, n, 1000)])


def jax_samples(workdir: Path, config: dict, n: int, seed: int) -> np.ndarray:
    from jaxgan.evaluate import generate_jax
    from jaxgan.fit import load_final_params
    from jaxgan.train import gan_of_run

    gan = gan_of_run(config, None if config.get("dtype", "float32") == "float32" else config["dtype"])
    return generate_jax(gan, load_final_params(workdir)["g_params"], n, seed)


def final_samples(workdir: Path, config: dict, n: int, seed: int) -> np.ndarray:
    """`config` is the run's config.json (see jaxgan.evaluate.read_run_config)."""
    return (jax_samples if config["framework"] == "jax" else torch_samples)(workdir, config, n, seed)
