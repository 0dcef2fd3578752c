"""Sample quality of a generator against MNIST test images, with the project's classifier.

`evaluate_samples(samples_NxD)` is the one call a trainer or a report needs: it
embeds the samples with `jaxgan.classifier` and returns every metric of
`jaxgan.metrics` as a flat dict of JSON-ready numbers. The classifier's view
of MNIST (features of all 70,000 images, the test images' distances to the
training set) is computed once per process and kept on disk beside the MNIST
cache (`data.cache_dir()`), under a digest of the images and the classifier's
weights; a file whose digest does not match is recomputed, never trusted.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from gancore import data, files, reporting, runs
from jaxgan import classifier, metrics

N_TEST = 10_000
PR_K = 3
KID_SUBSETS = 100  # Bińkowski et al.'s protocol: 100 subsets of min(1000, N)
KID_SUBSET_SIZE = 1000
NN_SPACES = ("features", "pixels")
_CACHE_VERSION = 1


class RunError(ValueError):
    """A workdir does not hold a finished run that can be evaluated."""


@dataclasses.dataclass(frozen=True)
class Reference:
    """N MNIST test images as the classifier sees them: the evaluation protocol's reference set."""

    features_NxF: np.ndarray
    logits_NxK: np.ndarray
    labels_N: np.ndarray
    index_N: np.ndarray  # which test images: their distances to the training set are computed for all 10,000 once
    # Their k-NN radii (precision/recall) by k, computed once: the reference does not change between evaluations.
    _radii: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.labels_N)

    @functools.cached_property
    def features_device(self) -> jax.Array:
        return jnp.asarray(self.features_NxF, jnp.float32)

    def knn_radii(self, k: int) -> np.ndarray:
        if k not in self._radii:
            self._radii[k] = metrics.knn_radii(self.features_device, k)
        return self._radii[k]

    def nn_train_distances(self, space: str) -> np.ndarray:
        """Each image's distance to its nearest MNIST training image in `space`: the memorisation check's yardstick."""
        return test_nn_distances(space)[self.index_N]


def to_unit_range(x_NxD: np.ndarray) -> np.ndarray:
    """Images as float32 in [-1, 1], from uint8 pixels or floats already there."""
    x_NxD = np.asarray(x_NxD).reshape(len(x_NxD), -1)
    return x_NxD.astype(np.float32) / np.float32(127.5) - np.float32(1.0) if x_NxD.dtype == np.uint8 else x_NxD.astype(np.float32)


@functools.cache
def classifier_params():
    return classifier.load_params()


def choose(n_available: int, n: int, seed: int) -> np.ndarray:
    """n of n_available indices: all of them in order when n equals it, else a seeded sample."""
    if not 1 <= n <= n_available:
        raise RunError(f"can choose 1 to {n_available} images, not {n}.")
    return np.arange(n) if n == n_available else np.sort(np.random.default_rng(seed).choice(n_available, n, replace=False))


