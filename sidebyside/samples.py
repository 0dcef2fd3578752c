"""Samples from the final generator of a finished run of either framework, as NumPy.

Both frameworks get the same noise, `jaxgan.reporting.fixed_noise(n, latent_dim, seed)`.
Torch and JAX are imported only for a run of their own framework.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jaxgan.config import UserError


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
