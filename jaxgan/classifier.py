"""A small MNIST CNN, the project's own feature extractor for sample quality.

Published MNIST FIDs use Inception features that cannot be downloaded here, so
jaxgan brings this classifier: its penultimate features feed FID and
precision/recall, its logits the classifier score and mode coverage. The
committed weights (`assets/mnist_classifier.msgpack`) come from
`scripts/train_classifier.py` with its defaults; `load_params` refuses any other
bytes than those, so every figure the project reports uses the same extractor.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen as nn
from flax import serialization

from gancore.data import DataError

WEIGHTS_PATH = Path(__file__).parent / "assets" / "mnist_classifier.msgpack"
WEIGHTS_SHA256 = "e03da4d02afb77b878d597f2790c396c42f753525b6185daada574b092493ac0"
FEATURE_DIM = 128
N_CLASSES = 10


class ClassifierError(DataError):
    """The classifier's weights are missing or are not the committed ones."""


class Classifier(nn.Module):
    """x_BxD in [-1, 1] (MNIST 28x28, flattened) -> (features_BxF, logits_Bx10).

    Two 5x5 stride-2 conv + ReLU stages (16, 32 channels; strides, not pooling,
    keep training fast on a CPU), then a dense ReLU layer of `FEATURE_DIM` (the
    features) and a dense layer to the logits.
    """

    @nn.compact
    def __call__(self, x_BxD: jax.Array) -> tuple[jax.Array, jax.Array]:
        h = x_BxD.reshape(-1, 28, 28, 1)
        for width in (16, 32):
            h = nn.relu(nn.Conv(width, (5, 5), strides=2)(h))
        features_BxF = nn.relu(nn.Dense(FEATURE_DIM)(h.reshape(h.shape[0], -1)))
        return features_BxF, nn.Dense(N_CLASSES)(features_BxF)


def init_params(key: jax.Array):
    return Classifier().init(key, jnp.zeros((1, 784)))["params"]


def loss_fn(params, x_BxD: jax.Array, labels_B: jax.Array) -> jax.Array:
    _, logits = Classifier().apply({"params": params}, x_BxD)
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels_B).mean()


def random_shift(key: jax.Array, images_BxHxW: jax.Array, max_shift: int = 2) -> jax.Array:
    """Each image moved by its own random offset of up to `max_shift` pixels, zero-filled."""
    m = max_shift
    padded = jnp.pad(images_BxHxW, ((0, 0), (m, m), (m, m)))
    offsets_Bx2 = jax.random.randint(key, (images_BxHxW.shape[0], 2), 0, 2 * m + 1)
    crop = lambda img, off: jax.lax.dynamic_slice(img, (off[0], off[1]), images_BxHxW.shape[1:])
    return jax.vmap(crop)(padded, offsets_Bx2)


@functools.partial(jax.jit, static_argnames="tx", donate_argnums=(0, 1))
def train_step(params, opt_state, key, images_NxD, labels_N, idx_B, *, tx: optax.GradientTransformation):
    """One Adam step on the images `idx_B` of the device-resident uint8 set, randomly
    shifted (without the shifts test accuracy stalled at 99.0%) and scaled to [-1, 1].

    Returns (params, opt_state, loss). One step per call: on this 2-core CPU an
    epoch-long `lax.scan` of an earlier version of the net had not finished its
    first epoch after 5 minutes, against 70 s an epoch one step at a time.
    """
    shifted_BxHxW = random_shift(key, images_NxD[idx_B].reshape(-1, 28, 28))
    x_BxD = shifted_BxHxW.reshape(len(idx_B), -1).astype(jnp.float32) / 127.5 - 1.0
    loss, grads = jax.value_and_grad(loss_fn)(params, x_BxD, labels_N[idx_B])
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss


@jax.jit
def _apply(params, x_BxD):
    return Classifier().apply({"params": params}, x_BxD)


def embed_device(params, x_NxD: np.ndarray, batch_size: int = 1000) -> tuple[jax.Array, jax.Array]:
    """(features_NxF, logits_Nx10), float32 and left on the device, for images in [-1, 1] (floats) or uint8 pixels."""
    x_NxD = np.asarray(x_NxD)
    if x_NxD.dtype == np.uint8:
        x_NxD = x_NxD.astype(np.float32) / np.float32(127.5) - np.float32(1.0)
    x_NxD = x_NxD.reshape(len(x_NxD), -1).astype(np.float32)
    chunks = []
    for start in range(0, len(x_NxD), batch_size):
        chunk = x_NxD[start : start + batch_size]
        # Pad the last chunk so every call has the same shape: one compilation.
        chunks.append(_apply(params, np.pad(chunk, ((0, batch_size - len(chunk)), (0, 0)))))
    features, logits = (jnp.concatenate([c[i] for c in chunks])[: len(x_NxD)] for i in (0, 1))
    return features, logits


def embed(params, x_NxD: np.ndarray, batch_size: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """(features_NxF, logits_Nx10) as float64 NumPy, for images in [-1, 1] (floats) or uint8 pixels."""
    features, logits = embed_device(params, x_NxD, batch_size)
    return np.asarray(features, np.float64), np.asarray(logits, np.float64)


def accuracy(params, images_NxD: np.ndarray, labels_N: np.ndarray) -> float:
    return float(np.mean(embed(params, images_NxD)[1].argmax(1) == labels_N))


def to_bytes(params) -> bytes:
    return serialization.msgpack_serialize(jax.tree.map(np.asarray, params))


def load_params(path: Path | str | None = None, sha256: str | None = None):
    """The classifier's params from `path` (the committed file), refused unless its bytes have `sha256`."""
    path, sha256 = Path(path or WEIGHTS_PATH), sha256 or WEIGHTS_SHA256
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ClassifierError(f"classifier weights {path} cannot be read ({e.strerror}); reinstall jaxgan.") from None
    got = hashlib.sha256(raw).hexdigest()
    if got != sha256:
        raise ClassifierError(
            f"classifier weights {path} are not the committed ones (sha256 {got[:12]}..., expected {sha256[:12]}...); "
            "restore them with `git checkout jaxgan/assets` or reinstall jaxgan."
        )
    return jax.tree.map(jnp.asarray, serialization.msgpack_restore(raw))
