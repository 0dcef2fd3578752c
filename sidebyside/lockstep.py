"""Both frameworks' step in lock-step, and how close they must stay.

From the same weights, on the same batches and noise, with dropout off, jaxgan's
`update` and torch_baseline's `train_step` replay the article's step side by side.
tests/test_parity.py holds them to these tolerances over 50 steps and shows that a
deliberate mistake breaks them; scripts/compare.py checks a few steps of every run.
"""

from __future__ import annotations

import jax
import numpy as np
import torch

from gancore.config import Config
from gancore.data import to_unit_range
from jaxgan.build import make_gan
from jaxgan.gan import GAN
from jaxgan.step import create_train_state, update
from torch_baseline import convert, model
from torch_baseline.train import train_step

# Per-step relative tolerance of the D and G losses at step t (0-based). Both sides
# compute in full float32 and differ only in summation order (and BCELoss on a
# sigmoid vs cross-entropy on logits): 1e-7 at step 1. The GAN's dynamics
# through Adam amplify that by about 12% a step; over 5 seeds no step used more
# than 0.35 of this envelope (1.3e-4 at step 27; the largest, 8e-4, at step 45,
# where it allows 2.9e-3). Each deliberate mistake of tests/test_parity.py exceeds it >1000x.
LOSS_RTOL_0, LOSS_GROWTH = 2e-5, 1.12
# What `check` replays of a run: at most this many steps at this batch size.
CHECK_STEPS, CHECK_MAX_BATCH = 10, 256


def loss_rtol(t: int) -> float:
    """The relative tolerance of both losses at step t (0-based)."""
    return LOSS_RTOL_0 * LOSS_GROWTH**t


def inputs(images_NxD: np.ndarray, steps: int, batch: int, latent_dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(x_SxBxD, z_Sx2xBxZ): the first steps * batch uint8 images in [-1, 1], and both noise draws of every step."""
    x_SxBxD = to_unit_range(images_NxD[: steps * batch]).reshape(steps, batch, -1)
    z_Sx2xBxZ = np.random.default_rng(seed).standard_normal((steps, 2, batch, latent_dim)).astype(np.float32)
    return x_SxBxD, z_Sx2xBxZ


def replay_jax(gan: GAN, init_params: dict, x_SxBxD: np.ndarray, z_Sx2xBxZ: np.ndarray) -> tuple[np.ndarray, dict, dict]:
    """jaxgan's `update` from `init_params` ({"g_params", "d_params"}), dropout off; -> (losses_Sx2, g_params, d_params)."""
    # The key draws nothing that is kept: the weights and the noise are given and dropout is off.
    state = create_train_state(gan, jax.random.key(0), **init_params)
    step = jax.jit(update)
    losses = []
    for x_BxD, (z_d, z_g) in zip(x_SxBxD, z_Sx2xBxZ, strict=True):
        state, m = step(state, x_BxD, z_d, z_g, None, None)
        losses.append((float(m["d_loss"]), float(m["g_loss"])))
    return np.array(losses), jax.device_get(state.g_params), jax.device_get(state.d_params)


def replay_torch(G, D, lr: float, x_SxBxD, z_Sx2xBxZ, device="cpu", **targets) -> tuple[np.ndarray, dict, dict]:
    """torch_baseline's `train_step` on G and D (as built and loaded), D in eval mode (dropout off),
    fresh Adam at `lr`; `targets` are train_step's keywords. -> (losses_Sx2, g_params, d_params) as jaxgan params."""
    D.eval()
    g_optim, d_optim = torch.optim.Adam(G.parameters(), lr=lr), torch.optim.Adam(D.parameters(), lr=lr)
    losses = []
    for x_BxD, (z_d, z_g) in zip(x_SxBxD, z_Sx2xBxZ, strict=True):
        m = train_step(G, D, g_optim, d_optim, *(torch.from_numpy(a).to(device) for a in (x_BxD, z_d, z_g)), **targets)
        losses.append((float(m["d_loss"]), float(m["g_loss"])))
    params = (convert.params_from_state_dict(net.state_dict()) for net in (G, D))
    return np.array(losses), *params


def loss_agreement(jax_losses_Sx2: np.ndarray, torch_losses_Sx2: np.ndarray) -> dict:
    """Per step, the larger relative difference of the D and G losses, its tolerance, and whether all are within."""
    rel_diff = (np.abs(jax_losses_Sx2 - torch_losses_Sx2) / np.abs(torch_losses_Sx2)).max(axis=1)
    rtol = [loss_rtol(t) for t in range(len(rel_diff))]
    agree = bool(all(r <= tol for r, tol in zip(rel_diff, rtol)))
    return {"rel_diff": rel_diff.tolist(), "rtol": rtol, "rtol_growth": LOSS_GROWTH, "agree": agree}


def check(config: Config, init_params: dict, init_state_dicts: dict, images_NxD: np.ndarray, device: str) -> dict:
    """A few lock-step steps of the GAN `config` describes from the same initial weights (`init_params` for
    jaxgan, `init_state_dicts` for torch, the same numbers) on `images_NxD` (uint8): steps, batch and `loss_agreement`."""
    batch = min(config.batch_size, CHECK_MAX_BATCH)
    steps = min(CHECK_STEPS, len(images_NxD) // batch)
    x_SxBxD, z_Sx2xBxZ = inputs(images_NxD, steps, batch, config.latent_dim, config.seed)
    data_dim = x_SxBxD.shape[-1]
    jax_losses = replay_jax(make_gan(config, data_dim=data_dim), init_params, x_SxBxD, z_Sx2xBxZ)[0]
    G = model.Generator(config.latent_dim, config.g_features, data_dim).to(device)
    D = model.Discriminator(data_dim, config.d_features, config.dropout).to(device)
    G.load_state_dict(init_state_dicts["generator"]), D.load_state_dict(init_state_dicts["discriminator"])
    targets = {"real_target": config.real_target, "fake_target": config.fake_target, "g_loss": config.g_loss}
    torch_losses = replay_torch(G, D, config.lr, x_SxBxD, z_Sx2xBxZ, device, **targets)[0]
    return {"steps": steps, "batch": batch, **loss_agreement(jax_losses, torch_losses)}
