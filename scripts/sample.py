"""Draw a grid of samples from the newest intact checkpoint of a jaxgan or torch_baseline run
(of a conditional run: one class a column), with G's EMA when the run keeps one (--ema-decay)."""

import argparse
import contextlib
import sys
from pathlib import Path

from jaxgan import stops  # the standard library only

if __name__ == "__main__":  # first: Ctrl-C or SIGTERM at any moment ends in one line (nothing is half-written)
    stops.install()

import numpy as np

from jaxgan import files, reporting
from jaxgan.config import Config, UserError
from jaxgan.runs import read_run_config


def jax_samples(workdir: Path, saved: dict, z_NxZ: np.ndarray) -> tuple[np.ndarray, int]:
    import jax

    from jaxgan.build import gan_of_run
    from jaxgan.checkpoint import Checkpointer
    from jaxgan.step import create_train_state, generate

    gan = gan_of_run(saved, None if saved.get("dtype", "float32") == "float32" else saved["dtype"])
    like = create_train_state(gan, jax.random.key(0, impl=saved.get("prng", "threefry2x32")))
    with contextlib.closing(Checkpointer(workdir, read_only=True)) as checkpointer:
        state, meta = _newest(checkpointer, like)
    params = state.g_params if state.ema_params is None else state.ema_params
    return np.asarray(generate(gan, params, z_NxZ)), meta["epoch"]


def torch_samples(workdir: Path, saved: dict, z_NxZ: np.ndarray) -> tuple[np.ndarray, int]:
    import torch

    from torch_baseline.checkpoint import Checkpointer
    from torch_baseline.model import Generator

    config = Config.from_dict(saved)
    ckpt, _ = _newest(Checkpointer(workdir, read_only=True), None)
    G = Generator(config.latent_dim, config.g_features, int(np.prod(saved["image_shape"])))
    G.load_state_dict(ckpt["generator"])
    with torch.no_grad():
        return G(torch.from_numpy(z_NxZ)).numpy(), ckpt["epoch"]


def _newest(checkpointer, like):
    """The newest intact checkpoint; a reader leaves corrupt ones where they are."""
    from jaxgan.resume import restore_latest

    restored = restore_latest(checkpointer, like, set_aside=False)
    if restored is None:
        raise UserError(f"{checkpointer.directory} holds no checkpoint yet; sample the run once it has saved one.")
    return restored


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--workdir", required=True, help="a run's workdir (from train_jax.py or train_torch.py)")
    p.add_argument("--n", type=int, default=64, help="how many samples")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise")
    p.add_argument("--out", default="grid.png", help="PNG to write")
    args = p.parse_args(argv)
    workdir = Path(args.workdir)
    try:
        if not 1 <= args.n <= 10_000:
            raise UserError(f"--n must be between 1 and 10000, got {args.n}.")
        if not 0 <= args.seed < 2**32:
            raise UserError(f"--seed must be in [0, 2**32), got {args.seed}.")
        if problem := files.output_problem("--out", args.out, ".png"):
            raise UserError(problem)
        if not (workdir / "config.json").is_file():
            raise UserError(f"{workdir} holds no run (no config.json); pass the --workdir of a training run.")
        saved = read_run_config(workdir / "config.json")  # a run's settings, checked
        z_NxZ = reporting.fixed_noise(args.n, Config.from_dict(saved).latent_dim, args.seed)
        draw = jax_samples if saved["framework"] == "jax" else torch_samples
        samples, epoch = draw(workdir, saved, z_NxZ)
        # A conditional G draws the classes in turn: one class a column.
        with files.atomic_path(args.out) as tmp:
            reporting.save_grid(samples, tmp, tuple(saved["image_shape"]), saved.get("num_classes") or None)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    ema = " from the EMA of G" if saved["framework"] == "jax" and saved.get("ema_decay") else ""
    print(f"{args.n} samples of the {saved['framework']} run at epoch {epoch}{ema} -> {args.out}")
    return 0


if __name__ == "__main__":
    stops.end(main())
