"""Other sources of training images than the bundled MNIST: folders of IDX files and TFDS data sets.

`gancore.data.load` picks the source from --dataset; these readers turn each into `Images`
(uint8 [N, H, W] or [N, H, W, C] and int64 labels) or stop with one DataError sentence.
"""

from __future__ import annotations

import dataclasses
import gzip
import struct
from pathlib import Path

import numpy as np

from gancore.config import UserError


class DataError(UserError):
    """A data file is missing, corrupt or cannot hold the requested selection."""


@dataclasses.dataclass(frozen=True)
class Images:
    """A split of a data set: `images_NxHxW` uint8 in [0, 255], `labels_N` int64.

    Grey images are [N, H, W]; colour ones carry their channels last, [N, H, W, C].
    """

    images_NxHxW: np.ndarray
    labels_N: np.ndarray

    def __len__(self) -> int:
        return len(self.labels_N)

    @property
    def image_shape(self) -> tuple[int, ...]:
        """(H, W) for grey images, (H, W, C) for colour ones."""
        return tuple(self.images_NxHxW.shape[1:])

    @property
    def flat_NxD(self) -> np.ndarray:
        return self.images_NxHxW.reshape(len(self), -1)


FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist
_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: Path) -> np.ndarray:
    """Reads one IDX file (optionally gzipped) of unsigned bytes into an array."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
        zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
        if zero != 0 or dtype_code != 0x08 or not 1 <= ndim <= 4:
            raise ValueError("bad magic number")
        shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
        data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
        if data.size != int(np.prod(shape)):
            raise ValueError(f"expected {int(np.prod(shape))} values, found {data.size}")
    except (OSError, EOFError, ValueError, struct.error) as e:
        raise DataError(f"{path} is not a valid IDX file of unsigned bytes ({e}); download it again.") from None
    return data.reshape(shape)


def _find_idx(data_dir: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (data_dir / name).is_file():
            return data_dir / name
    raise DataError(f"{data_dir} has no {stem}[.gz]: point --data-dir at a folder with the four standard IDX files.")


def load_idx_dir(data_dir: Path | str) -> dict[str, Images]:
    """Both splits from a folder of the four standard IDX files."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"data folder {data_dir} does not exist; point --data-dir at a folder with the four standard IDX files.")
    out = {}
    for split, (img_stem, lbl_stem) in _IDX_FILES.items():
        images = read_idx(_find_idx(data_dir, img_stem))
        labels = read_idx(_find_idx(data_dir, lbl_stem)).astype(np.int64)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(f"{data_dir}: {split} images {images.shape} and labels {labels.shape} do not match; expected [N, H, W] images and N labels.")
        out[split] = Images(images, labels)
    return out


def load_fashion_mnist(data_dir: Path | str | None = None) -> dict[str, Images]:
    """Both Fashion-MNIST splits from Debian's IDX files (or the same four files in `data_dir`)."""
    data_dir = Path(data_dir or FASHION_MNIST_DIR)
    if not data_dir.is_dir():
        raise DataError(
            f"Fashion-MNIST is not installed in {data_dir}: run `apt-get install dataset-fashion-mnist` "
            "(Debian, Ubuntu) or pass --data-dir with its four IDX files."
        )
    return load_idx_dir(data_dir)


def _tfds_images(source, name: str, split: str) -> Images:
    if len(source) == 0:
        raise DataError(f"tfds:{name} has no {split} examples; choose another data set.")
    examples = [source[i] for i in range(len(source))]
    first = examples[0]
    keys = ["image"] if "image" in first else [k for k, v in first.items() if isinstance(v, np.ndarray) and v.ndim == 3]
    if len(keys) != 1:
        raise DataError(f"tfds:{name} has no single image feature (its features: {', '.join(first)}); choose an image data set.")
    shapes = {ex[keys[0]].shape for ex in examples}
    if len(shapes) != 1:
        raise DataError(f"tfds:{name} has images of {len(shapes)} different sizes; choose a data set of fixed-size images.")
    images = np.stack([ex[keys[0]] for ex in examples])
    if images.dtype != np.uint8 or images.ndim != 4:
        raise DataError(f"tfds:{name} images are {images.dtype} {images.shape[1:]}, not uint8 [H, W, C]; choose an image data set.")
    labels = np.array([ex.get("label", 0) for ex in examples], np.int64)
    # Grey images as [N, H, W], as the IDX sources give them.
    return Images(images[..., 0] if images.shape[-1] == 1 else images, labels)


def load_tfds(name: str, split: str, data_dir: Path | str | None = None) -> Images:
    """One split of the TFDS data set `name`, read through `tfds.data_source` (array_record, no TensorFlow).

    Prepares it in `data_dir` (TFDS's default folder when None) first if needed, which downloads it.
    """
    import requests
    import tensorflow_datasets as tfds

    try:
        source = tfds.data_source(name, split=split, data_dir=None if data_dir is None else str(data_dir))
    except tfds.core.registered.DatasetNotFoundError:
        raise DataError(f"TFDS has no data set {name!r}; pass --dataset tfds:NAME with a name from the TFDS catalog.") from None
    except (requests.ConnectionError, requests.Timeout) as e:
        raise DataError(
            f"cannot download tfds:{name}: the network cannot be reached ({type(e).__name__}); "
            "prepare it on a machine with internet access and pass its folder as --data-dir."
        ) from None
    except ValueError as e:  # e.g. an unknown split
        raise DataError(f"tfds:{name} cannot be read: {str(e).splitlines()[0].rstrip('.')}.") from None
    return _tfds_images(source, name, split)
