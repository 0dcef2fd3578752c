"""The long-horizon check's groups of runs (scripts/long_horizon.py): each group trained, or read
when its runs are finished, then held against the other with `gancore.longrun`.

A group is `jaxgan` or `torch_baseline` (trained through their Python APIs: torch one run a seed,
jaxgan every seed as one compiled program, as train_jax.py --seeds), `jaxgan:FLAGS` (jaxgan with
train_jax.py's run-defining flags, trained under a folder of its own) or a folder of finished runs.
Here because a group may be either framework; JAX and torch are imported only when a group trains.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from gancore import longrun, reporting
from gancore.config import CONFIG_SETTINGS, JAX, SETTINGS, Config, UserError, seeds_text
from gancore.flags import build_parser
from gancore.runs import EXIT_BAD_INPUT

TRAINERS = ("jaxgan", "torch_baseline")


def train_group(trainer: str, seeds: Sequence[int], workdir: Path | str, folder: str | None = None, **config) -> dict[str, list[dict]]:
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
    return all(saved.get(k) == v for k, v in json.loads(json.dumps(cfg.recorded())).items() if k not in ignore)


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


def group(spec: str, seeds: Sequence[int], workdir: Path, config: dict) -> dict[str, list[dict]]:
    """The runs of group `spec` (a trainer, `jaxgan:FLAGS` or a folder of runs), trained under `workdir` if need be."""
    if spec in TRAINERS:
        return train_group(spec, seeds, workdir, **config)
    if spec.startswith("jaxgan:"):
        folder = re.sub(r"[^\w.=-]+", "_", spec)
        return train_group("jaxgan", seeds, workdir, folder=folder, **config, **group_flags(spec))
    if not Path(spec).exists():
        raise UserError(f"{spec} is neither a trainer ({', '.join(TRAINERS)}) nor a folder of runs.")
    return longrun.read_group(spec)


def epoch_range(text: str | None) -> tuple[int, int] | None:
    """(first, last) of --test-epochs' FIRST-LAST, None when not given."""
    if text is None:
        return None
    first, _, last = text.partition("-")
    if not (first.isdigit() and last.isdigit()):
        raise UserError(f"--test-epochs takes FIRST-LAST, two epoch numbers such as 13-20; got {text!r}.")
    return int(first), int(last)


def check(
    reference: str,
    candidate: str,
    *,
    seeds: Sequence[int] = (1, 2, 3, 4),
    epochs: int = 30,
    batch_size: int = 6000,
    subset: int | None = None,
    first_epoch: int = 1,
    window: int = 5,
    test_epochs: str | None = None,
    alpha: float = 0.05,
    workdir: Path | str = "runs/long_horizon",
    report_path: Path | str | None = None,
    plot: Path | str | None = None,
) -> int:
    """scripts/long_horizon.py: both groups (trained or read), compared; prints the verdict, writes the
    report (default `workdir`/report.json) and the picture `plot`. The exit code: 0, or EXIT_BAD_INPUT
    after one line on stderr."""
    config = {"epochs": epochs, "batch_size": batch_size, "subset": subset}
    try:
        if epochs < 1 or not 0 < alpha < 1 or window < 1:
            raise UserError("--epochs and --window must be at least 1 and --alpha between 0 and 1.")
        test_range = epoch_range(test_epochs)
        workdir = Path(workdir)
        ref = group(reference, seeds, workdir, config)
        cand = group(candidate, seeds, workdir, config)
        names = (Path(reference).name, Path(candidate).name)
        if names[0] == names[1]:
            names = (names[0] + " (reference)", names[1])
        report = longrun.compare(ref, cand, epochs, names=names, alpha=alpha, window=window, first_epoch=first_epoch, test_epochs=test_range)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(longrun.verdict(report))
    out = Path(report_path or workdir / "report.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"report: {out}")
    if plot:
        longrun.plot(ref, cand, epochs, plot, names, test_range)
        print(f"picture: {plot}")
    return 0