def _digest(*parts: str | np.ndarray, arrays: dict[str, np.ndarray] | None = None) -> str:
    """sha256 of strings, arrays' bytes and named arrays (their names, dtypes and shapes too)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else np.ascontiguousarray(part).data)
    for name, a in sorted((arrays or {}).items()):
        h.update(f"{name} {a.dtype.str} {a.shape}".encode())
        h.update(np.ascontiguousarray(a).data)
    return h.hexdigest()


def cached_arrays(path: Path, key: str, compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """compute()'s arrays, kept in the .npz `path` with a digest of `key` and of the arrays themselves.

    `key` digests everything they are made from; a file written under another
    key, or whose arrays have changed since, is recomputed and rewritten.
    """
    try:
        with np.load(path) as z:
            arrays = {name: z[name] for name in z.files if name != "digest"}
            trusted = str(z["digest"]) == _digest(key, arrays=arrays)
    except FileNotFoundError:
        trusted = None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # torn or not an .npz
        trusted = False
    if trusted:
        return arrays
    if trusted is False:
        print(f"warning: {path} does not match the images and classifier it was made from (changed or damaged); recomputing it.", file=sys.stderr)
    arrays = compute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with files.atomic_path(path) as tmp:
            np.savez(tmp, **arrays, digest=np.array(_digest(key, arrays=arrays)))
    except OSError as e:
        print(f"warning: cannot keep {path} ({e.strerror}); set JAXGAN_DATA_DIR to a writable folder.", file=sys.stderr)
    return arrays


@functools.cache
def _mnist(folder: Path) -> tuple[data.Images, data.Images, str]:
    """Both MNIST splits and a digest of their images."""
    train, test = data.load("train"), data.load("test")
    return train, test, _digest(train.images_NxHxW, test.images_NxHxW)


@functools.cache
def _embedding(folder: Path, weights_sha256: str) -> dict[str, np.ndarray]:
    train, test, images_key = _mnist(folder)

    def compute() -> dict[str, np.ndarray]:
        (train_f, _), (test_f, test_l) = (classifier.embed_device(classifier_params(), s.flat_NxD) for s in (train, test))
        return {"train_features": np.asarray(train_f), "test_features": np.asarray(test_f), "test_logits": np.asarray(test_l)}

    return cached_arrays(folder / f"mnist-embedding-v{_CACHE_VERSION}.npz", _digest(images_key, weights_sha256), compute)


def mnist_embedding() -> dict[str, np.ndarray]:
    """The classifier's float32 train_features, test_features and test_logits of all MNIST images."""
    classifier_params()  # refuses other weights before any file is read or written
    return _embedding(data.cache_dir(), classifier.WEIGHTS_SHA256)


@functools.cache
def _train_vectors(folder: Path, weights_sha256: str, space: str) -> jax.Array:
    if space == "features":
        return jnp.asarray(_embedding(folder, weights_sha256)["train_features"])
    return jnp.asarray(to_unit_range(_mnist(folder)[0].flat_NxD))


def train_vectors(space: str) -> jax.Array:
    """The 60,000 MNIST training images on the device, as the classifier's features or [-1, 1] pixels."""
    if space not in NN_SPACES:
        raise RunError(f"unknown space {space!r}; choose from {NN_SPACES}.")
    mnist_embedding()
    return _train_vectors(data.cache_dir(), classifier.WEIGHTS_SHA256, space)


@functools.cache
def _test_nn_distances(folder: Path, weights_sha256: str, space: str) -> np.ndarray:
    _, test, images_key = _mnist(folder)
    # Pixel distances do not depend on the classifier.
    key = _digest(images_key, weights_sha256 if space == "features" else "", space)

    def compute() -> dict[str, np.ndarray]:
        queries = _embedding(folder, weights_sha256)["test_features"] if space == "features" else to_unit_range(test.flat_NxD)
        return {"distances": metrics.nearest_distances(queries, _train_vectors(folder, weights_sha256, space))}

    return cached_arrays(folder / f"mnist-test-nn-{space}-v{_CACHE_VERSION}.npz", key, compute)["distances"]


def test_nn_distances(space: str) -> np.ndarray:
    """Each of the 10,000 MNIST test images' distance to its nearest training image in `space`."""
    train_vectors(space)
    return _test_nn_distances(data.cache_dir(), classifier.WEIGHTS_SHA256, space)


def test_reference(n: int = N_TEST, seed: int = 0) -> Reference:
    """N MNIST test images: the evaluation protocol's reference set (all 10,000 by default)."""
    embedding, labels_N = mnist_embedding(), _mnist(data.cache_dir())[1].labels_N
    idx = choose(len(labels_N), n, seed)
    features, logits = (np.asarray(embedding[name][idx], np.float64) for name in ("test_features", "test_logits"))
    return Reference(features, logits, labels_N[idx], idx)


