"""--one-d-pass (issue 14): D's update scores the real and fake batches in one D call over both stacked.
Without dropout it is the two-pass loss (value, gradient, spectral norm's stats); with dropout it trains;
off by default, where the step is the article's."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gancore.config import Config
from jaxgan import step
from jaxgan.build import make_gan

SMALL = dict(batch_size=16, g_features=(32,), d_features=(32, 16), latent_dim=8)
B = SMALL["batch_size"]


def two_and_one(**changes):
    config = Config(**{**SMALL, **changes})
    gan = make_gan(config, 64, image_shape=(8, 8)) if config.arch == "dcgan" else make_gan(config)
    return gan, dataclasses.replace(gan, one_d_pass=True)


def loss_and_grads(gan, dropout_key=None):
    state = step.create_train_state(gan, jax.random.key(0))
    keys = jax.random.split(jax.random.key(1), 4)
    x_real_BxD = jax.random.uniform(keys[0], (B, gan.data_dim), minval=-1.0, maxval=1.0)
    x_fake_BxD = step.generate(gan, state.g_params, jax.random.normal(keys[1], (B, gan.latent_dim)), jnp.arange(B) % 10 if gan.num_classes else None)
    labels_B = jnp.arange(B) % 10 if gan.num_classes else None
    gp_key = keys[2] if gan.gp_weight else None
    grad_fn = jax.value_and_grad(step.d_loss_fn, has_aux=True)
    (loss, (metrics, stats)), grads = grad_fn(state.d_params, gan, x_real_BxD, x_fake_BxD, dropout_key, labels_B, gp_key, state.d_stats)
    return loss, metrics, stats, grads


@pytest.mark.parametrize(
    "changes",
    [
        dict(),
        dict(conditional=True),
        dict(r1_weight=10.0),
        dict(spectral_norm=True, conditional=True),
        dict(gp_weight=10.0, d_loss="wasserstein", g_loss="wasserstein"),
        dict(arch="dcgan", dcgan_features=1),  # XLA compiles each rank-4 kernel draw for seconds, the more so the bigger
    ],
    ids=["plain", "conditional", "r1", "spectral_norm", "gp", "dcgan"],
)
def test_without_dropout_the_stacked_pass_is_the_two_pass_loss_and_gradient(changes):
    two, one = two_and_one(dropout=0.0, **changes)
    key = jax.random.key(7)  # dropout 0: the keys draw nothing
    loss2, metrics2, stats2, grads2 = loss_and_grads(two, key)
    loss1, metrics1, stats1, grads1 = loss_and_grads(one, key)
    # Equal up to float32 summation order (a kernel's gradient sums 2B rows at once instead of B and B).
    np.testing.assert_allclose(loss1, loss2, rtol=1e-6)
    for a, b in zip(jax.tree.leaves((metrics1, grads1)), jax.tree.leaves((metrics2, grads2))):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    # Spectral norm: u advances once per D update, to the same vectors.
    assert jax.tree.structure(stats1) == jax.tree.structure(stats2)
    for a, b in zip(jax.tree.leaves(stats1), jax.tree.leaves(stats2)):
        np.testing.assert_array_equal(a, b)


def test_with_dropout_one_draw_over_the_stacked_rows_trains():
    two, one = two_and_one(r1_weight=1.0)
    key = jax.random.key(3)
    loss2, *_ = loss_and_grads(two, key)
    loss1, *_ = loss_and_grads(one, key)
    assert np.isfinite(loss1) and loss1 != loss2  # another random stream than the article's
    state = step.create_train_state(one, jax.random.key(0))
    x_BxD = jax.random.uniform(jax.random.key(2), (B, 784), minval=-1.0, maxval=1.0)
    d_losses = []
    for _ in range(10):
        state, metrics = step.train_step(state, x_BxD)
        d_losses.append(float(metrics["d_loss"]))
    assert np.all(np.isfinite(d_losses)) and int(state.step) == 10
    assert np.mean(d_losses[-3:]) < d_losses[0]  # D learns to tell one fixed batch from G's


def count_dots(gan) -> int:
    state = step.create_train_state(gan, jax.random.key(0))
    x_BxD = jnp.zeros((B, 784))
    return jax.jit(step.d_loss_fn, static_argnums=1).lower(state.d_params, gan, x_BxD, x_BxD, jax.random.key(0)).as_text().count("dot_general")


def test_the_stacked_pass_calls_d_once_and_off_by_default_the_step_is_the_articles(monkeypatch):
    two, one = two_and_one()
    assert Config().one_d_pass is False and make_gan(Config(**SMALL)) == two
    assert count_dots(two) == 2 * count_dots(one) == 2 * 3  # D's three layers, once per pass
    assert one.describe() == two.describe() + "; one_d_pass=True"

    def step_text(gan):  # a fresh function each time: traced anew, not taken from jit's cache
        state = step.create_train_state(gan, jax.random.key(0))
        return jax.jit(lambda s, x: step.train_step.__wrapped__(s, x)).lower(state, jnp.zeros((B, 784))).as_text()

    article = step_text(two)
    monkeypatch.setattr(step, "_stacked_pass", None)  # not even traced with the flag off
    assert step_text(two) == article
