"""Checkpoint dicts for the PyTorch baseline, with the same guarantees as jaxgan's.

`WORKDIR/checkpoints/epoch_NNNNNN.pt` holds the modules, the optimisers, the epoch,
the step, every RNG state and the run's settings. It is written to a temporary
file whose sha256 goes into `epoch_NNNNNN.pt.sha256` before the file is renamed
into place, so a checkpoint under its final name always has its digest, and one
without a matching digest is never trusted. `gancore.resume.restore_latest` takes the
newest checkpoint that reads back intact.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import torch

from gancore import files
from gancore.data import sha256

NAME = re.compile(r"epoch_(\d+)\.pt")


class Checkpointer:
    """Saves every call and keeps the newest `keep` checkpoints."""

    def __init__(self, workdir: Path | str, keep: int = 3, *, read_only: bool = False):
        self.directory = Path(workdir) / "checkpoints"
        self.keep = keep
        if not read_only and self.directory.is_dir():
            for torn in self.directory.glob(".epoch_*.tmp-*"):  # left by a kill during a save
                torn.unlink(missing_ok=True)
            for digest in self.directory.glob("epoch_*.pt.sha256"):  # a kill before the rename, or between the removals
                if not digest.with_suffix("").exists():
                    digest.unlink()

    def _path(self, epoch: int) -> Path:
        return self.directory / f"epoch_{epoch:06d}.pt"

    def epochs(self) -> list[int]:
        """The epochs of the checkpoints on disk (other files in the folder are ignored)."""
        if not self.directory.is_dir():
            return []
        return sorted(int(m.group(1)) for p in self.directory.iterdir() if (m := NAME.fullmatch(p.name)))

    def save(self, epoch: int, payload: dict, run_info: dict) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._path(epoch)
        with files.atomic_path(path) as tmp:
            torch.save({**payload, "epoch": epoch, "run_info": run_info}, tmp)
            files.write_text(_digest_path(path), sha256(tmp))
        for old in self.epochs()[: -self.keep]:
            self._path(old).unlink(missing_ok=True)
            _digest_path(self._path(old)).unlink(missing_ok=True)

    def wait(self) -> None:
        """Nothing to wait for: `save` returns once the checkpoint is complete."""

    def restore(self, epoch: int, like: dict | None = None) -> tuple[dict, dict]:
        """(checkpoint dict, {"epoch", "step"}); raises when it is not intact."""
        path = self._path(epoch)
        digest = _digest_path(path)
        if not digest.is_file() or digest.read_text().strip() != sha256(path):
            raise ValueError("its sha256 does not match the digest saved with it")
        payload = torch.load(path, map_location="cpu", weights_only=True)
        return payload, {"epoch": payload["epoch"], "step": payload["step"]}

    def set_aside(self, epoch: int) -> Path:
        """Moves a corrupt checkpoint and its digest out of the way (kept for inspection, never deleted)."""
        path = self._path(epoch)
        aside = self.directory.parent / "checkpoints.corrupt" / f"{path.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        aside.parent.mkdir(exist_ok=True)
        path.rename(aside)
        digest = _digest_path(path)
        if digest.is_file():
            digest.rename(_digest_path(aside))
        return aside

    def close(self) -> None:
        pass


def _digest_path(path: Path) -> Path:
    return Path(str(path) + ".sha256")
