"""The `GAN` a `gancore.config.Config` describes: its networks, losses and optimiser settings.

A run's config.json rebuilds the same GAN (`gan_of_run`), for sampling and evaluation.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from gancore.config import Config, ConfigError
from jaxgan import losses
from jaxgan.gan import GAN
from jaxgan.models import DCDiscriminator, DCGenerator, Discriminator, Generator, SpectralNormed


def make_gan(
    config: Config,
    data_dim: int = 784,
    dtype: jnp.dtype | None = None,
    precision=None,
    image_shape: tuple[int, ...] = (28, 28),
    num_classes: int = 10,
    dense: str = "xla",
) -> GAN:
    """The GAN a `gancore.config.Config` describes (the article's by default).

    `image_shape` matters for --arch dcgan only; `num_classes` for --conditional only;
    `dense` ("xla" or "pallas", --dense) for --arch mlp only.
    """
    classes = num_classes if config.conditional else 0
    if config.arch == "dcgan" and dense != "xla":
        raise ConfigError(f"--dense {dense} fuses the MLP's dense layers and --arch dcgan has none to fuse; use --dense xla.")
    if config.arch == "dcgan":
        generator = DCGenerator(tuple(image_shape), config.dcgan_features, classes, dtype, precision)
        # No dropout: DCGAN's D has none (the article's 0.3 is for its MLP).
        discriminator = DCDiscriminator(tuple(image_shape), config.dcgan_features, classes, 0.0, dtype, precision)
    else:
        generator = Generator(tuple(config.g_features), data_dim, dtype, precision, classes, dense)
        discriminator = Discriminator(tuple(config.d_features), config.dropout, dtype, precision, classes, dense, config.dropout_bits)
    if config.spectral_norm:
        discriminator = SpectralNormed(discriminator)
    d_loss = losses.d_loss_named(config.d_loss, config.real_target, config.fake_target)
    g_loss = losses.g_loss_named(config.g_loss, config.real_target, config.fake_target)
    # The other fields come from the settings that declare them (`Setting.gan`).
    return GAN(generator=generator, discriminator=discriminator, data_dim=data_dim, d_loss=d_loss, g_loss=g_loss, num_classes=classes, **config.gan_fields())


def gan_of_run(run: dict, dtype: jnp.dtype | None = None) -> GAN:
    """The GAN a finished run's config.json describes (for sampling and evaluation)."""
    if run.get("model"):
        raise ConfigError(
            "this run was trained with a custom GAN (fit(gan=...)); rebuild that GAN and load its weights with jaxgan.fit.load_final_params(workdir)."
        )
    image_shape = tuple(run.get("image_shape", (28, 28)))
    data_dim = int(np.prod(image_shape))
    return make_gan(Config.from_dict(run), data_dim, dtype, image_shape=image_shape, num_classes=run.get("num_classes") or 10)
