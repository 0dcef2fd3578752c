"""Flax NNX networks in a `GAN`: `from_nnx` makes an NNX module class a Linen module the step trains,
`to_nnx` gives the trained NNX module back.

    gan = GAN(from_nnx(MyG, latent_dim=64), from_nnx(MyD), latent_dim=64)

The params stay one plain pytree in the `TrainState` (the NNX module's `nnx.Param`s, nested by
attribute name, keys as strings), so the jitted step, checkpoints, resume, grids and evaluation
treat an NNX network exactly as a Linen one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
from flax import linen as nn
from flax import nnx
from flax.core import FrozenDict
from flax.nnx import traversals


def _string_keys(params: dict) -> dict:
    """`nnx.List` layers are keyed 0, 1, ...; Orbax restores them as "0", "1": keep strings throughout."""
    flat = traversals.flatten_mapping(params)
    return traversals.unflatten_mapping({tuple(map(str, path)): value for path, value in flat.items()})


def _built(nnx_class: Callable[..., nnx.Module], args: tuple, kwargs: dict, rngs: nnx.Rngs):
    """The NNX module and its params as a pure dict; ValueError when it keeps state jaxgan would not train or save."""
    module = nnx_class(*args, **kwargs, rngs=rngs)
    _, params, rest = nnx.split(module, nnx.Param, ...)
    others = sorted({type(v).__name__ for _, v in nnx.to_flat_state(rest) if not isinstance(v, nnx.RngState)})
    if others:
        raise ValueError(
            f"{nnx_class.__name__} keeps {', '.join(others)} besides its nnx.Param and Rngs; jaxgan trains and saves "
            "params only: use a stateless layer (e.g. nnx.LayerNorm in nnx.BatchNorm's place)."
        )
    return module, _string_keys(nnx.to_pure_dict(params))


class FromNNX(nn.Module):
    """The NNX module `nnx_class(*args, **kwargs, rngs=...)` as a Linen module with the same params.

    The NNX module is built on each call with `nnx.Rngs(params=..., dropout=...)`: Linen's "params"
    rng at init, Linen's "dropout" rng when the caller passes one (jaxgan's step does, for D with
    train=True), a fixed key otherwise (read by nothing when D is called with train=False). Its
    drawn weights are then replaced by the Linen params; under jit XLA drops the unused drawing.
    """

    nnx_class: Callable[..., nnx.Module]
    args: tuple = ()
    kwargs: FrozenDict = FrozenDict()

    @nn.compact
    def __call__(self, *args, **kwargs) -> Any:
        stream = lambda name: self.make_rng(name) if self.has_rng(name) else jax.random.key(0)
        module, drawn = _built(self.nnx_class, self.args, dict(self.kwargs), nnx.Rngs(params=stream("params"), dropout=stream("dropout")))
        # One Linen param per top-level attribute: the drawn value at init, the trained one afterwards.
        params = {name: self.param(name, lambda _, value=value: value) for name, value in drawn.items()}
        return _with_params(module, params)(*args, **kwargs)


def _with_params(module: nnx.Module, params: dict) -> nnx.Module:
    graphdef, state, rest = nnx.split(module, nnx.Param, ...)
    nnx.replace_by_pure_dict(state, params)
    return nnx.merge(graphdef, state, rest)


def from_nnx(nnx_class: Callable[..., nnx.Module], *args, **kwargs) -> FromNNX:
    """A Linen module for `GAN(generator=..., discriminator=...)` from an NNX module class and its
    constructor's arguments (all but `rngs`, which it is given; keep them hashable).

    G: `__call__(z_BxZ[, labels_B])` -> x_BxD; D: `__call__(x_BxD[, labels_B], *, train)` -> logits_B,
    with `nnx.Dropout(rate, rngs=rngs)` called with `deterministic=not train`.
    """
    if not (isinstance(nnx_class, type) and issubclass(nnx_class, nnx.Module)):
        raise TypeError(f"from_nnx takes an nnx.Module class (not an instance), got {nnx_class!r}.")
    return FromNNX(nnx_class, args, FrozenDict(kwargs))


def to_nnx(module: FromNNX, params: dict, seed: int = 0) -> nnx.Module:
    """The NNX module of `from_nnx(...)` holding `params` (e.g. `load_final_params(workdir)["g_params"]`);
    its dropout stream is seeded with `seed`."""
    built, _ = _built(module.nnx_class, module.args, dict(module.kwargs), nnx.Rngs(params=seed, dropout=seed))
    return _with_params(built, params)
