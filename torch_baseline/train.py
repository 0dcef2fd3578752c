"""The article's training loop, made runnable and honest.

Same step as the article's gan_mnist.py: D on real vs ones and on G(noise) vs
zeros (G(noise) not detached, as there), summed, one Adam step; then G on fresh
noise vs ones through D, one Adam step. D stays in train mode throughout.
Writes the same files as jaxgan.fit, and final.pt (both state dicts) at the end.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from jaxgan import data, reporting, runs, summaries  # pure Python and NumPy: no JAX is imported
from jaxgan.config import Config, ConfigError
from torch_baseline.checkpoint import Checkpointer
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


def build(config: Config, data_dim: int, device) -> tuple[nn.Module, nn.Module, torch.optim.Optimizer, torch.optim.Optimizer]:
    G = Generator(config.latent_dim, config.g_features, data_dim).to(device)
    D = Discriminator(data_dim, config.d_features, config.dropout).to(device)
    return G, D, torch.optim.Adam(G.parameters(), lr=config.lr), torch.optim.Adam(D.parameters(), lr=config.lr)


def fit(config: Config, *, device: str = "cpu", loader: str = "article", init_state_dicts: dict | None = None) -> Path:
    """Trains the article's GAN in PyTorch (or resumes it); returns the workdir. Same files as jaxgan.fit.fit.

    `init_state_dicts` ({"generator", "discriminator"}, as final.pt holds them)
    replaces the seed's initial weights; the seed still draws noise and order.
    """
    if config.non_article_options():
        raise ConfigError(
            f"torch_baseline is the article's GAN only; {', '.join(config.non_article_options())} "
            "is a jaxgan option: run it with scripts/train_jax.py."
        )
    train = data.load("train", dataset=config.dataset, data_dir=config.data_dir, digit=config.digit, subset=config.subset)
    config.check_data_size(len(train))
    run_info = {
        **config.run_record("torch", device=device, loader=loader), "beta1": config.adam_beta1, "image_shape": list(train.image_shape),
    }
    workdir = runs.prepare_workdir(config, run_info)
    torch.manual_seed(config.seed)
    shuffle_gen = torch.Generator().manual_seed(config.seed)
    image_shape = train.image_shape
    data_dim = int(np.prod(image_shape))
    G, D, g_optim, d_optim = build(config, data_dim, device)
    if init_state_dicts is not None:
        G.load_state_dict(init_state_dicts["generator"])
        D.load_state_dict(init_state_dicts["discriminator"])
    G.train(), D.train()
    checkpointer = Checkpointer(workdir, keep=config.keep_checkpoints)
    records, step, first_epoch = [], 0, 1
    if config.resume:
        ckpt = checkpointer.restore_latest()
        runs.check_epochs_left(workdir, ckpt["epoch"], config.epochs)
        for module, key in ((G, "generator"), (D, "discriminator"), (g_optim, "g_optim"), (d_optim, "d_optim")):
            module.load_state_dict(ckpt[key])
        torch.set_rng_state(ckpt["torch_rng"])
        if device.startswith("cuda") and "cuda_rng" in ckpt:  # a run checkpointed on the CPU has none
            torch.cuda.set_rng_state(ckpt["cuda_rng"])
        shuffle_gen.set_state(ckpt["shuffle_rng"])
        step, first_epoch = ckpt["step"], ckpt["epoch"] + 1
        runs.reopen_for_resume(workdir, run_info)
        records = runs.keep_metrics_through(workdir / "metrics.jsonl", ckpt["epoch"])
        print(f"resuming {workdir} from epoch {ckpt['epoch']} (step {step})")
    if loader == "article":
        dataset = ArticleDataset(train.images_NxHxW, train.labels_N)
        batches = lambda: article_batches(dataset, config.batch_size, shuffle_gen, device)  # noqa: E731
    else:
        images_NxD = torch.from_numpy(train.flat_NxD).to(device)
        batches = lambda: device_batches(images_NxD, config.batch_size, shuffle_gen)  # noqa: E731
    z_grid = torch.from_numpy(reporting.fixed_noise(64, config.latent_dim, config.seed)).to(device)
    steps_per_epoch = len(train) // config.batch_size
    targets = {"real_target": config.real_target, "fake_target": config.fake_target, "g_loss": config.g_loss}

    def checkpoint(epoch: int) -> None:
        checkpointer.save(epoch, {
            "generator": G.state_dict(), "discriminator": D.state_dict(),
            "g_optim": g_optim.state_dict(), "d_optim": d_optim.state_dict(), "step": step,
            "torch_rng": torch.get_rng_state(), "shuffle_rng": shuffle_gen.get_state(),
            **({"cuda_rng": torch.cuda.get_rng_state()} if device.startswith("cuda") else {}),
            "run_info": run_info,
        })

    bar = tqdm(range(first_epoch, config.epochs + 1), unit="epoch", initial=first_epoch - 1, total=config.epochs)
    with (
        reporting.MetricsLog(workdir / "metrics.jsonl", append=config.resume) as log,
        summaries.TensorBoard(workdir, first_epoch) as tensorboard,
        runs.StopFlag() as stop,
        bar,
    ):
        for epoch in bar:
            start = time.perf_counter()
            sums = {k: torch.zeros((), device=device) for k in reporting.METRIC_KEYS}
            try:
                for x_real in batches():
                    z_d = torch.randn(len(x_real), config.latent_dim, device=device)
                    z_g = torch.randn(len(x_real), config.latent_dim, device=device)
                    for k, v in train_step(G, D, g_optim, d_optim, x_real, z_d, z_g, **targets).items():
                        sums[k] += v
                    step += 1
            except RuntimeError as e:
                if "between 0 and 1" not in str(e):  # BCELoss refusing a NaN D output
                    raise
                sums = dict.fromkeys(sums, torch.tensor(float("nan")))
            means = {k: v.item() / steps_per_epoch for k, v in sums.items()}  # the epoch's only device sync
            seconds = time.perf_counter() - start
            finite = all(bool(torch.isfinite(p).all()) for p in (*G.parameters(), *D.parameters()))
            runs.stop_if_diverged(epoch, means, finite, checkpointer)
            record = runs.epoch_record(epoch, step, means, seconds, steps_per_epoch)
            log.write(record)
            tensorboard.scalars(record)
            records.append(record)
            bar.set_postfix(runs.progress(record))
            if epoch % config.sample_every == 0 or epoch == config.epochs:
                with torch.no_grad():
                    samples = G(z_grid).cpu().numpy()
                reporting.save_grid(samples, workdir / "samples" / f"epoch_{epoch:04d}.png", image_shape)
                tensorboard.image("samples", workdir / "samples" / f"epoch_{epoch:04d}.png", epoch)
            if epoch % config.checkpoint_every == 0 or epoch == config.epochs or stop.set:
                checkpoint(epoch)
            if stop.set:
                raise runs.Interrupted(f"checkpoint of epoch {epoch} saved in {checkpointer.directory}; continue with --resume.")
    reporting.plot_losses(records, workdir / "losses.png", title="torch_baseline")
    summaries.save_progress_gif(workdir / "samples", workdir / "progress.gif", config.epochs)

    def generate(z_NxZ: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return G(torch.from_numpy(z_NxZ).to(device)).cpu().numpy()

    summaries.save_interpolation(generate, workdir / "interpolation.png", image_shape, config.latent_dim, config.seed)
    torch.save({"generator": G.state_dict(), "discriminator": D.state_dict()}, workdir / "final.pt")
    return workdir
