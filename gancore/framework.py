"""What a framework gives `gancore.loop` (its trainer and checkpointer), the runs the loop trains
(its members) and the processes of a run (NumPy and the standard library only: both frameworks
implement these).
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


class Members(Protocol):
    """The runs `gancore.loop._train` trains together: a single run's `Trainer` is one member, whose
    divergence stops the run (`Single`); jaxgan's `--seeds` are K trained as one program
    (`freezes`: a member that diverges is frozen while the others go on)."""

    freezes: bool
    steps_per_epoch: int
    image_shape: tuple[int, ...]
    latent_dim: int
    num_classes: int

    def train_epochs(self, k: int) -> tuple[list[list[dict[str, float]]], np.ndarray]:
        """k epochs: each epoch's means per member ([epoch][member]) and alive_ExK, whether each member's
        params and means are finite after each epoch (a single run checks its params at the call's end)."""

    def step(self) -> int: ...
    def snapshot(self) -> Any: ...
    def views(self) -> list[Trainer]:
        """Each member now as a single run's trainer (its grids, evaluations, best params)."""


@dataclasses.dataclass
class Member:
    """One run the loop writes: its folder (metrics.jsonl, TensorBoard events, samples/, best params),
    the seed of its grid's noise, its records, its evaluation (figures of its trainer for the epoch's
    record) and the epoch it diverged in (None: it trains on). A run is one member, `--seeds K` K."""

    workdir: Path
    seed: int
    records: list[dict] = dataclasses.field(default_factory=list)
    evaluate: Callable[[Trainer], dict] | None = None
    stopped: int | None = None


class Single:
    """A single run's trainer as the loop's `Members`: one member, whose divergence stops the run."""

    freezes = False

    def __init__(self, trainer: Trainer):
        self.trainer = trainer
        self.steps_per_epoch, self.image_shape = trainer.steps_per_epoch, trainer.image_shape
        self.latent_dim, self.num_classes = trainer.latent_dim, trainer.num_classes

    def train_epochs(self, k: int) -> tuple[list[list[dict[str, float]]], np.ndarray]:
        per_epoch, finite = self.trainer.train_epochs(k)
        # Params are checked at the end of the call; a NaN loss names its own epoch (runs.stop_if_diverged).
        return [[means] for means in per_epoch], np.array([[finite or i < k - 1] for i in range(k)])

    def step(self) -> int:
        return self.trainer.step()

    def snapshot(self) -> Any:
        return self.trainer.snapshot()

    def views(self) -> list[Trainer]:
        return [self.trainer]


@dataclasses.dataclass(frozen=True)
class Team:
    """The processes of a run: process 0 writes the files, every process trains and checkpoints."""

    is_main: bool = True
    share: Callable[[str | None], str | None] = lambda message: message  # process 0's refusal to everyone
    barrier: Callable[[str], None] = lambda name: None
