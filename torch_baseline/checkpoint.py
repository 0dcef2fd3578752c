"""Checkpoint dicts for the PyTorch baseline, with the same guarantees as jaxgan's.

`WORKDIR/checkpoints/epoch_NNNN.pt` holds the modules, the optimisers, the epoch,
the step, every RNG state and the run's settings. It is written to a temporary
file and renamed when complete; its sha256 goes into `epoch_NNNN.pt.sha256`
afterwards, so a checkpoint without a matching digest is never trusted.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from jaxgan.config import UserError
from jaxgan.data import sha256


class CheckpointError(UserError):
    """No usable checkpoint to resume from."""


class Checkpointer:
    def __init__(self, workdir: Path | str, keep: int = 3):
        self.directory = Path(workdir) / "checkpoints"
        self.keep = keep

    def _path(self, epoch: int) -> Path:
        return self.directory / f"epoch_{epoch:06d}.pt"

    def epochs(self) -> list[int]:
        if not self.directory.is_dir():
            return []
        return sorted(int(p.stem.split("_")[1]) for p in self.directory.glob("epoch_*.pt"))

    def save(self, epoch: int, payload: dict) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._path(epoch)
        fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save({**payload, "epoch": epoch}, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        Path(str(path) + ".sha256").write_text(sha256(path))
        for old in self.epochs()[: -self.keep]:
            self._path(old).unlink(missing_ok=True)
            Path(str(self._path(old)) + ".sha256").unlink(missing_ok=True)

    def restore_latest(self) -> dict:
        epochs = self.epochs()
        if not epochs:
            raise CheckpointError(f"{self.directory} holds no checkpoint to resume from; start the run without --resume.")
        for epoch in reversed(epochs):
            path = self._path(epoch)
            digest = Path(str(path) + ".sha256")
            try:
                if not digest.is_file() or digest.read_text().strip() != sha256(path):
                    raise ValueError("its sha256 does not match the digest saved with it")
                return torch.load(path, map_location="cpu", weights_only=True)
            except Exception as e:  # noqa: BLE001 - any failure to read back means "not intact"
                aside = self.directory.parent / "checkpoints.corrupt" / f"{path.name}-{time.strftime('%Y%m%d-%H%M%S')}"
                aside.parent.mkdir(exist_ok=True)
                path.rename(aside)  # kept for inspection, never deleted
                digest.unlink(missing_ok=True)
                print(f"warning: checkpoint of epoch {epoch} is corrupt ({type(e).__name__}: {str(e)[:160]}); moved to {aside}; trying an older one.", file=sys.stderr)
        raise CheckpointError(f"no checkpoint in {self.directory} is intact; start again without --resume (or with --overwrite).")
