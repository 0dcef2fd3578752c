"""What a run leaves to watch beyond metrics.jsonl: TensorBoard events and two pictures.

* `events.out.tfevents.*` in the workdir (`tensorboard --logdir WORKDIR`): every
  number of metrics.jsonl as a scalar and every sample grid as an image, all at
  step = epoch; written with the `tensorboard` package's own event writer, which
  needs neither TensorFlow nor torch;
* `progress.gif`: the fixed-noise grids of the run, one frame per saved epoch;
* `interpolation.png`: generator outputs along great circles between pairs of the
  grid's noise vectors (rows start at grid samples 0, 2, 4, ... and end at 1, 3, 5, ...).

NumPy, Pillow and tensorboard only, so torch_baseline writes the same files.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from gancore import reporting

GIF_FRAME_MS, GIF_LAST_FRAME_MS = 200, 2000


class TensorBoard:
    """Appends a run's epochs to TensorBoard event files in `workdir`.

    A new run (`first_epoch` 1) deletes the event files of a run it replaces; a resumed
    one tells TensorBoard to drop the events from `first_epoch` on, which the previous
    process wrote after its last checkpoint (as metrics.jsonl drops those lines).
    """

    def __init__(self, workdir: Path, first_epoch: int = 1):
        self._workdir, self._first_epoch, self._writer = Path(workdir), first_epoch, None

    def open(self) -> None:
        """Imports TensorBoard's writer and starts the event file (the first write does it when not called)."""
        if self._writer is not None:
            return
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self._Event, self._Summary = event_pb2.Event, summary_pb2.Summary
        if self._first_epoch == 1:
            for old in self._workdir.glob("events.out.tfevents.*"):
                old.unlink()
        else:
            _wait_for_a_later_second(self._workdir)
        self._writer = EventFileWriter(str(self._workdir))
        if self._first_epoch > 1:
            # TensorBoard's reader drops every event at or after the step of a START.
            start = event_pb2.SessionLog(status=event_pb2.SessionLog.START)
            self._writer.add_event(self._Event(wall_time=time.time(), step=self._first_epoch, session_log=start))

    def _write(self, epoch: int, values: list) -> None:
        self._writer.add_event(self._Event(wall_time=time.time(), step=epoch, summary=self._Summary(value=values)))
        self._writer.flush()

    def scalars(self, record: dict) -> None:
        """One metrics.jsonl record: each number but the epoch, at step = epoch."""
        self.open()
        numbers = {k: v for k, v in record.items() if k != "epoch" and isinstance(v, int | float) and not isinstance(v, bool)}
        self._write(record["epoch"], [self._Summary.Value(tag=k, simple_value=v) for k, v in numbers.items()])

    def image(self, tag: str, png: Path, epoch: int) -> None:
        """A PNG the run saved (e.g. a sample grid), its bytes as they are on disk."""
        from PIL import Image

        self.open()
        with Image.open(png) as im:
            width, height, channels = *im.size, len(im.getbands())
        image = self._Summary.Image(height=height, width=width, colorspace=channels, encoded_image_string=Path(png).read_bytes())
        self._write(epoch, [self._Summary.Value(tag=tag, image=image)])

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()

    def __enter__(self) -> TensorBoard:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _wait_for_a_later_second(workdir: Path) -> None:
    """TensorBoard reads a folder's event files in name order, and a name is
    events.out.tfevents.SECONDS.HOST.PID.COUNTER: a file begun in the same second by the same
    process (a resume in a notebook, a test) would sort by the counter as text (10 before 9).
    Waiting, at most a second, for a later second puts the resumed run's file after the others."""
    seconds = [int(p.name.split(".")[3]) for p in workdir.glob("events.out.tfevents.*") if p.name.split(".")[3].isdigit()]
    if seconds:
        time.sleep(max(0.0, max(seconds) + 1 - time.time()))


def save_progress_gif(samples_dir: Path, path: Path, last_epoch: int) -> int:
    """Animates samples/epoch_NNNN.png up to `last_epoch` into one looping GIF; returns its frame count.

    Grids of a later epoch, left by a longer run that this one replaced, are not frames.
    """
    from PIL import Image

    pngs = sorted(p for p in Path(samples_dir).glob("epoch_*.png") if int(p.stem.split("_")[1]) <= last_epoch)
    frames = []
    for png in pngs:
        with Image.open(png) as im:
            frames.append(im.convert("RGB"))
    if not frames:
        return 0
    durations = [GIF_FRAME_MS] * (len(frames) - 1) + [GIF_LAST_FRAME_MS]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=durations, loop=0)
    return len(frames)


def slerp(z0_NxZ: np.ndarray, z1_NxZ: np.ndarray, t_T: np.ndarray) -> np.ndarray:
    """[N, T, Z]: from z0 to z1 at fractions `t_T`, the direction turning by equal angles along the
    great circle and the norm changing linearly, so no step leaves the shell Gaussian noise lives on."""
    norm0, norm1 = (np.linalg.norm(z, axis=1, keepdims=True) for z in (z0_NxZ, z1_NxZ))
    unit0, unit1 = z0_NxZ / norm0, z1_NxZ / norm1
    omega_Nx1x1 = np.arccos(np.clip(np.sum(unit0 * unit1, axis=1), -1.0, 1.0))[:, None, None]
    t = t_T[None, :, None]
    w0, w1 = np.sin((1 - t) * omega_Nx1x1) / np.sin(omega_Nx1x1), np.sin(t * omega_Nx1x1) / np.sin(omega_Nx1x1)
    norm = (1 - t) * norm0[:, None] + t * norm1[:, None]
    return (norm * (w0 * unit0[:, None] + w1 * unit1[:, None])).astype(np.float32)


def interpolation_noise(rows: int, steps: int, latent_dim: int, seed: int) -> np.ndarray:
    """`z_[rows*steps]xZ`: row r runs from the grid's noise vector 2r to vector 2r+1 (reporting.fixed_noise)."""
    z = reporting.fixed_noise(2 * rows, latent_dim, seed)
    return slerp(z[0::2], z[1::2], np.linspace(0.0, 1.0, steps)).reshape(rows * steps, latent_dim)


def save_interpolation(
    generate: Callable[[np.ndarray], np.ndarray],
    path: Path,
    image_shape: tuple[int, ...],
    latent_dim: int,
    seed: int,
    rows: int = 8,
    steps: int = 10,
) -> np.ndarray:
    """Draws the interpolation strip with `generate` (noise [N, Z] -> images [N, D] in [-1, 1]); returns the samples."""
    samples = np.asarray(generate(interpolation_noise(rows, steps, latent_dim, seed)))
    reporting.save_grid(samples, path, image_shape, ncols=steps)
    return samples
