"""Analytic FLOP count of one training step (matrix products only, 2 FLOPs a multiply-add)."""

from __future__ import annotations

from collections.abc import Sequence


def _layers(in_dim: int, features: Sequence[int], out_dim: int) -> list[tuple[int, int]]:
    dims = [in_dim, *features, out_dim]
    return list(zip(dims[:-1], dims[1:]))


def step_flops(
    batch_size: int,
    latent_dim: int = 128,
    g_features: Sequence[int] = (256, 512, 1024),
    data_dim: int = 784,
    d_features: Sequence[int] = (256, 128),
) -> int:
    """FLOPs of the matrix products in one jaxgan step (one D update and one G update).

    Per image: the D step runs G forward once and D forward and backward on the real
    and the fake batch (weight gradients everywhere, input gradients above D's first
    layer: neither input needs one); the G step runs G forward, D forward, D's input
    gradients only, and G's backward (no input gradient for the noise).
    """
    g = _layers(latent_dim, g_features, data_dim)
    d = _layers(data_dim, d_features, 1)
    mac = lambda layers: sum(i * o for i, o in layers)
    g_mac, d_mac = mac(g), mac(d)
    d_first, g_first = d[0][0] * d[0][1], g[0][0] * g[0][1]
    d_step = g_mac + 2 * d_mac + 2 * (d_mac + d_mac - d_first)
    g_step = g_mac + d_mac + d_mac + (g_mac + g_mac - g_first)
    return 2 * batch_size * (d_step + g_step)
