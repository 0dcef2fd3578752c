"""A dense layer with its bias, LeakyReLU and dropout as one Pallas kernel: dropout(leaky_relu(x @ w + b)).

The matrix product is tiled (blocks of rows x columns, a loop over K) with float32
accumulation; bias, LeakyReLU and the dropout mask are applied in the epilogue, so the
pre-activation never goes through memory. The mask is drawn outside the kernel with the
same call as Flax's `nn.Dropout` (`jaxgan.models` draws it in the same scope), so with the
same key the layer equals the XLA path, and dropout is inverted as Flax does it:
kept values divided by keep_prob, the others 0.

On a CPU the kernel runs in Pallas's interpret mode (a jitted scan over the grid: slow,
for testing); on a GPU it is lowered through Triton. Shapes that are not multiples of the
blocks are padded with zeros and the result sliced. The backward pass is plain jnp
(`jax.custom_vjp`), from the layer's output and the mask: no pre-activation is saved.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

# Rows, columns and K of a block, at most (powers of 2: Triton's tensors must be).
BLOCK_M, BLOCK_N, BLOCK_K = 128, 128, 32


def fused_dense(
    x_BxI: jax.Array,
    w_IxO: jax.Array,
    b_O: jax.Array,
    keep_BxO: jax.Array | None = None,
    *,
    slope: float,
    rate: float = 0.0,
    precision: jax.lax.PrecisionLike = None,
    interpret: bool | None = None,
) -> jax.Array:
    """dropout(leaky_relu(x @ w + b, slope)) in the dtype of x.

    Args:
      x_BxI, w_IxO, b_O: inputs, weights and bias, in the product dtype (cast them first, as
        `flax.linen.dtypes.promote_dtype` does).
      keep_BxO: the dropout mask (True: kept), e.g. `jax.random.bernoulli(key, 1 - rate, (B, O))`;
        None: no dropout.
      slope: LeakyReLU's negative slope; must be > 0 (the backward pass reads the sign of the output).
      rate: the dropout rate, in [0, 1); kept values are divided by 1 - rate.
      precision: of the products (None: `jax.default_matmul_precision`'s).
      interpret: Pallas's interpret mode; None: on a CPU backend only.

    Returns:
      y_BxO, differentiable in x, w and b.
    """
    if not slope > 0:
        raise ValueError(f"fused_dense needs a LeakyReLU slope > 0 (its backward pass reads the output's sign), got {slope}.")
    if not 0 <= rate < 1:
        raise ValueError(f"fused_dense needs a dropout rate in [0, 1), got {rate}.")
    if precision is None:
        precision = jax.config.jax_default_matmul_precision
    if interpret is None:
        interpret = jax.default_backend() == "cpu"
    keep = None if keep_BxO is None else keep_BxO.astype(jnp.int8)  # Triton loads bytes, not i1
    return _fused(x_BxI, w_IxO, b_O, keep, float(slope), 1.0 - float(rate), precision, bool(interpret))


def _block(size: int, most: int) -> int:
    """The block along a dimension of `size`: a power of 2 in [16, most] (Triton's dot needs >= 16)."""
    return max(16, min(most, pl.next_power_of_2(size)))


def _pad_to(a: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    if a.shape == shape:
        return a
    return jnp.pad(a, [(0, n - m) for m, n in zip(a.shape, shape)])


def _kernel(x_ref, w_ref, b_ref, *refs, block_k: int, slope: float, keep_prob: float, precision):
    """One (block_m, block_n) tile of the output: the K loop, then bias, LeakyReLU and the mask."""
    keep_ref, y_ref = refs if len(refs) == 2 else (None, refs[0])
    block_m, block_n = y_ref.shape

    def accumulate(k, acc_MxN):
        x_MxK = x_ref[:, pl.ds(k * block_k, block_k)]
        w_KxN = w_ref[pl.ds(k * block_k, block_k), :]
        return acc_MxN + jnp.dot(x_MxK, w_KxN, precision=precision, preferred_element_type=jnp.float32)

    acc_MxN = jax.lax.fori_loop(0, x_ref.shape[1] // block_k, accumulate, jnp.zeros((block_m, block_n), jnp.float32))
    pre_MxN = acc_MxN + b_ref[...].astype(jnp.float32)[None, :]
    act_MxN = jnp.where(pre_MxN >= 0, pre_MxN, slope * pre_MxN)  # jax.nn.leaky_relu's form
    if keep_ref is not None:  # flax.linen.Dropout's form: select(mask, x / keep_prob, 0)
        act_MxN = jnp.where(keep_ref[...] != 0, act_MxN / keep_prob, 0.0)
    y_ref[...] = act_MxN.astype(y_ref.dtype)


def _forward(x_BxI, w_IxO, b_O, keep_BxO, slope, keep_prob, precision, interpret) -> jax.Array:
    (B, I), O = x_BxI.shape, w_IxO.shape[1]
    bm, bn, bk = _block(B, BLOCK_M), _block(O, BLOCK_N), _block(I, BLOCK_K)
    Bp, Op, Ip = pl.cdiv(B, bm) * bm, pl.cdiv(O, bn) * bn, pl.cdiv(I, bk) * bk
    # Zero padding: padded K contributes nothing, padded rows and columns are sliced off.
    inputs = [_pad_to(x_BxI, (Bp, Ip)), _pad_to(w_IxO, (Ip, Op)), _pad_to(b_O, (Op,))]
    in_specs = [
        pl.BlockSpec((bm, Ip), lambda i, j: (i, 0)),
        pl.BlockSpec((Ip, bn), lambda i, j: (0, j)),
        pl.BlockSpec((bn,), lambda i, j: (j,)),
    ]
    tile = pl.BlockSpec((bm, bn), lambda i, j: (i, j))
    if keep_BxO is not None:
        inputs.append(_pad_to(keep_BxO, (Bp, Op)))
        in_specs.append(tile)
    kernel = functools.partial(_kernel, block_k=bk, slope=slope, keep_prob=keep_prob, precision=precision)
    y = pl.pallas_call(
        kernel,
        out_shape=jax.ShapeDtypeStruct((Bp, Op), x_BxI.dtype),
        grid=(Bp // bm, Op // bn),
        in_specs=in_specs,
        out_specs=tile,
        interpret=interpret,
        compiler_params=None if interpret else _triton_params(),
        name="fused_dense",
    )(*inputs)
    return y if (Bp, Op) == (B, O) else y[:B, :O]


def _triton_params():
    from jax.experimental.pallas import triton as plgpu  # GPU only: the CPU path never needs it

    return plgpu.CompilerParams(num_warps=4, num_stages=3)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5, 6, 7))
def _fused(x_BxI, w_IxO, b_O, keep_BxO, slope, keep_prob, precision, interpret):
    return _forward(x_BxI, w_IxO, b_O, keep_BxO, slope, keep_prob, precision, interpret)


def _fused_fwd(x_BxI, w_IxO, b_O, keep_BxO, slope, keep_prob, precision, interpret):
    y_BxO = _forward(x_BxI, w_IxO, b_O, keep_BxO, slope, keep_prob, precision, interpret)
    return y_BxO, (x_BxI, w_IxO, keep_BxO, y_BxO)


def _fused_bwd(slope, keep_prob, precision, interpret, residuals, g_BxO):
    """The same operations as autodiff of the XLA path (select, divide, where), so the gradients agree."""
    del interpret
    x_BxI, w_IxO, keep_BxO, y_BxO = residuals
    if keep_BxO is not None:
        g_BxO = jnp.where(keep_BxO != 0, g_BxO, jnp.zeros_like(g_BxO)) / jnp.asarray(keep_prob, g_BxO.dtype)
    # With slope > 0 (and a kept value), y >= 0 exactly where the pre-activation is.
    g_pre_BxO = jnp.where(y_BxO >= 0, g_BxO, slope * g_BxO)
    g_x_BxI = jnp.dot(g_pre_BxO, w_IxO.T, precision=precision)
    g_w_IxO = jnp.dot(x_BxI.T, g_pre_BxO, precision=precision)
    g_b_O = jnp.sum(g_pre_BxO, axis=0)
    return g_x_BxI, g_w_IxO, g_b_O, None


_fused.defvjp(_fused_fwd, _fused_bwd)


def reference(x_BxI, w_IxO, b_O, keep_BxO=None, *, slope: float, rate: float = 0.0, precision=None) -> jax.Array:
    """The XLA path's operations (jnp.dot, jax.nn.leaky_relu, flax's dropout), for tests and comparison."""
    y = jax.nn.leaky_relu(jnp.dot(x_BxI, w_IxO, precision=precision) + b_O, slope)
    if keep_BxO is None:
        return y
    return jax.lax.select(keep_BxO, y / (1.0 - rate), jnp.zeros_like(y))
