"""Draw a grid of samples from the newest intact checkpoint of a jaxgan or torch_baseline run
(of a conditional run: one class a column), with G's EMA when the run keeps one (--ema-decay)."""

import argparse
import sys
from pathlib import Path

from gancore import stops  # the standard library only

if __name__ == "__main__":  # first: Ctrl-C or SIGTERM at any moment ends in one line (nothing is half-written)
    stops.install()

from gancore import files, reporting
from gancore.config import Config, UserError
from gancore.runs import read_run_config
from sidebyside.samples import checkpoint_samples


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
        if saved["framework"] == "jax":
            from jaxgan import compile_cache

            compile_cache.enable()  # the training run's init program (and G's at its grid's size) loads instead of compiling
        z_NxZ = reporting.fixed_noise(args.n, Config.from_dict(saved).latent_dim, args.seed)
        samples, epoch = checkpoint_samples(workdir, saved, z_NxZ)
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
