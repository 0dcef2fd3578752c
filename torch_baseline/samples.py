"""Samples from the final generator of a finished torch_baseline run (its final.pt), as NumPy.

The noise is `gancore.reporting.fixed_noise(n, latent_dim, seed)`, the noise jaxgan's samples get.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gancore import reporting  # NumPy only: no JAX is imported
from torch_baseline.model import Generator


def final_samples(workdir: Path, config: dict, n: int, seed: int) -> np.ndarray:
    """x_NxD in [-1, 1]; `config` is the run's config.json."""
    G = Generator(config["latent_dim"], config["g_features"], int(np.prod(config.get("image_shape", (28, 28)))))
    G.load_state_dict(torch.load(Path(workdir) / "final.pt", map_location="cpu", weights_only=True)["generator"])
    G.eval()
    z_NxZ = reporting.fixed_noise(n, config["latent_dim"], seed)
    with torch.no_grad():
        return np.concatenate([G(torch.from_numpy(z_NxZ[i : i + 1000])).numpy() for i in range(0, n, 1000)])
