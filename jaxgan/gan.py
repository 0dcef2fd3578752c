"""`GAN`: everything static about what is trained (networks, losses, optimisers, options).

`jaxgan.step` trains it; `jaxgan.build.make_gan` makes the article's (or a research
variant) from a Config; a user passes their own to `jaxgan.fit.fit(config, gan=...)`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import optax
from flax import linen as nn

from gancore.config import CONFIG_SETTINGS
from jaxgan import losses

# The fields a setting fills (jaxgan.build.make_gan), by field: each is checked by its setting's declaration.
DECLARED = {s.gan: s for s in CONFIG_SETTINGS if s.gan}
# Module fields added after custom runs were saved, at their defaults: left out of a network's
# description, so such runs still resume (their config.json's "model" predates the fields).
_LATER_FIELDS_AT_DEFAULT = ("dense = 'xla'", "dropout_bits = 32")


def _described(module: nn.Module) -> str:
    """Flax's repr of a network without the lines of `_LATER_FIELDS_AT_DEFAULT`."""
    return "\n".join(line for line in repr(module).splitlines() if line.strip() not in _LATER_FIELDS_AT_DEFAULT)


def _named(fn: Callable) -> str:
    """A loss by its name (and a bound one's targets)."""
    return f"{fn.fn.__qualname__}{dict(fn.kwargs)}" if isinstance(fn, losses.Bound) else getattr(fn, "__qualname__", repr(fn))


def _text(value) -> str:
    """How `GAN.describe` writes a field: a network as Flax shows it, a function by its name, an optimiser as custom."""
    if isinstance(value, nn.Module):
        return _described(value)
    if isinstance(value, optax.GradientTransformation):
        return "custom"
    return _named(value) if callable(value) else str(value)


@dataclasses.dataclass(frozen=True)
class GAN:
    """Everything static about a run: the two networks, their optimisers and the losses.

    `generator`: any Flax module, `apply({"params": p}, z_BxZ[, labels_B=...])` -> x_BxD.
    `discriminator`: any Flax module, `apply({"params": p}, x_BxD[, labels_B=...], train=...)`
    -> logits_B (one score per sample; a "dropout" rng is passed when train=True). A "batch_stats"
    collection of D's (spectral norm's u) is `TrainState.d_stats`, mutable in D's real pass only.
    `d_loss(real_logits_B, fake_logits_B)` and `g_loss(fake_logits_B)`: scalars
    (`jaxgan.losses`, or your own pure functions).
    `num_classes` > 0 makes the GAN conditional: both networks get `labels_B` (ints).
    `gp_weight` adds that multiple of the WGAN-GP gradient penalty to D's loss;
    `r1_weight` gamma adds gamma/2 E||grad_x D(x)||^2 on the real batch (R1); with `r1_every` k > 1,
    on steps divisible by k only (every D update of such a step), times k (lazy R1);
    `d_steps` D updates, each on its own batch, precede every G update.
    `g_lr`/`d_lr`, when given, replace `lr` for that network's Adam;
    `g_optimizer`/`d_optimizer` replace Adam(lr, beta1, beta2) when given.
    `ema_decay` > 0 keeps an exponential moving average of G's params (`TrainState.ema_params`),
    updated after each G update; before step `ema_start` it copies G's params.
    `one_d_pass`: D's update scores the real and fake batches in one D call over both stacked
    (a speed option: one dropout draw over the stacked rows, not the article's random stream).

    Keep fields plain values (or module-level functions, `losses.bind`) so two GANs
    built from equal configs compare equal and a second run reuses the compiled step.
    """

    generator: nn.Module
    discriminator: nn.Module
    lr: float = 2e-4
    latent_dim: int = 128
    data_dim: int = 784
    d_loss: Callable[[jax.Array, jax.Array], jax.Array] = losses.d_bce
    g_loss: Callable[[jax.Array], jax.Array] = losses.g_non_saturating
    num_classes: int = 0
    gp_weight: float = 0.0
    d_steps: int = 1
    beta1: float = 0.9
    beta2: float = 0.999
    g_optimizer: optax.GradientTransformation | None = None
    d_optimizer: optax.GradientTransformation | None = None
    ema_decay: float = 0.0
    ema_start: int = 0
    g_lr: float | None = None
    d_lr: float | None = None
    g_tx_lr = property(lambda self: self.lr if self.g_lr is None else self.g_lr)
    d_tx_lr = property(lambda self: self.lr if self.d_lr is None else self.d_lr)
    r1_weight: float = 0.0
    r1_every: int = 1
    one_d_pass: bool = False

    def __post_init__(self):
        for field, setting in DECLARED.items():
            if problem := setting.problem(getattr(self, field), label=f"GAN.{field}"):
                raise ValueError(problem)
        # The fields no setting fills: jaxgan.build.make_gan takes them from the data.
        if self.num_classes < 0:
            raise ValueError(f"GAN.num_classes must be 0 (unconditional) or more, got {self.num_classes}.")
        if self.data_dim < 1:
            raise ValueError(f"GAN.data_dim must be at least 1, got {self.data_dim}.")

    def describe(self) -> str:
        """A stable description of what the GAN is (config.json's "model" of a custom run; resume compares it):
        its networks and every other field away from its default, so a field added later leaves it as it was."""
        fields = [f for f in dataclasses.fields(self) if f.default is dataclasses.MISSING or getattr(self, f.name) != f.default]
        return "; ".join(f"{f.name}={_text(getattr(self, f.name))}" for f in fields)

    def earlier_description(self) -> str:
        """This GAN in the words of `describe` before it was derived from the fields, which custom runs saved until
        then hold in config.json: such a run resumes with this GAN (jaxgan.trainer.run_record)."""
        # One lr reads as it always did, so custom runs saved before g_lr/d_lr still resume.
        lrs = self.lr if self.g_lr is None and self.d_lr is None else f"G {self.g_tx_lr}, D {self.d_tx_lr}"
        optimisers = "custom" if self.g_optimizer or self.d_optimizer else f"adam({lrs}, {self.beta1}, {self.beta2})"
        return (
            f"G={_described(self.generator)}; D={_described(self.discriminator)}; d_loss={_named(self.d_loss)}; g_loss={_named(self.g_loss)}; "
            f"latent_dim={self.latent_dim}; num_classes={self.num_classes}; gp_weight={self.gp_weight}; "
            f"d_steps={self.d_steps}; optimisers={optimisers}"
            + (f"; ema_decay={self.ema_decay} from step {self.ema_start}" if self.ema_decay else "")
            + (f"; r1_weight={self.r1_weight}" if self.r1_weight else "")
            + (f" every {self.r1_every} steps" if self.r1_weight and self.r1_every > 1 else "")
            + ("; one_d_pass" if self.one_d_pass else "")
        )

    @property
    def g_tx(self) -> optax.GradientTransformation:
        return self.g_optimizer or optax.adam(self.g_tx_lr, self.beta1, self.beta2)

    @property
    def d_tx(self) -> optax.GradientTransformation:
        return self.d_optimizer or optax.adam(self.d_tx_lr, self.beta1, self.beta2)
