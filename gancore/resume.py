"""Where a run continues, the same for both frameworks (the standard library only).

`restore_latest` takes the newest checkpoint that reads back intact (the one checkpoint
fallback, also for readers such as scripts/sample.py); `resume_run` restores it into a
`gancore.framework.Trainer` and keeps the metrics lines written up to it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from gancore import runs
from gancore.config import Config, ConfigError
from gancore.framework import Checkpointer, Team, Trainer


def restore_latest(checkpointer: Checkpointer, like: Any, *, set_aside: bool = True) -> tuple[Any, dict] | None:
    """The newest intact checkpoint (snapshot, meta), or None when there is none at all.

    A checkpoint that does not read back intact is moved to checkpoints.corrupt/ (kept,
    never deleted; with `set_aside=False`, e.g. for a reader, left where it is), with a
    warning, and the next older one is tried. Raises CheckpointError when every one is corrupt.
    """
    epochs = checkpointer.epochs()
    for epoch in reversed(epochs):
        try:
            return checkpointer.restore(epoch, like)
        except Exception as e:  # noqa: BLE001 - any failure to read back means "not intact"
            where = f"moved to {checkpointer.set_aside(epoch)}" if set_aside else "skipped"
            print(f"warning: checkpoint of epoch {epoch} is corrupt ({runs.first_line(e)}); {where}; trying an older one.", file=sys.stderr)
    if epochs:
        raise runs.CheckpointError(
            f"no checkpoint in {checkpointer.directory} is intact (the corrupt ones are in "
            f"{checkpointer.directory.parent / 'checkpoints.corrupt'}); start the run again with --overwrite."
        )
    return None


def resume_run(config: Config, run_info: dict, trainer: Trainer, checkpointer: Checkpointer, team: Team) -> tuple[int, list[dict]]:
    """(first epoch to train, the records kept) after restoring the newest intact checkpoint.

    No checkpoint at all (a run killed before its first one was complete): the run starts
    afresh from epoch 1. Its last checkpoint at --epochs with the final outputs unwritten
    (killed while writing them): nothing is left to train and the outputs are written.
    """
    workdir = Path(config.workdir)
    restored = restore_latest(checkpointer, trainer.snapshot())
    if restored is None:
        if team.is_main:
            print(f"{workdir} holds no complete checkpoint (the run stopped before its first one): starting it afresh from epoch 1.")
            runs.start_afresh(workdir, run_info)
        team.barrier("afresh")
        return 1, []
    snapshot, meta = restored
    epoch = meta["epoch"]
    if epoch > config.epochs or (epoch == config.epochs and _finished(workdir, epoch)):
        raise ConfigError(f"the run in {workdir} is already at epoch {epoch}; pass --epochs above {epoch} to continue it.")
    trainer.load(snapshot)
    records = []
    if team.is_main:
        runs.reopen_for_resume(workdir, run_info)
        records = runs.keep_metrics_through(workdir / "metrics.jsonl", epoch)
        done = "writing its final outputs" if epoch == config.epochs else f"from epoch {epoch} (step {meta['step']})"
        print(f"resuming {workdir} {done}")
    team.barrier("resume")
    return epoch + 1, records


def _finished(workdir: Path, epoch: int) -> bool:
    """Whether the run's final outputs for `epoch` were all written (summary.json comes last)."""
    try:
        return json.loads((workdir / "summary.json").read_text())["epoch"] == epoch
    except (OSError, ValueError, KeyError, TypeError):
        return False
