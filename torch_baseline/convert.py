"""Exact weight conversion between torch_baseline modules and jaxgan params.

jaxgan params are nested dicts `{"hidden_0": {"kernel": [in, out], "bias": [out]}, ..., "out": {...}}`;
a torch `nn.Linear` holds `weight` [out, in] and `bias` [out]. The i-th Linear of a
module's `net` is `hidden_i`, the last one `out`. Only NumPy crosses the border,
so neither side imports the other's framework; `np.asarray` reads jax arrays.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import torch

Params = dict[str, dict[str, np.ndarray]]


class ConversionError(ValueError):
    """The two sides do not describe the same layers; the message names the layer."""


def _linear_prefixes(state_dict: Mapping[str, torch.Tensor]) -> list[str]:
    """'net.K' of each Linear in the order of K (weight and bias keys), e.g. net.0, net.2, ..."""
    prefixes = {key.rsplit(".", 1)[0] for key in state_dict}
    for prefix in prefixes:
        if not re.fullmatch(r"net\.\d+", prefix):
            raise ConversionError(f"state dict layer {prefix!r} is not a torch_baseline layer (expected net.K).")
    return sorted(prefixes, key=lambda p: int(p.split(".")[1]))


def _jax_names(n_layers: int) -> list[str]:
    return [f"hidden_{i}" for i in range(n_layers - 1)] + ["out"]


def params_from_state_dict(state_dict: Mapping[str, torch.Tensor]) -> Params:
    """jaxgan params holding exactly the numbers of a Generator's or Discriminator's state dict."""
    prefixes = _linear_prefixes(state_dict)
    params = {}
    for name, prefix in zip(_jax_names(len(prefixes)), prefixes):
        missing = [k for k in ("weight", "bias") if f"{prefix}.{k}" not in state_dict]
        if missing:
            raise ConversionError(f"state dict layer {prefix} has no {' or '.join(missing)}.")
        weight_OxI = state_dict[f"{prefix}.weight"].detach().cpu().numpy()
        bias_O = state_dict[f"{prefix}.bias"].detach().cpu().numpy()
        if weight_OxI.ndim != 2 or bias_O.shape != weight_OxI.shape[:1]:
            raise ConversionError(f"state dict layer {prefix} has weight {weight_OxI.shape} and bias {bias_O.shape}; not a Linear.")
        params[name] = {"kernel": np.array(weight_OxI.T, order="C"), "bias": bias_O.copy()}
    return params


def state_dict_from_params(params: Mapping, like: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict laid out as `like` (a module's state dict) holding exactly the numbers of jaxgan `params`.

    Raises ConversionError naming the first layer whose name or shape does not match.
    """
    prefixes = _linear_prefixes(like)
    names = _jax_names(len(prefixes))
    extra = sorted(set(params) - set(names))
    if extra:
        raise ConversionError(f"jaxgan layer {extra[0]!r} has no counterpart in the torch module (its layers: {', '.join(names)}).")
    state_dict = {}
    for name, prefix in zip(names, prefixes):
        if name not in params:
            raise ConversionError(f"jaxgan params lack layer {name!r} (torch {prefix}).")
        kernel_IxO, bias_O = np.asarray(params[name]["kernel"]), np.asarray(params[name]["bias"])
        want_OxI, want_O = tuple(like[f"{prefix}.weight"].shape), tuple(like[f"{prefix}.bias"].shape)
        if kernel_IxO.shape[::-1] != want_OxI or bias_O.shape != want_O:
            raise ConversionError(
                f"layer {name} (torch {prefix}): jaxgan kernel {kernel_IxO.shape} and bias {bias_O.shape} do not fit torch weight {want_OxI} and bias {want_O}."
            )
        dtype = like[f"{prefix}.weight"].dtype
        state_dict[f"{prefix}.weight"] = torch.from_numpy(np.array(kernel_IxO.T, order="C")).to(dtype)
        state_dict[f"{prefix}.bias"] = torch.from_numpy(np.array(bias_O)).to(dtype)
    return state_dict


def load_params(module: torch.nn.Module, params: Mapping) -> torch.nn.Module:
    """Copies jaxgan `params` into a torch_baseline Generator or Discriminator, in place; returns it."""
    module.load_state_dict(state_dict_from_params(params, module.state_dict()))
    return module
