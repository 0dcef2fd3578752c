"""The article's fully connected generator and discriminator, and DCGAN-style convolutional ones, in Flax Linen.

Weights and biases start as PyTorch's `nn.Linear` starts them (uniform in
+-1/sqrt(fan_in)); the article's training depends on it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn
from flax.linen.dtypes import promote_dtype

from gancore.config import keep_probability
from gancore.framework_settings import DENSE
from jaxgan.pallas_dense import fused_dense


def torch_linear_init(fan_in: int) -> nn.initializers.Initializer:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)): nn.Linear's kaiming_uniform(a=sqrt(5)) and its bias init."""
    bound = 1.0 / fan_in**0.5

    def init(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def conv_kernel_init() -> nn.initializers.Initializer:
    """Flax's default kernel init (lecun_normal) drawn as the [kh*kw*in, out] matrix and reshaped: the same values
    and fan-in for every PRNG, but XLA:CPU compiles a rank-2 draw in ~0.3 CPU-s, a rank-4 one in 0.5-1.2 s a kernel."""
    lecun = nn.initializers.lecun_normal()
    return lambda key, shape, dtype=jnp.float32: lecun(key, (math.prod(shape[:-1]), shape[-1]), dtype).reshape(shape)


class TorchDense(nn.Module):
    """A dense layer initialised like `torch.nn.Linear`; params `kernel` [in, out] and `bias` [out].

    `dtype` is the matrix-product dtype (e.g. bfloat16); params stay float32.
    """

    features: int
    dtype: jnp.dtype | None = None
    precision: jax.lax.PrecisionLike = None

    def params_for(self, x_BxI: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """x, kernel and bias in the product dtype."""
        fan_in = x_BxI.shape[-1]
        init = torch_linear_init(fan_in)
        kernel_IxO = self.param("kernel", init, (fan_in, self.features), jnp.float32)
        bias_O = self.param("bias", init, (self.features,), jnp.float32)
        return promote_dtype(x_BxI, kernel_IxO, bias_O, dtype=self.dtype)

    @nn.compact
    def __call__(self, x_BxI: jax.Array) -> jax.Array:
        x_BxI, kernel_IxO, bias_O = self.params_for(x_BxI)
        return jnp.dot(x_BxI, kernel_IxO, precision=self.precision) + bias_O


class FusedTorchDense(TorchDense):
    """`TorchDense`, then LeakyReLU and optional dropout, as one Pallas kernel (`jaxgan.pallas_dense`);
    the same params as `TorchDense`."""

    @nn.compact
    def __call__(self, x_BxI: jax.Array, keep_BxO: jax.Array | None = None, *, slope: float, rate: float = 0.0) -> jax.Array:
        x_BxI, kernel_IxO, bias_O = self.params_for(x_BxI)
        return fused_dense(x_BxI, kernel_IxO, bias_O, keep_BxO, slope=slope, rate=rate, precision=self.precision)


def keep_mask(key: jax.Array, rate: float, shape: tuple[int, ...], bits: int = 32) -> jax.Array:
    """A dropout mask (True: kept) from `bits` random bits a unit.

    32: `nn.Dropout`'s own draw (one float32 uniform a unit). 16 or 8: each 32-bit word of
    `jax.random.bits` is cut into 32 // bits fields, and a unit is kept when its field is
    below keep_probability(rate, bits) * 2**bits: the random-number generator does a half or a
    quarter of the work (with JAX's partitionable threefry a narrower `jax.random.bits`
    still runs the generator once a unit).
    """
    if bits == 32:
        return jax.random.bernoulli(key, 1.0 - rate, shape)
    per_word, n = 32 // bits, math.prod(shape)
    words_W = jax.random.bits(key, (-(-n // per_word),), jnp.uint32)
    shifts = jnp.arange(per_word, dtype=jnp.uint32) * bits
    fields = (words_W[:, None] >> shifts) & jnp.uint32(2**bits - 1)
    threshold = round(keep_probability(rate, bits) * 2**bits)
    return (fields.reshape(-1)[:n] < threshold).reshape(shape)


class DropoutMask(nn.Module):
    """The mask `nn.Dropout(rate)` draws (True: kept): named as that Dropout is, it draws the same one.
    With `bits` < 32, `keep_mask`'s narrower draw from the same key."""

    rate: float
    bits: int = 32

    @nn.compact
    def __call__(self, shape: tuple[int, ...]) -> jax.Array:
        return keep_mask(self.make_rng("dropout"), self.rate, shape, self.bits)


class BitsDropout(nn.Module):
    """`nn.Dropout` with `keep_mask`'s draw of `bits` random bits a unit; kept units are divided
    by their exact keep probability, so the layer's mean is unchanged."""

    rate: float
    bits: int

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool) -> jax.Array:
        if deterministic or self.rate == 0.0:
            return x
        keep = keep_mask(self.make_rng("dropout"), self.rate, x.shape, self.bits)
        return jax.lax.select(keep, x / keep_probability(self.rate, self.bits), jnp.zeros_like(x))


def check_dense(dense: str) -> None:
    if dense not in DENSE:
        raise ValueError(f"dense must be one of {', '.join(DENSE)}, got {dense!r}.")


def _one_hot(labels_B: jax.Array | None, num_classes: int, dtype: jnp.dtype) -> jax.Array | None:
    """one-hot labels_BxK for a conditional net (num_classes > 0), None for an unconditional one."""
    if (labels_B is None) != (num_classes == 0):
        raise ValueError(f"labels_B must be given exactly when num_classes > 0; num_classes is {num_classes}.")
    return None if labels_B is None else jax.nn.one_hot(labels_B, num_classes, dtype=dtype)


def with_labels(x_BxF: jax.Array, labels_B: jax.Array | None, num_classes: int) -> jax.Array:
    """x with one-hot(labels) appended along its last axis (x itself for an unconditional net)."""
    onehot_BxK = _one_hot(labels_B, num_classes, x_BxF.dtype)
    return x_BxF if onehot_BxK is None else jnp.concatenate([x_BxF, onehot_BxK], axis=-1)


class Generator(nn.Module):
    """z_BxZ -> x_BxD in [-1, 1]: Linear + LeakyReLU(0.2) per hidden width, then Linear + tanh.

    Conditional when `num_classes` > 0: one-hot(labels_B) is appended to z.
    """

    features: Sequence[int] = (256, 512, 1024)
    out_dim: int = 784
    dtype: jnp.dtype | None = None
    precision: jax.lax.PrecisionLike = None
    num_classes: int = 0
    dense: str = "xla"  # "pallas": hidden layers as one Pallas kernel each (jaxgan.pallas_dense)

    @nn.compact
    def __call__(self, z_BxZ: jax.Array, labels_B: jax.Array | None = None) -> jax.Array:
        check_dense(self.dense)
        h = with_labels(z_BxZ, labels_B, self.num_classes)
        for i, width in enumerate(self.features):
            if self.dense == "pallas":
                h = FusedTorchDense(width, self.dtype, self.precision, name=f"hidden_{i}")(h, slope=0.2)
                continue
            h = nn.leaky_relu(TorchDense(width, self.dtype, self.precision, name=f"hidden_{i}")(h), 0.2)
        return jnp.tanh(TorchDense(self.out_dim, self.dtype, self.precision, name="out")(h)).astype(jnp.float32)


class Discriminator(nn.Module):
    """x_BxD -> logits_B (the article's Sigmoid is folded into the loss).

    Linear + LeakyReLU(0.2) + Dropout per hidden width, then Linear to one logit.
    Conditional when `num_classes` > 0: one-hot(labels_B) is appended to x.
    """

    features: Sequence[int] = (256, 128)
    dropout: float = 0.3
    dtype: jnp.dtype | None = None
    precision: jax.lax.PrecisionLike = None
    num_classes: int = 0
    dense: str = "xla"  # "pallas": hidden layers as one Pallas kernel each (jaxgan.pallas_dense)
    dropout_bits: int = 32  # random bits a dropout decision uses (keep_mask); 32: nn.Dropout's own draw

    def _rate(self) -> float:
        """The rate the fused layer divides by: 1 - keep_probability (the rate itself at 32 bits)."""
        return self.dropout if self.dropout_bits == 32 else 1.0 - keep_probability(self.dropout, self.dropout_bits)

    @nn.compact
    def __call__(self, x_BxD: jax.Array, labels_B: jax.Array | None = None, *, train: bool) -> jax.Array:
        check_dense(self.dense)
        h = with_labels(x_BxD, labels_B, self.num_classes)
        for i, width in enumerate(self.features):
            if self.dense == "pallas":
                # Named as the XLA path's nn.Dropout: the same key, so the same mask.
                drop = train and self.dropout > 0
                keep_BxO = DropoutMask(self.dropout, self.dropout_bits, name=f"Dropout_{i}")((h.shape[0], width)) if drop else None
                layer = FusedTorchDense(width, self.dtype, self.precision, name=f"hidden_{i}")
                h = layer(h, keep_BxO, slope=0.2, rate=self._rate() if drop else 0.0)
                continue
            h = nn.leaky_relu(TorchDense(width, self.dtype, self.precision, name=f"hidden_{i}")(h), 0.2)
            if self.dropout_bits == 32:
                h = nn.Dropout(self.dropout, deterministic=not train)(h)
            else:
                h = BitsDropout(self.dropout, self.dropout_bits, name=f"Dropout_{i}")(h, deterministic=not train)
        return TorchDense(1, self.dtype, self.precision, name="out")(h)[:, 0].astype(jnp.float32)


def param_count(params) -> int:
    return sum(x.size for x in jax.tree.leaves(params))


def _image_hwc(image_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(H, W) or (H, W, C) -> (H, W, C), after checking the convolutional nets can halve H and W twice."""
    hwc = tuple(image_shape) + (1,) * (len(image_shape) == 2)
    if len(hwc) != 3 or min(hwc) < 1 or hwc[0] % 4 or hwc[1] % 4:
        raise ValueError(f"image_shape must be (H, W) or (H, W, C) with H and W positive multiples of 4, got {image_shape!r}.")
    return hwc


class ConvTranspose2x(nn.Module):
    """`nn.ConvTranspose(features, (4, 4), (2, 2), "SAME")`: the same params and outputs, doubling H and W.

    Computed as four 2x2 stride-1 convolutions, one per output phase: XLA's CPU backend
    takes ~25x longer for the kernel gradient of a wide transposed convolution (128 -> 64 channels).
    """

    features: int
    dtype: jnp.dtype | None = None
    precision: jax.lax.PrecisionLike = None

    @nn.compact
    def __call__(self, x_BxHxWxI: jax.Array) -> jax.Array:
        B, H, W, I = x_BxHxWxI.shape
        kernel_4x4xIxO = self.param("kernel", conv_kernel_init(), (4, 4, I, self.features), jnp.float32)
        bias_O = self.param("bias", nn.initializers.zeros_init(), (self.features,), jnp.float32)
        x_BxHxWxI, kernel_4x4xIxO, bias_O = promote_dtype(x_BxHxWxI, kernel_4x4xIxO, bias_O, dtype=self.dtype)
        # Even outputs read inputs m-1 and m through taps 0 and 2; odd ones m and m+1 through taps 1 and 3.
        pads = ((1, 0), (0, 1))

        def phase(a: int, b: int) -> jax.Array:
            kernel_2x2xIxO = kernel_4x4xIxO[a::2, b::2]
            return jax.lax.conv_general_dilated(
                x_BxHxWxI,
                kernel_2x2xIxO,
                (1, 1),
                (pads[a], pads[b]),
                precision=self.precision,
                dimension_numbers=("NHWC", "HWIO", "NHWC"),
            )

        y_BxHx2xWx2xO = jnp.stack([jnp.stack([phase(a, b) for b in (0, 1)], axis=3) for a in (0, 1)], axis=2)
        return y_BxHx2xWx2xO.reshape(B, 2 * H, 2 * W, self.features) + bias_O


class DCGenerator(nn.Module):
    """z_BxZ -> x_BxD in [-1, 1], a DCGAN generator: Dense to (H/4, W/4, 2F), two 4x4 stride-2
    transposed convolutions to (H/2, W/2, F) and (H, W, C), ReLU between, tanh last.

    No normalisation, so params are the only collection: a per-sample LayerNorm in BatchNorm's
    place did not clearly help. Conditional when `num_classes` > 0: one-hot labels are appended to z.
    """

    image_shape: tuple[int, ...] = (28, 28)
    features: int = 32
    num_classes: int = 0
    dtype: jnp.dtype | None = None
    precision: jax.lax.PrecisionLike = None

    def __post_init__(self):
        _image_hwc(self.image_shape)
        super().__post_init__()

    @nn.compact
    def __call__(self, z_BxZ: jax.Array, labels_B: jax.Array | None = None) -> jax.Array:
        H, W, C = _image_hwc(self.image_shape)
        F = self.features
        h = with_labels(z_BxZ, labels_B, self.num_classes)
        h = nn.relu(nn.Dense((H // 4) * (W // 4) * 2 * F, dtype=self.dtype, precision=self.precision, name="project")(h))
        h = h.reshape(-1, H // 4, W // 4, 2 * F)
        h = nn.relu(ConvTranspose2x(F, self.dtype, self.precision, name="up_0")(h))
        # Into C channels XLA's CPU backend is fast for the transposed convolution itself, faster than the phases.
        up_1 = nn.ConvTranspose(C, (4, 4), (2, 2), "SAME", dtype=self.dtype, precision=self.precision, kernel_init=conv_kernel_init(), name="up_1")
        x_BxHxWxC = jnp.tanh(up_1(h))
        return x_BxHxWxC.reshape(z_BxZ.shape[0], H * W * C).astype(jnp.float32)


class DCDiscriminator(nn.Module):
    """x_BxD -> logits_B, a DCGAN discriminator: two 4x4 stride-2 convolutions (F, then 2F
    channels) with LeakyReLU(0.2) and optional Dropout, then Dense to one logit.

    Nothing mixes samples, so it serves as a WGAN-GP critic. Conditional when `num_classes` > 0:
    one-hot labels enter as K constant input channels.
    """

    image_shape: tuple[int, ...] = (28, 28)
    features: int = 32
    num_classes: int = 0
    dropout: float = 0.0
    dtype: jnp.dtype | None = None
    precision: jax.lax.PrecisionLike = None

    def __post_init__(self):
        _image_hwc(self.image_shape)
        super().__post_init__()

    @nn.compact
    def __call__(self, x_BxD: jax.Array, labels_B: jax.Array | None = None, *, train: bool) -> jax.Array:
        H, W, C = _image_hwc(self.image_shape)
        h = x_BxD.reshape(-1, H, W, C)
        onehot_BxK = _one_hot(labels_B, self.num_classes, h.dtype)
        if onehot_BxK is not None:
            planes_BxHxWxK = jnp.broadcast_to(onehot_BxK[:, None, None, :], (*h.shape[:3], self.num_classes))
            h = jnp.concatenate([h, planes_BxHxWxK], axis=-1)
        conv = dict(kernel_size=(4, 4), strides=(2, 2), padding="SAME", dtype=self.dtype, precision=self.precision, kernel_init=conv_kernel_init())
        for i, width in enumerate((self.features, 2 * self.features)):
            h = nn.leaky_relu(nn.Conv(width, **conv, name=f"down_{i}")(h), 0.2)
            h = nn.Dropout(self.dropout, deterministic=not train)(h)
        h = h.reshape(h.shape[0], -1)
        return nn.Dense(1, dtype=self.dtype, precision=self.precision, name="out")(h)[:, 0].astype(jnp.float32)


class SpectralNormed(nn.Module):
    """`discriminator` with every kernel of its layers divided by an estimate of its largest singular
    value (spectral normalisation, Miyato et al. 2018; convolution kernels as [kh*kw*in, out] matrices).

    Flax's `nn.SpectralNorm` keeps each kernel's power-iteration vector u in the "batch_stats"
    collection; u advances only where that collection is mutable (jaxgan.step: D's update), so the
    G step, sampling and evaluation see D as it is. Params sit under "discriminator".
    """

    discriminator: nn.Module

    @nn.compact
    def __call__(self, x_BxD: jax.Array, labels_B: jax.Array | None = None, *, train: bool) -> jax.Array:
        labels = {} if labels_B is None else {"labels_B": labels_B}
        update_stats = self.is_mutable_collection("batch_stats")
        return nn.SpectralNorm(self.discriminator)(x_BxD, **labels, train=train, update_stats=update_stats)