def evaluate_samples(
    samples_NxD: np.ndarray,
    ref: Reference | None = None,
    labels_N: np.ndarray | None = None,
    k: int = PR_K,
    kid_subsets: int = KID_SUBSETS,
    kid_subset_size: int = KID_SUBSET_SIZE,
    nn_spaces: tuple[str, ...] = ("features",),
) -> dict:
    """Every metric of the samples (floats in [-1, 1] or uint8 pixels) against `ref`.

    `ref` defaults to as many test images as there are samples (FID depends on N:
    compare figures at the same N only). Returns n, fid, fd_logits,
    classifier_score, precision, recall, modes (classes hit), mode_kl (nats),
    class_histogram (the fraction of samples per predicted class); n_reference;
    kid and kid_std (mean and std over kid_subsets subsets of kid_subset_size,
    at most N); for each of `nn_spaces` ("features": the classifier's; "pixels":
    [-1, 1] images, Euclidean), the memorisation check against the 60,000
    training images: nn_{space}_median (samples), nn_{space}_median_test (the
    reference's images) and nn_{space}_close (the share of samples closer than
    the reference's 1st percentile). With the labels a conditional G was asked
    for, also class_accuracy (the fraction the classifier reads as the asked-for
    class) and intra_fid (the mean over classes of FID within a class;
    intra_fid_per_class, intra_fid_class_n: [samples, reference images] per
    class; None where a class has fewer than 2).
    """
    if unknown := set(nn_spaces) - set(NN_SPACES):
        raise RunError(f"nn_spaces: unknown {sorted(unknown)}; choose from {NN_SPACES}.")
    params = classifier_params()
    ref = ref if ref is not None else test_reference(len(samples_NxD))
    features_dev, logits_dev = classifier.embed_device(params, samples_NxD)
    features, logits = np.asarray(features_dev, np.float64), np.asarray(logits_dev, np.float64)
    predicted_N = logits.argmax(1)
    precision, recall = metrics.precision_recall(ref.features_device, features_dev, k, real_radii_N=ref.knn_radii(k))
    modes, mode_kl = metrics.mode_coverage(predicted_N, ref.labels_N)
    subset_size = min(kid_subset_size, len(features), len(ref))
    kid, kid_std = metrics.kid(features, ref.features_NxF, kid_subsets, subset_size)
    figures = {
        "n": len(samples_NxD),
        "fid": metrics.fid(features, ref.features_NxF),
        "fd_logits": metrics.fid(logits, ref.logits_NxK),
        "classifier_score": metrics.classifier_score(logits),
        "precision": precision,
        "recall": recall,
        "modes": modes,
        "mode_kl": mode_kl,
        "class_histogram": metrics.class_histogram(predicted_N).round(4).tolist(),
        "n_reference": len(ref),
        "kid": kid,
        "kid_std": kid_std,
        "kid_subsets": kid_subsets,
        "kid_subset_size": subset_size,
    }
    for space in nn_spaces:
        queries = features_dev if space == "features" else to_unit_range(samples_NxD)
        dists_N = metrics.nearest_distances(queries, train_vectors(space))
        median, median_test, close = metrics.memorisation(dists_N, ref.nn_train_distances(space))
        figures |= {f"nn_{space}_median": median, f"nn_{space}_median_test": median_test, f"nn_{space}_close": close}
    if nn_spaces:
        figures["nn_train_n"] = len(train_vectors(nn_spaces[0]))
    if labels_N is not None:
        figures["class_accuracy"] = float(np.mean(predicted_N == np.asarray(labels_N)))
        figures |= _intra_fid(features, np.asarray(labels_N), ref)
    return figures


