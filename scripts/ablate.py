"""Train research variants for the same budget and tabulate their sample quality.

Each variant is the article's configuration with a few research options changed
(see VARIANTS); all train on the same data for the same number of epochs and
seed, then their final generators are measured with the project's evaluation
(jaxgan.evaluate: FID and the rest at --eval-n samples). --seeds K trains each
variant with seeds --seed .. --seed + K - 1, all K as one compiled program
(train_jax.py --seeds: one compile, the seeds side by side on the device), and
reports every figure as mean ± sd over them; "train s" is that program's time,
all seeds together. The table states N and the real-data floor at that N (--eval-n
training images through the same evaluation). Writes, in --workdir: one run
folder per variant (with K > 1, a workdir of --seeds with one run folder per seed,
seed_S, inside it), results.json and table.md (README's research table).

    python scripts/ablate.py --epochs 10 --batch-size 100 --seeds 3 --workdir runs/ablate
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gancore.config import Config
from gancore.runs import run_cli
from jaxgan.ablation import VARIANTS, ablate, variant_configs


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, from: {', '.join(VARIANTS)}")
    p.add_argument("--epochs", type=int, default=10, help="the budget every variant gets")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--subset", type=int, default=None, help="train on the first N images only")
    p.add_argument("--seed", type=int, default=0, help="the first seed")
    p.add_argument("--seeds", type=int, default=1, help="train each variant with this many seeds (--seed, --seed + 1, ...): mean ± sd")
    p.add_argument("--eval-n", type=int, default=10_000, help="samples and test images per FID")
    p.add_argument("--workdir", default="runs/ablate")
    p.add_argument("--overwrite", action="store_true", help="replace the variants' runs if --workdir holds them")
    args = p.parse_args(argv)

    def run():
        base = Config(
            epochs=args.epochs,
            batch_size=args.batch_size,
            subset=args.subset,
            seed=args.seed,
            eval_n=args.eval_n,
            sample_every=args.epochs,
            checkpoint_every=args.epochs,
            overwrite=args.overwrite,
        )
        return ablate(variant_configs(args.variants, base, args.seeds, Path(args.workdir)), Path(args.workdir))

    return run_cli(run, done="{workdir}/table.md, {workdir}/results.json")


if __name__ == "__main__":
    sys.exit(main())
