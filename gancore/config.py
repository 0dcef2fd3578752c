"""One run configuration, shared by both trainers, validated once at the edge.

Every Config setting is declared once here, as a field; the framework settings each trainer
passes to its fit are declared in gancore.framework_settings, the command line derived from both
in gancore.flags. Pure Python: torch_baseline imports it without pulling in JAX.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from gancore.framework_settings import FRAMEWORK_SETTINGS
from gancore.settings import JAX, RESEARCH, TORCH, ConfigError, UserError, declare, of_fields
from gancore.settings import read_recipe as _read_recipe

__all__ = ["Config", "ConfigError", "UserError", "read_recipe"]  # UserError and ConfigError live in gancore.settings

# jaxgan.losses names its functions d_<name> and g_<name> and builds its tables from these.
D_LOSSES = ("bce", "least_squares", "hinge", "wasserstein")
G_LOSSES = ("non_saturating", "minimax", "least_squares", "hinge", "wasserstein")
BCE_G_LOSSES = ("non_saturating", "minimax")
ARCHS = ("mlp", "dcgan")
DATASETS = ("mnist", "fashion_mnist")  # and "tfds:NAME" (gancore.data)
DROPOUT_BITS = (32, 16, 8)  # random bits a dropout decision uses (jaxgan.models.keep_mask)
# The research options: jaxgan only (torch_baseline is the article's GAN), and each defines the run.
_RESEARCH = dict(trainers=(JAX,), group=RESEARCH, run=True)
RECIPES = Path(__file__).parent / "recipes"  # the named recipes, NAME.toml (package data)
RECIPE_NAMES = tuple(sorted(p.stem for p in RECIPES.glob("*.toml")))


def keep_probability(rate: float, bits: int = 32) -> float:
    """The chance a dropout mask of `bits` random bits a unit keeps a unit (jaxgan.models.keep_mask):
    1 - rate, or with fewer bits its nearest multiple of 2**-bits."""
    return 1.0 - rate if bits == 32 else round((1.0 - rate) * 2**bits) / 2**bits


def _seed_list(text: str, first: int) -> tuple[int, ...] | None:
    """--seeds as seeds: "K" is K seeds from `first`, "0,3,5" (or "5,") those seeds; None when it is neither."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) == 1:
        return tuple(range(first, first + int(parts[0]))) if parts[0].isdigit() and int(parts[0]) >= 1 else None
    parts = parts[:-1] if parts[-1] == "" else parts
    if not all(p.isdigit() and int(p) < 2**32 for p in parts) or len(set(map(int, parts))) != len(parts):
        return None
    return tuple(map(int, parts))


def seeds_text(seeds: tuple[int, ...]) -> str:
    """The --seeds text of a list of seeds, as config.json records it (one seed: "S,", not a count)."""
    return ",".join(map(str, seeds)) + ("," if len(seeds) == 1 else "")


