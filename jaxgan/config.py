"""One run configuration, shared by both trainers, validated once at the edge.

Pure Python: torch_baseline imports it without pulling in JAX.
"""

from __future__ import annotations

import argparse
import dataclasses
import math

# Names of jaxgan.losses' functions (d_<name>, g_<name>); jaxgan.train maps them.
D_LOSSES = ("bce", "least_squares", "hinge", "wasserstein")
G_LOSSES = ("non_saturating", "minimax", "least_squares", "hinge", "wasserstein")
BCE_G_LOSSES = ("non_saturating", "minimax")
ARCHS = ("mlp", "dcgan")
DATASETS = ("mnist", "fashion_mnist")  # and "tfds:NAME" (jaxgan.data)


class UserError(ValueError):
    """Bad input from the user (a flag, a file, a workdir): the message is one sentence
    saying what is wrong and what to do; scripts print it and exit with code 2."""


class ConfigError(UserError):
    """A configuration value is out of range; the message says what is allowed."""


@dataclasses.dataclass(frozen=True)
class Config:
    """The article's configuration by default (batch 6000, 2000 epochs, Adam 2e-4)."""

    epochs: int = 2000
    batch_size: int = 6000
    lr: float = 2e-4
    seed: int = 0
    subset: int | None = None
    digit: int | None = None
    label_smoothing: float = 0.0
    g_loss: str = "non_saturating"
    latent_dim: int = 128
    g_features: tuple[int, ...] = (256, 512, 1024)
    d_features: tuple[int, ...] = (256, 128)
    dropout: float = 0.3
    dataset: str = "mnist"
    data_dir: str | None = None
    workdir: str = "runs/jax"
    sample_every: int = 100
    checkpoint_every: int = 100
    keep_checkpoints: int = 3
    resume: bool = False
    overwrite: bool = False
    eval_every: int | None = None
    eval_n: int = 10_000
    # Research options (jaxgan only; torch_baseline is the article's model and refuses them).
    arch: str = "mlp"
    dcgan_features: int = 32
    conditional: bool = False
    d_loss: str = "bce"
    gp_weight: float = 0.0
    d_steps: int = 1
    beta1: float | None = None  # None: the architecture's own (adam_beta1)
    beta2: float = 0.999

    @property
    def real_target(self) -> float:
        return 1.0 - self.label_smoothing

    @property
    def fake_target(self) -> float:
        return self.label_smoothing

    @property
    def adam_beta1(self) -> float:
        """--beta1, else the architecture's: 0.9 for the article's MLP (torch's default), 0.5 for
        DCGAN (its paper's; with 0.9 its D wins and G collapses in our runs)."""
        if self.beta1 is not None:
            return self.beta1
        return 0.5 if self.arch == "dcgan" else 0.9

    def validate(self) -> Config:
        """Returns self, or raises ConfigError naming the first bad field."""
        checks = [
            (self.epochs >= 1, f"--epochs must be at least 1, got {self.epochs}."),
            (self.batch_size >= 1, f"--batch-size must be at least 1, got {self.batch_size}."),
            (math.isfinite(self.lr) and self.lr > 0, f"--lr must be a positive number, got {self.lr}."),
            (0 <= self.seed < 2**32, f"--seed must be in [0, 2**32), got {self.seed}."),
            (self.subset is None or self.subset >= 1, f"--subset must be at least 1 image, got {self.subset}."),
            (self.digit is None or 0 <= self.digit <= 9, f"--digit must be one of 0-9, got {self.digit}."),
            (
                0.0 <= self.label_smoothing < 0.5,
                f"--label-smoothing must be in [0, 0.5) (the blog's choice is 0.02), got {self.label_smoothing}.",
            ),
            (self.g_loss in G_LOSSES, f"--g-loss must be one of {', '.join(G_LOSSES)}, got {self.g_loss!r}."),
            (self.d_loss in D_LOSSES, f"--d-loss must be one of {', '.join(D_LOSSES)}, got {self.d_loss!r}."),
            (
                self.label_smoothing == 0 or (self.d_loss == "bce" and self.g_loss in BCE_G_LOSSES),
                "--label-smoothing sets BCE targets; it applies to --d-loss bce with --g-loss non_saturating or minimax only.",
            ),
            (math.isfinite(self.gp_weight) and self.gp_weight >= 0, f"--gp-weight must be 0 or more (WGAN-GP uses 10), got {self.gp_weight}."),
            (self.d_steps >= 1, f"--d-steps must be at least 1 (WGAN-GP uses 5), got {self.d_steps}."),
            (0 <= self.adam_beta1 < 1 and 0 <= self.beta2 < 1, f"--beta1 and --beta2 must be in [0, 1), got {self.adam_beta1} and {self.beta2}."),
            (not (self.conditional and self.digit is not None), "--conditional learns every class; it cannot be combined with --digit."),
            (self.arch in ARCHS, f"--arch must be one of {', '.join(ARCHS)}, got {self.arch!r}."),
            (self.dcgan_features >= 1, f"--dcgan-features must be at least 1, got {self.dcgan_features}."),
            (self.latent_dim >= 1, f"--latent-dim must be at least 1, got {self.latent_dim}."),
            (all(f >= 1 for f in self.g_features), f"generator widths must be positive, got {self.g_features}."),
            (all(f >= 1 for f in self.d_features), f"discriminator widths must be positive, got {self.d_features}."),
            (0.0 <= self.dropout < 1.0, f"--dropout must be in [0, 1), got {self.dropout}."),
            (
                self.dataset in DATASETS or (self.dataset.startswith("tfds:") and len(self.dataset) > 5),
                f"--dataset must be mnist, fashion_mnist or tfds:NAME (a TFDS image data set), got {self.dataset!r}.",
            ),
            (self.sample_every >= 1, f"--sample-every must be at least 1 epoch, got {self.sample_every}."),
            (self.checkpoint_every >= 1, f"--checkpoint-every must be at least 1 epoch, got {self.checkpoint_every}."),
            (self.keep_checkpoints >= 1, f"--keep-checkpoints must be at least 1, got {self.keep_checkpoints}."),
            (not (self.resume and self.overwrite), "--resume continues a run and --overwrite replaces it: pass only one."),
            (self.eval_every is None or self.eval_every >= 1, f"--eval-every must be at least 1 epoch, got {self.eval_every}."),
            (10 <= self.eval_n <= 10_000, f"--eval-n must be in [10, 10000] (the test set has 10,000 images), got {self.eval_n}."),
            (
                self.eval_every is None or (self.data_dir is None and self.dataset == "mnist"),
                "--eval-every measures with an MNIST classifier; it applies to --dataset mnist without --data-dir only.",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        return self

    def check_data_size(self, n_images: int, image_shape: tuple[int, ...] = (28, 28), d_steps: int | None = None) -> None:
        """`d_steps`: the GAN's, when it is not the one this config describes."""
        d_steps = self.d_steps if d_steps is None else d_steps
        if self.batch_size > n_images:
            raise ConfigError(
                f"--batch-size {self.batch_size} is larger than the {n_images} training images; "
                f"choose at most {n_images}."
            )
        if n_images // self.batch_size < d_steps:
            raise ConfigError(
                f"--d-steps {d_steps} needs {d_steps} batches a step but an epoch has "
                f"{n_images // self.batch_size}; lower --d-steps or --batch-size."
            )
        if self.arch == "dcgan" and (image_shape[0] % 4 or image_shape[1] % 4):
            raise ConfigError(
                f"--arch dcgan needs image height and width divisible by 4, got {image_shape[0]}x{image_shape[1]}; use --arch mlp."
            )

    def non_article_options(self) -> list[str]:
        """The research flags this config sets away from the article's (what torch_baseline cannot run)."""
        d = Config()
        names = {
            "arch": "--arch", "dcgan_features": "--dcgan-features", "conditional": "--conditional", "d_loss": "--d-loss",
            "gp_weight": "--gp-weight", "d_steps": "--d-steps", "beta2": "--beta2",
        }
        out = [flag for field, flag in names.items() if getattr(self, field) != getattr(d, field)]
        if self.beta1 not in (None, 0.9):
            out.append("--beta1")
        if self.g_loss not in BCE_G_LOSSES:
            out.append(f"--g-loss {self.g_loss}")
        return out

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, saved: dict) -> Config:
        """The Config a run's config.json describes (extra keys such as "framework" are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in saved.items() if k in names}
        return cls(**values)


def build_parser(description: str, default_workdir: str) -> argparse.ArgumentParser:
    """The flags both trainers share; each script adds its own framework's flags."""
    d = Config()
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--epochs", type=int, default=d.epochs, help="passes over the training images")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="images per step (the article: 6000, 10 steps an epoch)")
    p.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate of both networks")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of weights, noise, dropout and shuffling")
    p.add_argument("--subset", type=int, default=None, help="train on the first N images only (after --digit)")
    p.add_argument("--digit", type=int, default=None, help="train on one class (label 0-9) only: a digit for MNIST (the article's quick check: 0)")
    p.add_argument(
        "--label-smoothing", type=float, default=d.label_smoothing,
        help="targets 1-s for real and s for fake (the blog suggests 0.02; the article's code uses 0)",
    )
    p.add_argument("--dropout", type=float, default=d.dropout, help="dropout rate after each hidden layer of the MLP discriminator (the article: 0.3)")
    p.add_argument("--g-loss", choices=G_LOSSES, default=d.g_loss, help="generator loss (the article: non_saturating; torch_baseline also runs minimax)")
    p.add_argument("--dataset", default=d.dataset, help="mnist, fashion_mnist (Debian's dataset-fashion-mnist) or tfds:NAME (any TFDS image data set)")
    p.add_argument("--data-dir", default=None, help="mnist and fashion_mnist: a folder of the four standard IDX files; tfds:NAME: TFDS's data folder")
    p.add_argument("--workdir", default=default_workdir, help="where metrics.jsonl, samples/ and losses.png go")
    p.add_argument("--sample-every", type=int, default=d.sample_every, help="save a fixed-noise sample grid every k epochs (and at the end)")
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every, help="save a checkpoint every k epochs (and at the end, and on Ctrl-C)")
    p.add_argument("--keep-checkpoints", type=int, default=d.keep_checkpoints, help="how many of the newest checkpoints to keep")
    p.add_argument("--resume", action="store_true", help="continue the run in --workdir from its newest intact checkpoint, up to --epochs")
    p.add_argument("--overwrite", action="store_true", help="start a new run in a workdir that already holds one (its files are replaced)")
    p.add_argument("--eval-every", type=int, default=None, help="add FID and the other sample-quality figures to metrics.jsonl every k epochs (jaxgan only)")
    p.add_argument("--eval-n", type=int, default=d.eval_n, help="samples and test images per --eval-every evaluation")
    r = p.add_argument_group("research options (jaxgan only)")
    r.add_argument("--arch", choices=ARCHS, default=d.arch, help="mlp: the article's networks; dcgan: convolutional G and D")
    r.add_argument("--dcgan-features", type=int, default=d.dcgan_features, help="--arch dcgan: channels of the first convolution")
    r.add_argument("--conditional", action="store_true", help="feed one-hot class labels to G and D; sample grids show one class a row")
    r.add_argument("--d-loss", choices=D_LOSSES, default=d.d_loss, help="discriminator loss (the article: bce)")
    r.add_argument("--gp-weight", type=float, default=d.gp_weight, help="weight of the WGAN-GP gradient penalty on D (0: none; WGAN-GP: 10)")
    r.add_argument("--d-steps", type=int, default=d.d_steps, help="D updates per G update, each on its own batch (WGAN-GP: 5)")
    r.add_argument("--beta1", type=float, default=None, help="Adam beta1 of both networks (default: 0.9 for mlp, torch's default as in the article; 0.5 for dcgan)")
    r.add_argument("--beta2", type=float, default=d.beta2, help="Adam beta2 of both networks")
    return p


def config_from_args(args: argparse.Namespace) -> Config:
    return Config(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        subset=args.subset,
        digit=args.digit,
        label_smoothing=args.label_smoothing,
        g_loss=args.g_loss,
        dropout=args.dropout,
        dataset=args.dataset,
        data_dir=args.data_dir,
        workdir=args.workdir,
        sample_every=args.sample_every,
        checkpoint_every=args.checkpoint_every,
        keep_checkpoints=args.keep_checkpoints,
        resume=args.resume,
        overwrite=args.overwrite,
        eval_every=args.eval_every,
        eval_n=args.eval_n,
        arch=args.arch,
        dcgan_features=args.dcgan_features,
        conditional=args.conditional,
        d_loss=args.d_loss,
        gp_weight=args.gp_weight,
        d_steps=args.d_steps,
        beta1=args.beta1,
        beta2=args.beta2,
    ).validate()
