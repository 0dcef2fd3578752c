"""The article's fully connected generator and discriminator, in Flax Linen.

Weights and biases start as PyTorch's `nn.Linear` starts them (uniform in
+-1/sqrt(fan_in)); the article's training depends on it.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn
from flax.linen.dtypes import promote_dtype


def torch_linear_init(fan_in: int) -> nn.initializers.Initializer:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)): nn.Linear's kaiming_uniform(a=sqrt(5)) and its bias init."""
    bound = 1.0 / fan_in**0.5

    def init(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


class TorchDense(nn.Module):
    """A dense layer initialised like `torch.nn.Linear`; params `kernel` [in, out] and `bias` [out].

    `dtype` is the matrix-product dtype (e.g. bfloat16); params stay float32.
    """

    features: int
    dtype: jnp.dtype | None = None
    precision: jax.lax.PrecisionLike = None

    @nn.compact
    def __call__(self, x_BxI: jax.Array) -> jax.Array:
        fan_in = x_BxI.shape[-1]
        init = torch_linear_init(fan_in)
        kernel_IxO = self.param("kernel", init, (fan_in, self.features), jnp.float32)
        bias_O = self.param("bias", init, (self.features,), jnp.float32)
        x_BxI, kernel_IxO, bias_O = promote_dtype(x_BxI, kernel_IxO, bias_O, dtype=self.dtype)
        return jnp.dot(x_BxI, kernel_IxO, precision=self.precision) + bias_O


class Generator(nn.Module):
    """z_BxZ -> x_BxD in [-1, 1]: Linear + LeakyReLU(0.2) per hidden width, then Linear + tanh."""

    features: Sequence[int] = (256, 512, 1024)
    out_dim: int = 784
    dtype: jnp.dtype | None = None
    precision: jax.lax.PrecisionLike = None

    @nn.compact
    def __call__(self, z_BxZ: jax.Array) -> jax.Array:
        h = z_BxZ
        for i, width in enumerate(self.features):
            h = nn.leaky_relu(TorchDense(width, self.dtype, self.precision, name=f"hidden_{i}")(h), 0.2)
        return jnp.tanh(TorchDense(self.out_dim, self.dtype, self.precision, name="out")(h)).astype(jnp.float32)


class Discriminator(nn.Module):
    """x_BxD -> logits_B (the article's Sigmoid is folded into the loss).

    Linear + LeakyReLU(0.2) + Dropout per hidden width, then Linear to one logit.
    """

    features: Sequence[int] = (256, 128)
    dropout: float = 0.3
    dtype: jnp.dtype | None = None
    precision: jax.lax.PrecisionLike = None

    @nn.compact
    def __call__(self, x_BxD: jax.Array, *, train: bool) -> jax.Array:
        h = x_BxD
        for i, width in enumerate(self.features):
            h = nn.leaky_relu(TorchDense(width, self.dtype, self.precision, name=f"hidden_{i}")(h), 0.2)
            h = nn.Dropout(self.dropout, deterministic=not train)(h)
        return TorchDense(1, self.dtype, self.precision, name="out")(h)[:, 0].astype(jnp.float32)


def param_count(params) -> int:
    return sum(x.size for x in jax.tree.leaves(params))
