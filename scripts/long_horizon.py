"""Long-horizon check: are two groups of runs one distribution over many epochs?

Each group is `jaxgan` or `torch_baseline` (trained here through their Python APIs at the
article's configuration unless flags say otherwise: torch one run a seed, jaxgan every seed as
one compiled program, as train_jax.py --seeds), `jaxgan:FLAGS`
(jaxgan with train_jax.py's run-defining flags, e.g. `jaxgan:--one-d-pass`, trained under
a folder of its own), or a folder of finished runs (metrics .jsonl files or workdirs, e.g. runs of the article's
own code). Each run is scored by its share of per-epoch figures outside the leave-one-out
band of the reference group (gancore.longrun), and a one-sided Mann-Whitney U test asks
whether the candidate's shares are larger. Prints the verdict and writes JSON.

    python scripts/long_horizon.py torch_baseline jaxgan --epochs 30 --seeds 1 2 3 4 \\
        --workdir runs/long_horizon --json runs/long_horizon/report.json
    python scripts/long_horizon.py jaxgan jaxgan:--one-d-pass --epochs 10 --batch-size 600 --subset 6000
"""

from __future__ import annotations

import argparse
import sys

from sidebyside.groups import check


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("reference", help="jaxgan, jaxgan:FLAGS, torch_baseline, or a folder of runs (metrics .jsonl files or workdirs)")
    p.add_argument("candidate", help="the same choices")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4], help="seeds of a trained group")
    p.add_argument("--epochs", type=int, default=30, help="epochs compared (and trained)")
    p.add_argument("--first-epoch", type=int, default=1, help="first epoch scored")
    p.add_argument("--batch-size", type=int, default=6000)
    p.add_argument("--subset", type=int, default=None, help="train on the first N images (same steps an epoch: N = 10 x batch)")
    p.add_argument("--window", type=int, default=5, help="epochs per window of the printed means")
    p.add_argument(
        "--test-epochs",
        default=None,
        metavar="FIRST-LAST",
        help="also compare each figure's per-run mean over these epochs (e.g. 13-20), named before the runs are trained",
    )
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--workdir", default="runs/long_horizon")
    p.add_argument("--json", default=None, help="where to write the report (default WORKDIR/report.json)")
    p.add_argument("--plot", default=None, metavar="PNG", help="also draw every run's figures per epoch into this picture")
    args = p.parse_args(argv)
    return check(
        args.reference,
        args.candidate,
        seeds=args.seeds,
        epochs=args.epochs,
        batch_size=args.batch_size,
        subset=args.subset,
        first_epoch=args.first_epoch,
        window=args.window,
        test_epochs=args.test_epochs,
        alpha=args.alpha,
        workdir=args.workdir,
        report_path=args.json,
        plot=args.plot,
    )


if __name__ == "__main__":
    sys.exit(main())
