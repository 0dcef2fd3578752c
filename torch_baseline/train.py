"""The article's training loop, made runnable and honest.

Same step as the article's gan_mnist.py: D on real vs ones and on G(noise) vs
zeros (G(noise) not detached, as there), summed, one Adam step; then G on fresh
noise vs ones through D, one Adam step. D stays in train mode throughout.
Writes the same files as jaxgan.fit, and final.pt (both state dicts) at the end.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from gancore import data, files, loop, reporting  # pure Python and NumPy: no JAX is imported
from gancore.config import Config, ConfigError
from torch_baseline.checkpoint import Checkpointer
from torch_baseline.model import Discriminator, Generator


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
    """The article's step on given images and noise; returns its four metrics as 0-d tensors
    (reading them is left to the caller: a read is a device sync)."""
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
    return {"d_loss": d_error.detach(), "g_loss": g_error.detach(), "d_real": real_out.detach().mean(), "d_fake": fake_out.detach().mean()}


def resolve_device(name: str | None) -> str:
    """`name`, or cuda when there is one, else cpu; ConfigError when torch cannot use it."""
    device = name or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as e:
        raise ConfigError(f"--device {device} is not usable here ({str(e).splitlines()[0]}); try --device cpu.") from None
    return device


def build(config: Config, data_dim: int, device, capturable: bool = False) -> tuple[nn.Module, nn.Module, torch.optim.Optimizer, torch.optim.Optimizer]:
    """The article's modules and Adams; `capturable` Adams keep their step count on the GPU (a CUDA graph replays them)."""
    G = Generator(config.latent_dim, config.g_features, data_dim).to(device)
    D = Discriminator(data_dim, config.d_features, config.dropout).to(device)
    adam = lambda m: torch.optim.Adam(m.parameters(), lr=config.lr, capturable=capturable)
    return G, D, adam(G), adam(D)


def fit(config: Config, *, device: str = "cpu", loader: str = "article", init_state_dicts: dict | None = None) -> Path:
    """Trains the article's GAN in PyTorch (or resumes it); returns the workdir. Same files as jaxgan.fit.fit.

    `init_state_dicts` ({"generator", "discriminator"}, as final.pt holds them)
    replaces the seed's initial weights; the seed still draws noise and order.
    """
    if config.non_article_options():
        raise ConfigError(
            f"torch_baseline is the article's GAN only; {', '.join(config.non_article_options())} is a jaxgan option: run it with scripts/train_jax.py."
        )
    train = data.load("train", dataset=config.dataset, data_dir=config.data_dir, digit=config.digit, subset=config.subset)
    config.check_data_size(len(train))
    run_info = config.run_record("torch", train.image_shape, device=device, loader=loader)
    torch.manual_seed(config.seed)
    G, D, g_optim, d_optim = build(config, int(np.prod(train.image_shape)), device)
    if init_state_dicts is not None:
        G.load_state_dict(init_state_dicts["generator"])
        D.load_state_dict(init_state_dicts["discriminator"])
    trainer = TorchTrainer(config, train, G, D, g_optim, d_optim, device, loader)
    return loop.run(config, run_info, trainer, title="torch_baseline")


class TorchTrainer:
    """torch_baseline's side of `gancore.loop`: the article's modules, optimisers and batches."""

    def __init__(self, config: Config, train: data.Images, G, D, g_optim, d_optim, device: str, loader: str):
        self.G, self.D, self.g_optim, self.d_optim, self.device = G, D, g_optim, d_optim, device
        self.G.train(), self.D.train()
        self.image_shape, self.latent_dim, self.num_classes = train.image_shape, config.latent_dim, 0
        self.steps_per_epoch = data.steps_per_epoch(len(train), config.batch_size)
        self._step = 0
        self._shuffle = torch.Generator().manual_seed(config.seed)
        self._targets = {"real_target": config.real_target, "fake_target": config.fake_target, "g_loss": config.g_loss}
        if loader == "article":
            dataset = ArticleDataset(train.images_NxHxW, train.labels_N)
            self._batches = lambda: article_batches(dataset, config.batch_size, self._shuffle, device)
        else:
            images_NxD = torch.from_numpy(train.flat_NxD).to(device)
            self._batches = lambda: device_batches(images_NxD, config.batch_size, self._shuffle)

    def open_checkpointer(self, workdir: Path, keep: int) -> Checkpointer:
        return Checkpointer(workdir, keep=keep)

    def snapshot(self) -> dict:
        return {
            "generator": self.G.state_dict(),
            "discriminator": self.D.state_dict(),
            "g_optim": self.g_optim.state_dict(),
            "d_optim": self.d_optim.state_dict(),
            "step": self._step,
            "torch_rng": torch.get_rng_state(),
            "shuffle_rng": self._shuffle.get_state(),
            **({"cuda_rng": torch.cuda.get_rng_state()} if self.device.startswith("cuda") else {}),
        }

    def load(self, snapshot: dict) -> None:
        for module, key in ((self.G, "generator"), (self.D, "discriminator"), (self.g_optim, "g_optim"), (self.d_optim, "d_optim")):
            module.load_state_dict(snapshot[key])
        torch.set_rng_state(snapshot["torch_rng"])
        if self.device.startswith("cuda") and "cuda_rng" in snapshot:  # a run checkpointed on the CPU has none
            torch.cuda.set_rng_state(snapshot["cuda_rng"])
        self._shuffle.set_state(snapshot["shuffle_rng"])
        self._step = snapshot["step"]

    def train_epochs(self, k: int) -> tuple[list[dict[str, float]], bool]:
        return [self._epoch() for _ in range(k)], all(bool(torch.isfinite(p).all()) for p in (*self.G.parameters(), *self.D.parameters()))

    def _epoch(self) -> dict[str, float]:
        sums = {k: torch.zeros((), device=self.device) for k in reporting.METRIC_KEYS}
        try:
            for x_real in self._batches():
                z_d = torch.randn(len(x_real), self.latent_dim, device=self.device)
                z_g = torch.randn(len(x_real), self.latent_dim, device=self.device)
                for k, v in train_step(self.G, self.D, self.g_optim, self.d_optim, x_real, z_d, z_g, **self._targets).items():
                    sums[k] += v
                self._step += 1
        except RuntimeError as e:
            # BCELoss refusing a NaN D output, or Adam's step overflowing: the run diverged.
            if "between 0 and 1" not in str(e) and "overflow" not in str(e):
                raise
            return dict.fromkeys(sums, float("nan"))
        return {k: v.item() / self.steps_per_epoch for k, v in sums.items()}  # the epoch's only device sync

    def step(self) -> int:
        return self._step

    def sample(self, z_NxZ: np.ndarray, labels_N: np.ndarray | None = None) -> np.ndarray:
        with torch.no_grad():
            return self.G(torch.from_numpy(z_NxZ).to(self.device)).cpu().numpy()

    def save_final(self, workdir: Path) -> None:
        with files.atomic_path(workdir / "final.pt") as tmp:
            torch.save({"generator": self.G.state_dict(), "discriminator": self.D.state_dict()}, tmp)
