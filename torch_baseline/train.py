"""The article's training loop, made runnable and honest.

Same step as the article's gan_mnist.py: D on real vs ones and on G(noise) vs
zeros (G(noise) not detached, as there), summed, one Adam step; then G on fresh
noise vs ones through D, one Adam step. D stays in train mode throughout.
Writes the same files as jaxgan.fit, and final.pt (both state dicts) at the end.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from jaxgan import data, reporting  # NumPy-only modules: no JAX is imported
from jaxgan.config import Config, prepare_workdir
from torch_baseline.model import Discriminator, Generator

LOADERS = ("article", "device")


class ArticleDataset(torch.utils.data.Dataset):
    """The article's per-image path: ToTensor() then Normalize((.5,), (.5,)) then flatten, one image at a time."""

    def __init__(self, images_NxHxW: np.ndarray, labels_N: np.ndarray):
        self.images, self.labels = images_NxHxW, labels_N

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        x = torch.from_numpy(self.images[i]).float().div(255.0)  # ToTensor
        x = (x - 0.5) / 0.5  # Normalize((.5,), (.5,))
        return torch.flatten(x), int(self.labels[i])


def article_batches(dataset: ArticleDataset, batch_size: int, generator: torch.Generator, device):
    """The article's DataLoader (shuffled); the last partial batch is dropped, as jaxgan does."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True, generator=generator)
    for x, _ in loader:
        yield x.to(device)


def device_batches(images_NxD: torch.Tensor, batch_size: int, generator: torch.Generator):
    """Data resident on the device as uint8, shuffled with a permutation, scaled per batch."""
    n_batches = len(images_NxD) // batch_size
    perm = torch.randperm(len(images_NxD), generator=generator)[: n_batches * batch_size].to(images_NxD.device)
    for idx in perm.view(n_batches, batch_size):
        yield images_NxD[idx].float().div(127.5).sub(1.0)


def generator_loss(criterion, fake_out, kind: str, real_target: float, fake_target: float):
    if kind == "non_saturating":
        return criterion(fake_out, torch.full_like(fake_out, real_target))
    return -criterion(fake_out, torch.full_like(fake_out, fake_target))  # minimax: minimise log(1 - D(G(z)))


def train_step(G, D, g_optim, d_optim, x_real, z_d, z_g, *, real_target=1.0, fake_target=0.0, g_loss="non_saturating"):
    """The article's step on given images and noise; returns its four metrics as floats."""
    criterion = nn.BCELoss()
    d_optim.zero_grad()
    real_out = D(x_real)
    real_error = criterion(real_out, torch.full_like(real_out, real_target))
    fake_out = D(G(z_d))
    fake_error = criterion(fake_out, torch.full_like(fake_out, fake_target))
    d_error = real_error + fake_error
    d_error.backward()
    d_optim.step()

    g_optim.zero_grad()
    g_out = D(G(z_g))
    g_error = generator_loss(criterion, g_out, g_loss, real_target, fake_target)
    g_error.backward()
    g_optim.step()
    return {"d_loss": d_error.item(), "g_loss": g_error.item(), "d_real": real_out.mean().item(), "d_fake": fake_out.mean().item()}


def build(config: Config, data_dim: int, device) -> tuple[nn.Module, nn.Module, torch.optim.Optimizer, torch.optim.Optimizer]:
    G = Generator(config.latent_dim, config.g_features, data_dim).to(device)
    D = Discriminator(data_dim, config.d_features, config.dropout).to(device)
    return G, D, torch.optim.Adam(G.parameters(), lr=config.lr), torch.optim.Adam(D.parameters(), lr=config.lr)


def fit(config: Config, *, device: str = "cpu", loader: str = "article", init_state_dicts: dict | None = None) -> Path:
    """Trains the article's GAN in PyTorch; returns the workdir. Same outputs as jaxgan.fit.fit.

    `init_state_dicts` ({"generator", "discriminator"}, as final.pt holds them)
    replaces the seed's initial weights; the seed still draws noise and order.
    """
    train = data.load("train", data_dir=config.data_dir, digit=config.digit, subset=config.subset)
    config.check_data_size(len(train))
    workdir = prepare_workdir(config)
    (workdir / "config.json").write_text(
        json.dumps({**config.to_dict(), "framework": "torch", "device": device, "loader": loader}, indent=2)
    )
    torch.manual_seed(config.seed)
    shuffle_gen = torch.Generator().manual_seed(config.seed)
    image_shape = train.images_NxHxW.shape[1:]
    data_dim = int(np.prod(image_shape))
    G, D, g_optim, d_optim = build(config, data_dim, device)
    if init_state_dicts is not None:
        G.load_state_dict(init_state_dicts["generator"])
        D.load_state_dict(init_state_dicts["discriminator"])
    G.train(), D.train()
    if loader == "article":
        dataset = ArticleDataset(train.images_NxHxW, train.labels_N)
        batches = lambda: article_batches(dataset, config.batch_size, shuffle_gen, device)  # noqa: E731
    else:
        images_NxD = torch.from_numpy(train.flat_NxD).to(device)
        batches = lambda: device_batches(images_NxD, config.batch_size, shuffle_gen)  # noqa: E731
    z_grid = torch.from_numpy(reporting.fixed_noise(64, config.latent_dim, config.seed)).to(device)
    steps_per_epoch = len(train) // config.batch_size
    targets = {"real_target": config.real_target, "fake_target": config.fake_target, "g_loss": config.g_loss}

    records, step = [], 0
    with reporting.MetricsLog(workdir / "metrics.jsonl") as log, tqdm(range(1, config.epochs + 1), unit="epoch") as bar:
        for epoch in bar:
            start = time.perf_counter()
            sums = dict.fromkeys(reporting.METRIC_KEYS, 0.0)
            for x_real in batches():
                z_d = torch.randn(len(x_real), config.latent_dim, device=device)
                z_g = torch.randn(len(x_real), config.latent_dim, device=device)
                for k, v in train_step(G, D, g_optim, d_optim, x_real, z_d, z_g, **targets).items():
                    sums[k] += v
                step += 1
            seconds = time.perf_counter() - start
            record = {"epoch": epoch, "step": step, **{k: v / steps_per_epoch for k, v in sums.items()},
                      "seconds": round(seconds, 4), "steps_per_s": round(steps_per_epoch / seconds, 2)}
            log.write(record)
            records.append(record)
            bar.set_postfix(d_loss=f"{record['d_loss']:.3f}", g_loss=f"{record['g_loss']:.3f}",
                            d_real=f"{record['d_real']:.3f}", d_fake=f"{record['d_fake']:.3f}", steps_s=f"{record['steps_per_s']:.0f}")
            if epoch % config.sample_every == 0 or epoch == config.epochs:
                with torch.no_grad():
                    samples = G(z_grid).cpu().numpy()
                reporting.save_grid(samples, workdir / "samples" / f"epoch_{epoch:04d}.png", image_shape)
    reporting.plot_losses(records, workdir / "losses.png", title="torch_baseline")
    torch.save({"generator": G.state_dict(), "discriminator": D.state_dict()}, workdir / "final.pt")
    return workdir
