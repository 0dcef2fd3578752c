"""Long-horizon check: are two groups of runs one distribution over many epochs?

Each group is `jaxgan` or `torch_baseline` (trained here through their Python APIs at the
article's configuration unless flags say otherwise: torch one run a seed, jaxgan every seed as
one compiled program, as train_jax.py --seeds), `jaxgan:FLAGS`
(jaxgan with train_jax.py's run-defining flags, e.g. `jaxgan:--one-d-pass`, trained under
a folder of its own), or a folder of finished runs (metrics .jsonl files or workdirs, e.g. runs of the article's
own code). Each run is scored by its share of per-epoch figures outside the leave-one-out
band of the reference group (jaxgan.longrun), and a one-sided Mann-Whitney U test asks
whether the candidate's shares are larger. Prints the verdict and writes JSON.

    python scripts/long_horizon.py torch_baseline jaxgan --epochs 30 --seeds 1 2 3 4 \\
        --workdir runs/long_horizon --json runs/long_horizon/report.json
    python scripts/long_horizon.py jaxgan jaxgan:--one-d-pass --epochs 10 --batch-size 600 --subset 6000
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import shlex
import sys
from pathlib import Path

from jaxgan import longrun, reporting
from jaxgan.config import CONFIG_SETTINGS, JAX, SETTINGS, Config, UserError, build_parser, seeds_text
from jaxgan.runs import EXIT_BAD_INPUT

TRAINERS = ("jaxgan", "torch_baseline")


def train_group(trainer: str, seeds: list[int], workdir: Path | str, folder: str | None = None, **config) -> dict[str, list[dict]]:
    """{"seed_N": records} of `trainer` trained once a seed under `workdir`/`folder` (default: `trainer`)/seed_N
    (jaxgan: every seed as one program, train_jax.py --seeds); runs whose metrics already hold every
    epoch are read, not trained again. `config`: Config fields (epochs, batch_size, subset, lr, dropout, ...)."""
    if trainer not in TRAINERS:
        raise UserError(f"unknown trainer {trainer!r}; choose one of {TRAINERS} or give a folder of runs.")
    if trainer == "jaxgan":
        from jaxgan.fit import fit
    else:
        import torch

        from torch_baseline.train import fit

        torch.set_num_threads(1)  # a run a core: several runs go side by side
    top = Path(workdir) / (folder or trainer)
    cfgs = {s: Config(seed=s, workdir=str(top / f"seed_{s}"), overwrite=True, sample_every=10**6, checkpoint_every=10**6, **config).validate() for s in seeds}
    done = lambda s: _finished(Path(cfgs[s].workdir), cfgs[s])
    if trainer == "jaxgan" and not all(map(done, seeds)):
        fit(dataclasses.replace(cfgs[seeds[0]], seeds=seeds_text(tuple(seeds)), workdir=str(top)))
    for s in seeds:
        if not done(s):
            fit(cfgs[s])
    return {f"seed_{s}": reporting.read_metrics(Path(cfgs[s].workdir) / "metrics.jsonl")[: cfgs[s].epochs] for s in seeds}


def _finished(run_dir: Path, cfg: Config) -> bool:
    """Whether `run_dir` holds a run of `cfg` whose metrics hold every epoch."""
    metrics = run_dir / "metrics.jsonl"
    return metrics.is_file() and len(reporting.read_metrics(metrics)) >= cfg.epochs and _same_config(run_dir, cfg)


def _same_config(run_dir: Path, cfg: Config) -> bool:
    """Whether the finished run in `run_dir` was trained with `cfg`'s training values."""
    try:
        saved = json.loads((run_dir / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return False
    ignore = {"workdir", "overwrite", "resume"}
    return all(saved.get(k) == v for k, v in json.loads(json.dumps(cfg.to_dict())).items() if k not in ignore)


# What a jaxgan:FLAGS group may set: the run-defining Config settings the script does not set itself.
_GROUP_SETTINGS = {s.name for s in CONFIG_SETTINGS if s.run} - {"batch_size", "subset", "seed", "seeds"}


def group_flags(spec: str) -> dict:
    """The Config fields that `jaxgan:FLAGS` sets (flags as train_jax.py takes them); UserError naming a bad one."""
    parser = build_parser(JAX, "group", "runs/group")

    def refuse(message: str):
        raise UserError(f"group {spec!r}: {message}; give run-defining train_jax.py flags such as --one-d-pass or --lr 1e-3.")

    parser.error, parser.allow_abbrev = refuse, False  # one sentence instead of argparse's usage and exit; whole flags only
    given, defaults = vars(parser.parse_args(shlex.split(spec.partition(":")[2]))), vars(parser.parse_args([]))
    changed = {k: v for k, v in given.items() if v != defaults[k]}
    if not changed:
        refuse("no flags after the colon")
    if outside := [s.label for s in SETTINGS if s.name in changed and s.name not in _GROUP_SETTINGS]:
        refuse(f"{', '.join(outside)} is not a group's to set")
    return changed


def group(spec: str, seeds: list[int], workdir: Path, config: dict) -> dict[str, list[dict]]:
    if spec in TRAINERS:
        return train_group(spec, seeds, workdir, **config)
    if spec.startswith("jaxgan:"):
        folder = re.sub(r"[^\w.=-]+", "_", spec)
        return train_group("jaxgan", seeds, workdir, folder=folder, **config, **group_flags(spec))
    if not Path(spec).exists():
        raise UserError(f"{spec} is neither a trainer ({', '.join(TRAINERS)}) nor a folder of runs.")
    return longrun.read_group(spec)


def _epoch_range(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    first, _, last = text.partition("-")
    if not (first.isdigit() and last.isdigit()):
        raise UserError(f"--test-epochs takes FIRST-LAST, two epoch numbers such as 13-20; got {text!r}.")
    return int(first), int(last)


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
    config = {"epochs": args.epochs, "batch_size": args.batch_size, "subset": args.subset}
    try:
        if args.epochs < 1 or not 0 < args.alpha < 1 or args.window < 1:
            raise UserError("--epochs and --window must be at least 1 and --alpha between 0 and 1.")
        test_epochs = _epoch_range(args.test_epochs)
        workdir = Path(args.workdir)
        ref = group(args.reference, args.seeds, workdir, config)
        cand = group(args.candidate, args.seeds, workdir, config)
        names = (Path(args.reference).name, Path(args.candidate).name)
        if names[0] == names[1]:
            names = (names[0] + " (reference)", names[1])
        report = longrun.compare(
            ref,
            cand,
            args.epochs,
            names=names,
            alpha=args.alpha,
            window=args.window,
            first_epoch=args.first_epoch,
            test_epochs=test_epochs,
        )
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(longrun.verdict(report))
    out = Path(args.json or workdir / "report.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"report: {out}")
    if args.plot:
        longrun.plot(ref, cand, args.epochs, args.plot, names, test_epochs)
        print(f"picture: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
