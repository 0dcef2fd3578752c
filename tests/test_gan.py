"""`GAN` is derived from the settings' declarations: the fields a Config fills (`Setting.gan`),
their checks, and its description (config.json's "model" of a custom run), which still accepts
the words runs were saved with before."""

import dataclasses
import re

import optax
import pytest
from flax import linen as nn

from gancore.config import CONFIG_SETTINGS, Config
from jaxgan import losses
from jaxgan.build import make_gan
from jaxgan.gan import DECLARED, GAN

# What jaxgan.build.make_gan computes (networks, losses, the data's sizes), and the Python API's own optimisers.
NOT_SETTINGS = {"generator", "discriminator", "d_loss", "g_loss", "num_classes", "data_dim", "g_optimizer", "d_optimizer"}
# A value away from the default for each field a setting fills.
CHANGED = {
    "lr": 1e-3,
    "latent_dim": 8,
    "gp_weight": 1.0,
    "r1_weight": 1.0,
    "r1_every": 4,
    "d_steps": 2,
    "beta1": 0.5,
    "beta2": 0.9,
    "ema_decay": 0.9,
    "ema_start": 3,
    "g_lr": 1e-4,
    "d_lr": 4e-4,
    "one_d_pass": True,
}


class G(nn.Module):
    def __call__(self, z_BxZ):
        return z_BxZ


class D(nn.Module):
    def __call__(self, x_BxD, *, train):
        return x_BxD


def test_each_gan_field_is_filled_by_one_setting_or_computed_by_make_gan():
    # This also pins GAN's fields: a run saved in the earlier words (GAN.earlier_description) resumes with
    # a GAN that has them (jaxgan.trainer); a field added to GAN is not in them and must be at its default there.
    named = [s.gan for s in CONFIG_SETTINGS if s.gan]
    assert len(named) == len(set(named)) and set(named) == {f.name for f in dataclasses.fields(GAN)} - NOT_SETTINGS == set(CHANGED)
    # The declared defaults in effect are GAN's: the article's GAN is GAN's default one.
    article = make_gan(Config())
    assert article == GAN(article.generator, article.discriminator)
    gan = make_gan(Config(**CHANGED))
    assert {field: getattr(gan, field) for field in named} == CHANGED
    # beta1 takes the value in effect: the architecture's when --beta1 is not given.
    assert make_gan(Config(arch="dcgan")).beta1 == 0.5 and make_gan(Config(arch="dcgan", beta1=0.7)).beta1 == 0.7


@pytest.mark.parametrize("field", [f for f, s in DECLARED.items() if s.must or s.choices])
def test_gan_refuses_what_the_field_s_setting_refuses_in_one_sentence(field):
    must = DECLARED[field].must[0]
    with pytest.raises(ValueError, match=rf"^GAN\.{field} must {re.escape(must)}, got -1\.$"):
        GAN(G(), D(), **{field: -1})


def test_every_checked_field_has_its_check_and_a_wrong_type_is_refused_not_crashed_on():
    assert {f for f, s in DECLARED.items() if s.must or s.choices} == set(CHANGED) - {"one_d_pass"}
    with pytest.raises(ValueError, match=r"^GAN\.lr must be a positive number, got 'fast'\.$"):
        GAN(G(), D(), lr="fast")
    with pytest.raises(ValueError, match=r"^GAN\.r1_every must be a whole number, at least 1 \(1: every step\), got 2\.5\.$"):
        GAN(G(), D(), r1_every=2.5)
    # The fields no setting fills keep checks of their own.
    with pytest.raises(ValueError, match=r"^GAN\.num_classes must be 0 \(unconditional\) or more, got -1\.$"):
        GAN(G(), D(), num_classes=-1)
    with pytest.raises(ValueError, match=r"^GAN\.data_dim must be at least 1, got 0\.$"):
        GAN(G(), D(), data_dim=0)


def test_the_description_is_the_networks_then_each_field_away_from_its_default():
    assert GAN(G(), D()).describe() == "generator=G(); discriminator=D()"
    for field, value in CHANGED.items():
        assert GAN(G(), D(), **{field: value}).describe() == f"generator=G(); discriminator=D(); {field}={value}", field
    own = GAN(G(), D(), d_loss=losses.d_loss_named("bce", 0.98, 0.02), g_loss=losses.g_hinge, g_optimizer=optax.sgd(0.1), num_classes=10)
    assert own.describe() == (
        "generator=G(); discriminator=D(); d_loss=d_bce{'fake_target': 0.02, 'real_target': 0.98}; g_loss=g_hinge; num_classes=10; g_optimizer=custom"
    )


# GAN.describe() before it was derived from the fields (main at 96f345e), as custom runs' config.json holds it.
BEFORE = "G=G(); D=D(); d_loss=d_bce; g_loss=g_non_saturating; latent_dim=128; num_classes=0; gp_weight=0.0; d_steps=1; optimisers="
WGAN = dict(d_loss=losses.d_wasserstein, g_loss=losses.g_wasserstein, gp_weight=10.0, d_steps=5, beta1=0.5, beta2=0.9, latent_dim=64, num_classes=10)
EARLIER = {
    "default": ({}, BEFORE + "adam(0.0002, 0.9, 0.999)"),
    "g_lr": (dict(g_lr=1e-4), BEFORE + "adam(G 0.0001, D 0.0002, 0.9, 0.999)"),
    "g_lr and d_lr": (dict(lr=1e-3, g_lr=1e-4, d_lr=4e-4), BEFORE + "adam(G 0.0001, D 0.0004, 0.9, 0.999)"),
    "ema": (dict(ema_decay=0.999, ema_start=100), BEFORE + "adam(0.0002, 0.9, 0.999); ema_decay=0.999 from step 100"),
    "lazy r1": (dict(r1_weight=10.0, r1_every=16), BEFORE + "adam(0.0002, 0.9, 0.999); r1_weight=10.0 every 16 steps"),
    "r1_every alone": (dict(r1_every=16), BEFORE + "adam(0.0002, 0.9, 0.999)"),
    "one_d_pass": (dict(one_d_pass=True), BEFORE + "adam(0.0002, 0.9, 0.999); one_d_pass"),
    "custom optimiser": (dict(g_optimizer=optax.sgd(0.01)), BEFORE + "custom"),
    "wgan": (
        WGAN,
        "G=G(); D=D(); d_loss=d_wasserstein; g_loss=g_wasserstein; latent_dim=64; num_classes=10; gp_weight=10.0; d_steps=5; optimisers=adam(0.0002, 0.5, 0.9)",
    ),
}


@pytest.mark.parametrize("case", EARLIER)
def test_the_earlier_description_is_the_one_runs_were_saved_with(case):
    fields, saved = EARLIER[case]
    assert GAN(G(), D(), **fields).earlier_description() == saved
