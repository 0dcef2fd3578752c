"""Issue 15's regularisers: separate learning rates for G and D, the R1 penalty on real images and
spectral normalisation of D's layers, each off by default (the article's step)."""

import jax
import jax.numpy as jnp
import pytest

from jaxgan.build import make_gan
from jaxgan.config import JAX, Config, build_parser, from_flags
from jaxgan.step import create_train_state

SMALL = Config(batch_size=32, g_features=(64, 128), d_features=(64, 32), latent_dim=16)


def small(**changes) -> Config:
    return Config(**{**SMALL.to_dict(), **changes})


def first_adam_update(tx, params):
    """Adam's first update on gradients of ones: -lr on every entry (m / sqrt(v) = 1, up to eps)."""
    updates, _ = tx.update(jax.tree.map(jnp.ones_like, params), tx.init(params), params)
    return float(jax.tree.leaves(updates)[0].ravel()[0])


@pytest.mark.parametrize(
    "argv, g_lr, d_lr",
    [([], 2e-4, 2e-4), (["--lr", "1e-3"], 1e-3, 1e-3), (["--lr", "1e-3", "--g-lr", "1e-4"], 1e-4, 1e-3),
     (["--g-lr", "1e-4", "--d-lr", "4e-4"], 1e-4, 4e-4)],
)
def test_lr_sets_both_networks_and_g_lr_d_lr_override_it(argv, g_lr, d_lr):
    config, _ = from_flags(JAX, build_parser(JAX, "test", "runs/t").parse_args([*argv, "--batch-size", "32"]))
    state = create_train_state(make_gan(config), jax.random.key(0))
    assert first_adam_update(state.gan.g_tx, state.g_params) == pytest.approx(-g_lr, rel=1e-4)
    assert first_adam_update(state.gan.d_tx, state.d_params) == pytest.approx(-d_lr, rel=1e-4)


def test_unset_g_lr_and_d_lr_leave_the_articles_gan_as_it_was():
    gan = make_gan(Config())
    assert gan.g_lr is None and gan.d_lr is None and "adam(0.0002, 0.9, 0.999)" in gan.describe()
    assert "adam(G 0.0001, D 0.0002, 0.9, 0.999)" in make_gan(Config(g_lr=1e-4)).describe()
    assert make_gan(Config(g_lr=1e-4)) != gan
