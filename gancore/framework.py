"""What a framework gives `gancore.loop` (its trainer and checkpointer), and the processes of a run
(NumPy and the standard library only: both frameworks implement these).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np


class Checkpointer(Protocol):
    """A framework's checkpoints of its training state in `directory`."""

    directory: Path

    def epochs(self) -> list[int]: ...
    def save(self, epoch: int, snapshot: Any, run_info: dict) -> None:
        """Returns once `snapshot` is copied; the write may go on in the background until `wait`."""

    def wait(self) -> None:
        """Blocks until the last save is complete on disk; raises its error when it failed."""

    def restore(self, epoch: int, like: Any) -> tuple[Any, dict]:
        """(snapshot, meta with "epoch" and "step"); raises anything when the checkpoint is not intact."""

    def set_aside(self, epoch: int) -> Path: ...
    def close(self) -> None: ...


class Trainer(Protocol):
    """What a framework gives the loop."""

    steps_per_epoch: int
    image_shape: tuple[int, ...]
    latent_dim: int
    num_classes: int  # 0: unconditional

    def open_checkpointer(self, workdir: Path, keep: int) -> Checkpointer: ...
    def snapshot(self) -> Any:
        """The training state as the checkpointer saves it."""

    def load(self, snapshot: Any) -> None: ...
    def train_epochs(self, k: int) -> tuple[list[dict[str, float]], bool]:
        """Trains k epochs: each epoch's mean of `reporting.METRIC_KEYS`, and whether every param is finite."""

    def step(self) -> int: ...
    def sample(self, z_NxZ: np.ndarray, labels_N: np.ndarray | None) -> np.ndarray:
        """Generator outputs [N, D] in [-1, 1] (any array NumPy reads, e.g. one still being computed)."""

    def save_final(self, workdir: Path) -> None:
        """The final params (replacing older ones only once the new ones are complete)."""

    def save_best(self, workdir: Path) -> None: ...  # as save_final, the params of the best FID (only with `evaluate`)


@dataclasses.dataclass(frozen=True)
class Team:
    """The processes of a run: process 0 writes the files, every process trains and checkpoints."""

    is_main: bool = True
    share: Callable[[str | None], str | None] = lambda message: message  # process 0's refusal to everyone
    barrier: Callable[[str], None] = lambda name: None