def _intra_fid(features_NxF: np.ndarray, labels_N: np.ndarray, ref: Reference, n_classes: int = 10) -> dict:
    class_n = [[int(np.sum(labels_N == c)), int(np.sum(ref.labels_N == c))] for c in range(n_classes)]
    if min(min(pair) for pair in class_n) < 2:
        return {"intra_fid": None, "intra_fid_per_class": None, "intra_fid_class_n": class_n}
    mean, per_class = metrics.intra_fid(features_NxF, labels_N, ref.features_NxF, ref.labels_N, n_classes)
    return {"intra_fid": mean, "intra_fid_per_class": [round(f, 4) for f in per_class], "intra_fid_class_n": class_n}


def sample_labels(num_classes: int, n: int) -> np.ndarray | None:
    """The labels `generate_jax` asks a conditional G for (the classes in turn); None when unconditional."""
    return reporting.classes_in_turn(num_classes, n) if num_classes else None


def predict(samples_NxD: np.ndarray) -> np.ndarray:
    return classifier.embed(classifier_params(), samples_NxD)[1].argmax(1)


def evaluate_generator(gan, g_params, n: int, seed: int, reference: Reference | None = None) -> dict:
    """The sample quality of a jaxgan generator, as a run's --eval-every measures it: n samples of seed's
    noise against the test reference of (n, seed) (or `reference`), tagged when G's EMA drew them."""
    samples = generate_jax(gan, g_params, n, seed)
    figures = evaluate_samples(samples, reference or test_reference(n, seed), sample_labels(gan.num_classes, n))
    return figures | ({"generator": "ema"} if gan.ema_decay else {})


def generate_jax(gan, g_params, n: int, seed: int, batch_size: int = 1000) -> np.ndarray:
    """n samples [n, D] from the noise `reporting.fixed_noise(n, latent_dim, seed)`, in batches
    (a conditional G's for `sample_labels(num_classes, n)`), one compiled program a batch shape."""
    from jaxgan.step import generate_jit as generate

    z_NxZ = reporting.fixed_noise(n, gan.latent_dim, seed)
    labels_N = sample_labels(gan.num_classes, n)
    return np.concatenate(
        [
            np.asarray(generate(gan, g_params, z_NxZ[i : i + batch_size], None if labels_N is None else labels_N[i : i + batch_size]))
            for i in range(0, n, batch_size)
        ]
    )


def finished_run_config(workdir: Path | str) -> dict:
    """A finished, MNIST-trained run's config.json, read and checked by `runs.read_run_config`
    (ConfigError when it is not a run's settings); RunError when the workdir holds no such run."""
    workdir = Path(workdir)
    if not (workdir / "config.json").is_file():
        raise RunError(f"{workdir} holds no run (no config.json); pass the --workdir of a train_jax.py or train_torch.py run.")
    config = runs.read_run_config(workdir / "config.json")
    final = {"jax": "final_params", "torch": "final.pt"}.get(config.get("framework"))
    if final is None:
        raise RunError(f"{workdir}/config.json names no known framework (jax or torch).")
    if not (workdir / final).exists():
        raise RunError(f"{workdir} has no {final}: the run has not finished; evaluate it when it has.")
    if config.get("dataset", "mnist") != "mnist":
        raise RunError(f"{workdir} was trained on {config['dataset']}, not MNIST; the classifier only knows MNIST digits.")
    if config.get("data_dir"):
        raise RunError(f"{workdir} was trained on {config['data_dir']}, not MNIST; the classifier only knows MNIST digits.")
    return config


def save_labelled_grid(samples_NxD: np.ndarray, predicted_N: np.ndarray, path: Path, ncols: int = 10) -> None:
    """A grid of samples, each titled with the classifier's predicted digit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(samples_NxD)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * 0.9, nrows * 1.05), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(np.asarray(samples_NxD[i], np.float32).reshape(28, 28), cmap="gray", vmin=-1, vmax=1)
            ax.set_title(str(int(predicted_N[i])), fontsize=9, pad=2)
    fig.tight_layout(pad=0.3)
    fig.savefig(path, dpi=80)
    plt.close(fig)
