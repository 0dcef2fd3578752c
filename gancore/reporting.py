"""What both trainers write: metrics.jsonl, sample grids, the loss-curve plot.

NumPy and matplotlib only, so torch_baseline writes exactly the same files.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

METRIC_KEYS = ("d_loss", "g_loss", "d_real", "d_fake")
GRID_SIZE = 64


def fixed_noise(n: int, latent_dim: int, seed: int) -> np.ndarray:
    """The grid's noise `z_NxZ`: the same numbers in both frameworks for a seed."""
    return np.random.default_rng(seed).standard_normal((n, latent_dim)).astype(np.float32)


def classes_in_turn(num_classes: int, n: int, every: int = 1) -> np.ndarray:
    """n labels 0, 1, ..., num_classes - 1, 0, ..., each repeated `every` times: the labels a
    conditional G draws when none are given (every=1), or one class a row of a grid `every` wide."""
    return np.arange(n) // every % num_classes


def sample_grid_inputs(latent_dim: int, num_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray | None, int | None]:
    """(z_NxZ, labels_N, columns) of the fixed sample grid: 64 samples, or, for a
    conditional GAN, one class a row with the same noise down each column."""
    if not num_classes:
        return fixed_noise(GRID_SIZE, latent_dim, seed), None, None
    cols = 10
    z_CxZ = fixed_noise(cols, latent_dim, seed)
    n = num_classes * cols
    return np.tile(z_CxZ, (num_classes, 1)), classes_in_turn(num_classes, n, every=cols), cols


def tile(images_NxHxW: np.ndarray, ncols: int | None = None, pad: int = 2) -> np.ndarray:
    """Lays N images ([N, H, W] or [N, H, W, C]) out on one canvas, row by row, with `pad` pixels between them."""
    n, h, w, *channels = images_NxHxW.shape
    ncols = ncols or math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncols)
    canvas = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, *channels), images_NxHxW.min(), images_NxHxW.dtype)
    for i, img in enumerate(images_NxHxW):
        r, c = divmod(i, ncols)
        canvas[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = img
    return canvas


def save_grid(samples_NxD: np.ndarray, path: Path, image_shape: tuple[int, ...] = (28, 28), ncols: int | None = None, scale: int = 2) -> None:
    """Saves generator outputs in [-1, 1] as one PNG grid, each pixel `scale` x `scale`.

    `image_shape` (H, W) or (H, W, 1) gives a grey-scale grid, (H, W, 3) a colour one.
    """
    import matplotlib.image

    images = np.asarray(samples_NxD, np.float32).reshape(-1, *image_shape)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    canvas = tile(np.clip((images + 1) / 2, 0, 1), ncols)
    canvas = canvas.repeat(scale, axis=0).repeat(scale, axis=1)
    matplotlib.image.imsave(path, canvas, cmap="gray", vmin=0, vmax=1)


class MetricsLog:
    """Appends one JSON object a line to `metrics.jsonl`, flushed at once."""

    def __init__(self, path: Path, *, append: bool = False):
        self.path = Path(path)
        self._file = open(self.path, "a" if append else "w")

    def write(self, record: dict) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> MetricsLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_metrics(path: Path) -> list[dict]:
    """The records of a metrics.jsonl; a line cut short by a crash (or an empty one) is skipped."""
    records = []
    for line in Path(path).read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def plot_losses(records: list[dict], path: Path, title: str = "") -> None:
    """D and G loss, D(x) and D(G(z)) per epoch, as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in records]
    fig, (ax_loss, ax_d) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax_loss.plot(epochs, [r["d_loss"] for r in records], label="D loss", color="tab:red")
    ax_loss.plot(epochs, [r["g_loss"] for r in records], label="G loss", color="tab:green")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.legend()
    ax_d.plot(epochs, [r["d_real"] for r in records], label="D(x)", color="tab:blue")
    ax_d.plot(epochs, [r["d_fake"] for r in records], label="D(G(z))", color="tab:orange")
    ax_d.set_xlabel("epoch")
    ax_d.set_ylim(0, 1)
    ax_d.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