@dataclasses.dataclass(frozen=True)
class Config:
    """The article's configuration by default (batch 6000, 2000 epochs, Adam 2e-4).

    Each field is one setting, declared with its flag, help, check, trainers and resume rule
    (`gancore.settings.Setting`): the parsers, checks, refusals and resume check derive from them.
    """

    epochs: int = declare(2000, "--epochs", "passes over the training images", must=("be at least 1", lambda v: v >= 1))
    batch_size: int = declare(
        6000, "--batch-size", "images per step (the article: 6000, 10 steps an epoch)", must=("be at least 1", lambda v: v >= 1), run=True
    )
    lr: float = declare(
        2e-4, "--lr", "Adam learning rate of both networks", must=("be a positive number", lambda v: math.isfinite(v) and v > 0), run=True, gan="lr"
    )
    seed: int = declare(0, "--seed", "seed of weights, noise, dropout and shuffling", must=("be in [0, 2**32)", lambda v: 0 <= v < 2**32), run=True)
    seeds: str | None = declare(
        None,
        "--seeds",
        "train several seeds as one compiled program: K (seeds --seed .. --seed + K - 1) or a list such as 0,3,5; "
        "each seed's run goes to WORKDIR/seed_S, a table of all of them to WORKDIR/seeds.md",
        must=("be a count K of at least 1 or a comma-separated list of distinct seeds in [0, 2**32), such as 0,3,5", lambda v: _seed_list(v, 0) is not None),
        trainers=(JAX,),
        run=True,
    )
    subset: int | None = declare(None, "--subset", "train on the first N images only (after --digit)", must=("be at least 1 image", lambda v: v >= 1), run=True)
    digit: int | None = declare(
        None,
        "--digit",
        "train on one class (label 0-9) only: a digit for MNIST (the article's quick check: 0)",
        must=("be one of 0-9", lambda v: 0 <= v <= 9),
        run=True,
    )
    label_smoothing: float = declare(
        0.0,
        "--label-smoothing",
        "targets 1-s for real and s for fake (the blog suggests 0.02; the article's code uses 0)",
        must=("be in [0, 0.5) (the blog's choice is 0.02)", lambda v: 0 <= v < 0.5),
        run=True,
    )
    dropout: float = declare(
        0.3,
        "--dropout",
        "dropout rate after each hidden layer of the MLP discriminator (the article: 0.3)",
        must=("be in [0, 1)", lambda v: 0 <= v < 1),
        run=True,
    )
    g_loss: str = declare(
        "non_saturating",
        "--g-loss",
        "generator loss (the article: non_saturating; torch_baseline also runs minimax)",
        choices=G_LOSSES,
        article=BCE_G_LOSSES,
        run=True,
    )
    latent_dim: int = declare(128, None, must=("be at least 1", lambda v: v >= 1), run=True, gan="latent_dim")
    g_features: tuple[int, ...] = declare((256, 512, 1024), None, must=("hold positive widths", lambda v: all(f >= 1 for f in v)), run=True)
    d_features: tuple[int, ...] = declare((256, 128), None, must=("hold positive widths", lambda v: all(f >= 1 for f in v)), run=True)
    dataset: str = declare(
        "mnist",
        "--dataset",
        "mnist, fashion_mnist (Debian's dataset-fashion-mnist) or tfds:NAME (any TFDS image data set)",
        must=("be mnist, fashion_mnist or tfds:NAME (a TFDS image data set)", lambda v: v in DATASETS or (v.startswith("tfds:") and len(v) > 5)),
        run=True,
    )
    data_dir: str | None = declare(
        None, "--data-dir", "mnist and fashion_mnist: a folder of the four standard IDX files; tfds:NAME: TFDS's data folder", run=True
    )
    workdir: str = declare("runs/jax", "--workdir", "where metrics.jsonl, samples/ and losses.png go")
    sample_every: int = declare(
        100, "--sample-every", "save a fixed-noise sample grid every k epochs (and at the end)", must=("be at least 1 epoch", lambda v: v >= 1)
    )
    checkpoint_every: int = declare(
        100, "--checkpoint-every", "save a checkpoint every k epochs (and at the end, and on Ctrl-C)", must=("be at least 1 epoch", lambda v: v >= 1)
    )
    keep_checkpoints: int = declare(3, "--keep-checkpoints", "how many of the newest checkpoints to keep", must=("be at least 1", lambda v: v >= 1))
    resume: bool = declare(False, "--resume", "continue the run in --workdir from its newest intact checkpoint, up to --epochs")
    overwrite: bool = declare(False, "--overwrite", "start a new run in a workdir that already holds one (its files are replaced)")
    recipe: str | None = declare(
        None,
        "--recipe",
        f"start from a recipe's settings: {', '.join(RECIPE_NAMES)} (gancore/recipes/) or a .toml file; flags given override them",
        must=(f"be {' or '.join(RECIPE_NAMES)} (gancore/recipes/), or a .toml file", lambda v: v in RECIPE_NAMES or v.endswith(".toml")),
    )
    eval_every: int | None = declare(
        None,
        "--eval-every",
        "add FID and the other sample-quality figures to metrics.jsonl every k epochs",
        must=("be at least 1 epoch", lambda v: v >= 1),
        trainers=(JAX,),
    )
    eval_n: int = declare(
        10_000,
        "--eval-n",
        "samples and test images per --eval-every evaluation",
        must=("be in [10, 10000] (the test set has 10,000 images)", lambda v: 10 <= v <= 10_000),
        trainers=(JAX,),
    )
    arch: str = declare("mlp", "--arch", "mlp: the article's networks; dcgan: convolutional G and D", choices=ARCHS, **_RESEARCH)
    dcgan_features: int = declare(
        32, "--dcgan-features", "--arch dcgan: channels of the first convolution", must=("be at least 1", lambda v: v >= 1), **_RESEARCH
    )
    conditional: bool = declare(False, "--conditional", "feed one-hot class labels to G and D; sample grids show one class a row", **_RESEARCH)
    d_loss: str = declare("bce", "--d-loss", "discriminator loss (the article: bce)", choices=D_LOSSES, **_RESEARCH)
    gp_weight: float = declare(
        0.0,
        "--gp-weight",
        "weight of the WGAN-GP gradient penalty on D (0: none; WGAN-GP: 10)",
        must=("be 0 or more (WGAN-GP uses 10)", lambda v: math.isfinite(v) and v >= 0),
        gan="gp_weight",
        **_RESEARCH,
    )
    r1_weight: float = declare(
        0.0,
        "--r1-weight",
        "weight gamma of the R1 penalty gamma/2 E|grad_x D(x)|^2 on real images (0: none; Mescheder et al. 2018: 10)",
        must=("be 0 or more (Mescheder et al. use 10)", lambda v: math.isfinite(v) and v >= 0),
        gan="r1_weight",
        **_RESEARCH,
    )
    r1_every: int = declare(
        1,
        "--r1-every",
        "apply the R1 penalty on every k-th step only, weighted k times (lazy regularisation, Karras et al. "
        "2020: 16): about the pull of R1 on every step at a fraction of its cost (no effect without --r1-weight)",
        must=("be a whole number, at least 1 (1: every step)", lambda v: isinstance(v, int) and v >= 1),
        gan="r1_every",
        **_RESEARCH,
    )
    spectral_norm: bool = declare(False, "--spectral-norm", "divide each layer's kernel in D by its largest singular value (Miyato et al. 2018)", **_RESEARCH)
    d_steps: int = declare(
        1,
        "--d-steps",
        "D updates per G update, each on its own batch (WGAN-GP: 5)",
        must=("be at least 1 (WGAN-GP uses 5)", lambda v: v >= 1),
        gan="d_steps",
        **_RESEARCH,
    )
    # None: the architecture's own (adam_beta1); config.json records the one in effect, and runs before
    # --beta1 trained with torch's 0.9, which torch_baseline runs too.
    beta1: float | None = declare(
        None,
        "--beta1",
        "Adam beta1 of both networks (default: 0.9 for mlp, torch's default as in the article; 0.5 for dcgan)",
        must=("be in [0, 1)", lambda v: 0 <= v < 1),
        article=(None, 0.9),
        older=0.9,
        gan="beta1",
        in_effect="adam_beta1",
        **_RESEARCH,
    )
    beta2: float = declare(0.999, "--beta2", "Adam beta2 of both networks", must=("be in [0, 1)", lambda v: 0 <= v < 1), gan="beta2", **_RESEARCH)
    ema_decay: float = declare(
        0.0,
        "--ema-decay",
        "keep an exponential moving average of G's params with this decay; grids and evaluations use it (0: none, as in the article; typical: 0.999)",
        must=("be in [0, 1) (0: no EMA; typical: 0.999)", lambda v: 0 <= v < 1),
        gan="ema_decay",
        **_RESEARCH,
    )
    ema_start: int = declare(
        0,
        "--ema-start",
        "the step before which the EMA of --ema-decay copies G's params (no effect without it)",
        must=("be 0 or more", lambda v: v >= 0),
        gan="ema_start",
        **_RESEARCH,
    )
    # None: --lr. config.json records what was given, so runs saved before these settings resume unchanged.
    g_lr: float | None = declare(
        None,
        "--g-lr",
        "Adam learning rate of G, in place of --lr (TTUR: e.g. --g-lr 1e-4 --d-lr 4e-4); None: --lr",
        must=("be a positive number", lambda v: math.isfinite(v) and v > 0),
        gan="g_lr",
        **_RESEARCH,
    )
    d_lr: float | None = declare(
        None,
        "--d-lr",
        "Adam learning rate of D, in place of --lr; None: --lr",
        must=("be a positive number", lambda v: math.isfinite(v) and v > 0),
        gan="d_lr",
        **_RESEARCH,
    )
    one_d_pass: bool = declare(
        False,
        "--one-d-pass",
        "score the real and fake batches in one D call over both stacked in D's update (a speed option: "
        "one dropout draw over the stacked rows, not the article's random stream)",
        gan="one_d_pass",
        **_RESEARCH,
    )
    dropout_bits: int = declare(
        32,
        "--dropout-bits",
        "random bits per dropout decision in D: 32 (the article's: one float32 uniform a unit), 16 or 8 (a speed "
        "option: half or a quarter of the random bits; keep probability rounded to a multiple of 2**-bits and scaled by its "
        "exact value; not the article's random stream)",
        choices=DROPOUT_BITS,
        **_RESEARCH,
    )

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

    @property
    def member_seeds(self) -> tuple[int, ...] | None:
        """The seeds --seeds trains (None: one run, of --seed)."""
        return None if self.seeds is None else _seed_list(self.seeds, self.seed)

    def validate(self) -> Config:
        """Returns self, or raises ConfigError naming the first bad field."""
        for setting in CONFIG_SETTINGS:
            if problem := setting.problem(getattr(self, setting.name)):
                raise ConfigError(problem)
        checks = [
            (
                self.label_smoothing == 0 or (self.d_loss == "bce" and self.g_loss in BCE_G_LOSSES),
                "--label-smoothing sets BCE targets; it applies to --d-loss bce with --g-loss non_saturating or minimax only.",
            ),
            (not (self.conditional and self.digit is not None), "--conditional learns every class; it cannot be combined with --digit."),
            (
                self.dropout_bits == 32 or (self.arch == "mlp" and self.dropout > 0),
                f"--dropout-bits {self.dropout_bits} draws D's dropout masks and this D has no dropout (--arch dcgan or --dropout 0); leave it at 32.",
            ),
            (
                # After the check above: a D without dropout was refused there.
                self.dropout_bits == 32 or 0 < keep_probability(self.dropout, self.dropout_bits) < 1,
                f"--dropout {self.dropout} with --dropout-bits {self.dropout_bits} rounds to a keep probability of "
                f"{keep_probability(self.dropout, self.dropout_bits):g}; use more bits or a rate further from 0 and 1.",
            ),
            (
                self.seeds is None or all(s < 2**32 for s in self.member_seeds),
                f"--seeds {self.seeds} from --seed {self.seed} goes past 2**32 - 1; choose a lower --seed or fewer seeds.",
            ),
            (not (self.resume and self.overwrite), "--resume continues a run and --overwrite replaces it: pass only one."),
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
            raise ConfigError(f"--batch-size {self.batch_size} is larger than the {n_images} training images; choose at most {n_images}.")
        if n_images // self.batch_size < d_steps:
            raise ConfigError(
                f"--d-steps {d_steps} needs {d_steps} batches a step but an epoch has {n_images // self.batch_size}; lower --d-steps or --batch-size."
            )
        if self.arch == "dcgan" and (image_shape[0] % 4 or image_shape[1] % 4):
            raise ConfigError(f"--arch dcgan needs image height and width divisible by 4, got {image_shape[0]}x{image_shape[1]}; use --arch mlp.")

    def non_article_options(self) -> list[str]:
        """The settings this config sets away from what torch_baseline (the article's GAN) runs, as flags."""
        return [named for s in CONFIG_SETTINGS if (named := s.not_for(TORCH, getattr(self, s.name)))]

    def run_record(self, trainer: str, image_shape: tuple[int, ...], **framework: Any) -> dict:
        """config.json of a run of `trainer` on images of `image_shape`: every field (the value in effect where
        its setting names one, e.g. beta1), "framework", and `trainer`'s framework settings, of which those
        that define a run must be given; the trainer adds what only it knows."""
        takes = {s.name for s in FRAMEWORK_SETTINGS if trainer in s.trainers}
        needs = {s.name for s in FRAMEWORK_SETTINGS if trainer in s.trainers and s.run}
        if not needs <= framework.keys() <= takes:
            raise TypeError(f"run_record({trainer!r}) takes {sorted(takes)} and needs {sorted(needs)}; got {sorted(framework)}.")
        return {**self.recorded(), "framework": trainer, **framework, "image_shape": list(image_shape)}

    def recorded(self) -> dict:
        """Every field as config.json records it: the value in effect where its setting names one (beta1)."""
        return {**self.to_dict(), **{s.name: getattr(self, s.in_effect) for s in CONFIG_SETTINGS if s.in_effect}}

    def gan_fields(self) -> dict[str, Any]:
        """The `jaxgan.gan.GAN` fields the settings fill (`Setting.gan`), with the values in effect."""
        return {s.gan: getattr(self, s.in_effect or s.name) for s in CONFIG_SETTINGS if s.gan}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_recipe(cls, recipe: str, **changes: Any) -> Config:
        """The validated Config of a recipe (see `read_recipe`) with `changes` over its values."""
        return cls(**{**read_recipe(recipe), **changes, "recipe": recipe}).validate()

    @classmethod
    def from_dict(cls, saved: dict) -> Config:
        """The Config a run's config.json describes (extra keys such as "framework" are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in saved.items() if k in names}
        return cls(**values)


CONFIG_SETTINGS = of_fields(Config)
SETTINGS = CONFIG_SETTINGS + FRAMEWORK_SETTINGS
# The settings a resumed run must match, by name (gancore.runs.check_same_run).
RUN_SETTINGS = {s.name: s for s in SETTINGS if s.run}


def read_recipe(recipe: str) -> dict[str, Any]:
    """The Config values of a named recipe (RECIPES/NAME.toml) or of a .toml file; ConfigError naming the file and key."""
    return _read_recipe(recipe, RECIPES, CONFIG_SETTINGS)
