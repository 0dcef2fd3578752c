import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from jaxgan import losses


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


def test_discriminator_loss_matches_hand_computation():
    real, fake = jnp.array([2.0, -1.0]), jnp.array([0.5, -3.0])
    # BCE(real, 1) = -mean(log s(r)); BCE(fake, 0) = -mean(log(1 - s(f))) = -mean(log s(-f)).
    expected = -(log_sigmoid(2.0) + log_sigmoid(-1.0)) / 2 - (log_sigmoid(-0.5) + log_sigmoid(3.0)) / 2
    assert float(losses.discriminator_loss(real, fake)) == pytest.approx(expected, rel=1e-6)


def test_logit_zero_costs_log_two_per_term():
    zeros = jnp.zeros(4)
    assert float(losses.discriminator_loss(zeros, zeros)) == pytest.approx(2 * math.log(2), rel=1e-6)
    assert float(losses.generator_loss(zeros)) == pytest.approx(math.log(2), rel=1e-6)
    assert float(losses.generator_loss(zeros, "minimax")) == pytest.approx(-math.log(2), rel=1e-6)


def test_generator_losses_are_the_non_saturating_and_minimax_forms():
    fake = jnp.array([-4.0, 1.5])
    ns = -(log_sigmoid(-4.0) + log_sigmoid(1.5)) / 2  # -log D(G(z))
    mm = (log_sigmoid(4.0) + log_sigmoid(-1.5)) / 2  # log(1 - D(G(z)))
    assert float(losses.generator_loss(fake)) == pytest.approx(ns, rel=1e-6)
    assert float(losses.generator_loss(fake, "minimax")) == pytest.approx(mm, rel=1e-6)
    # Where D rejects the fakes, the non-saturating gradient is far stronger: its reason to exist.
    g_ns = jax.grad(lambda l: losses.generator_loss(l))(jnp.array([-6.0]))
    g_mm = jax.grad(lambda l: losses.generator_loss(l, "minimax"))(jnp.array([-6.0]))
    assert abs(float(g_ns[0])) > 100 * abs(float(g_mm[0]))
    with pytest.raises(ValueError, match="unknown generator loss"):
        losses.generator_loss(fake, "hinge")


def test_label_smoothing_targets_match_torch_bceloss():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=16).astype(np.float32), rng.normal(size=16).astype(np.float32)
    bce = torch.nn.BCELoss()
    sr, sf = torch.sigmoid(torch.from_numpy(real)), torch.sigmoid(torch.from_numpy(fake))
    expected_d = bce(sr, torch.full_like(sr, 0.98)) + bce(sf, torch.full_like(sf, 0.02))
    expected_g = bce(sf, torch.full_like(sf, 0.98))
    got_d = losses.discriminator_loss(jnp.asarray(real), jnp.asarray(fake), 0.98, 0.02)
    got_g = losses.generator_loss(jnp.asarray(fake), real_target=0.98)
    assert float(got_d) == pytest.approx(expected_d.item(), rel=1e-5)
    assert float(got_g) == pytest.approx(expected_g.item(), rel=1e-5)
