import math
from collections.abc import Callable

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
    assert float(losses.d_bce(real, fake)) == pytest.approx(expected, rel=1e-6)


def test_logit_zero_costs_log_two_per_term():
    zeros = jnp.zeros(4)
    assert float(losses.d_bce(zeros, zeros)) == pytest.approx(2 * math.log(2), rel=1e-6)
    assert float(losses.g_non_saturating(zeros)) == pytest.approx(math.log(2), rel=1e-6)
    assert float(losses.g_minimax(zeros)) == pytest.approx(-math.log(2), rel=1e-6)


def test_generator_losses_are_the_non_saturating_and_minimax_forms():
    fake = jnp.array([-4.0, 1.5])
    ns = -(log_sigmoid(-4.0) + log_sigmoid(1.5)) / 2  # -log D(G(z))
    mm = (log_sigmoid(4.0) + log_sigmoid(-1.5)) / 2  # log(1 - D(G(z)))
    assert float(losses.g_non_saturating(fake)) == pytest.approx(ns, rel=1e-6)
    assert float(losses.g_minimax(fake)) == pytest.approx(mm, rel=1e-6)
    # Where D rejects the fakes, the non-saturating gradient is far stronger: its reason to exist.
    g_ns = jax.grad(lambda l: losses.g_non_saturating(l))(jnp.array([-6.0]))
    g_mm = jax.grad(lambda l: losses.g_minimax(l))(jnp.array([-6.0]))
    assert abs(float(g_ns[0])) > 100 * abs(float(g_mm[0]))


def test_label_smoothing_targets_match_torch_bceloss():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=16).astype(np.float32), rng.normal(size=16).astype(np.float32)
    bce = torch.nn.BCELoss()
    sr, sf = torch.sigmoid(torch.from_numpy(real)), torch.sigmoid(torch.from_numpy(fake))
    expected_d = bce(sr, torch.full_like(sr, 0.98)) + bce(sf, torch.full_like(sf, 0.02))
    expected_g = bce(sf, torch.full_like(sf, 0.98))
    got_d = losses.d_bce(jnp.asarray(real), jnp.asarray(fake), 0.98, 0.02)
    got_g = losses.g_non_saturating(jnp.asarray(fake), 0.98)
    assert float(got_d) == pytest.approx(expected_d.item(), rel=1e-5)
    assert float(got_g) == pytest.approx(expected_g.item(), rel=1e-5)


# Hand-picked logits away from every kink (hinge at +-1), B = 3.
REAL = jnp.array([2.0, 0.5, -1.0])
FAKE = jnp.array([-2.0, 0.0, 1.5])


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@pytest.mark.parametrize(
    "loss, expected",
    [
        # BCE(r, 0.9) + BCE(f, 0.1), with BCE(x, t) = -t log s(x) - (1 - t) log s(-x).
        (
            losses.bind(losses.d_bce, real_target=0.9, fake_target=0.1),
            -sum(0.9 * log_sigmoid(r) + 0.1 * log_sigmoid(-r) for r in (2.0, 0.5, -1.0)) / 3
            - sum(0.1 * log_sigmoid(f) + 0.9 * log_sigmoid(-f) for f in (-2.0, 0.0, 1.5)) / 3,
        ),
        # (r - 1)^2 = 1, 0.25, 4; f^2 = 4, 0, 2.25.
        (losses.d_least_squares, 0.5 * (1 + 0.25 + 4) / 3 + 0.5 * (4 + 0 + 2.25) / 3),
        # relu(1 - r) = 0, 0.5, 2; relu(1 + f) = 0, 1, 2.5.
        (losses.d_hinge, (0 + 0.5 + 2) / 3 + (0 + 1 + 2.5) / 3),
        (losses.d_wasserstein, (-2.0 + 0.0 + 1.5) / 3 - (2.0 + 0.5 - 1.0) / 3),
    ],
    ids=["bce", "least_squares", "hinge", "wasserstein"],
)
def test_discriminator_losses_match_hand_computation(loss, expected):
    assert float(loss(REAL, FAKE)) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    "loss, expected",
    [
        (losses.g_non_saturating, -(log_sigmoid(-2.0) + log_sigmoid(0.0) + log_sigmoid(1.5)) / 3),
        (
            losses.bind(losses.g_non_saturating, real_target=0.9),
            -sum(0.9 * log_sigmoid(f) + 0.1 * log_sigmoid(-f) for f in (-2.0, 0.0, 1.5)) / 3,
        ),
        (losses.g_minimax, (log_sigmoid(2.0) + log_sigmoid(0.0) + log_sigmoid(-1.5)) / 3),
        (
            losses.bind(losses.g_minimax, fake_target=0.1),
            sum(0.1 * log_sigmoid(f) + 0.9 * log_sigmoid(-f) for f in (-2.0, 0.0, 1.5)) / 3,
        ),
        # (f - 1)^2 = 9, 1, 0.25.
        (losses.g_least_squares, 0.5 * (9 + 1 + 0.25) / 3),
        (losses.g_hinge, -(-2.0 + 0.0 + 1.5) / 3),
        (losses.g_wasserstein, -(-2.0 + 0.0 + 1.5) / 3),
    ],
    ids=["non_saturating", "non_saturating_0.9", "minimax", "minimax_0.1", "least_squares", "hinge", "wasserstein"],
)
def test_generator_losses_match_hand_computation(loss, expected):
    assert float(loss(FAKE)) == pytest.approx(expected, rel=1e-6)


def d_grads(r: np.ndarray, f: np.ndarray) -> dict:
    """Analytic d loss / d (real_logits, fake_logits) of each D loss, B = len(r)."""
    B = len(r)
    return {
        "bce": ((sigmoid(r) - 0.9) / B, (sigmoid(f) - 0.1) / B),  # targets 0.9 and 0.1, as bound below
        "least_squares": ((r - 1) / B, f / B),
        "hinge": (np.where(r < 1, -1.0, 0.0) / B, np.where(f > -1, 1.0, 0.0) / B),
        "wasserstein": (np.full(B, -1.0) / B, np.full(B, 1.0) / B),
    }


def g_grads(f: np.ndarray) -> dict:
    """Analytic d loss / d fake_logits of each G loss."""
    B = len(f)
    return {
        "non_saturating": (sigmoid(f) - 1.0) / B,
        "minimax": -sigmoid(f) / B,
        "least_squares": (f - 1) / B,
        "hinge": np.full(B, -1.0) / B,
        "wasserstein": np.full(B, -1.0) / B,
    }


@pytest.mark.parametrize("name", list(losses.D_LOSSES))
def test_discriminator_loss_gradients_are_analytic(name):
    loss = losses.D_LOSSES[name]
    if name == "bce":
        loss = losses.bind(loss, real_target=0.9, fake_target=0.1)
    got_r, got_f = jax.grad(loss, argnums=(0, 1))(REAL, FAKE)
    want_r, want_f = d_grads(np.asarray(REAL, np.float64), np.asarray(FAKE, np.float64))[name]
    np.testing.assert_allclose(got_r, want_r, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(got_f, want_f, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", list(losses.G_LOSSES))
def test_generator_loss_gradients_are_analytic(name):
    got = jax.grad(losses.G_LOSSES[name])(FAKE)
    np.testing.assert_allclose(got, g_grads(np.asarray(FAKE, np.float64))[name], rtol=1e-6, atol=1e-7)


def test_hinge_gradient_vanishes_beyond_the_margin():
    # D gets no push from reals scored above 1 nor from fakes scored below -1.
    g_r, g_f = jax.grad(losses.d_hinge, argnums=(0, 1))(jnp.array([1.5, 0.9]), jnp.array([-1.5, -0.9]))
    np.testing.assert_array_equal(g_r, [0.0, -0.5])
    np.testing.assert_array_equal(g_f, [0.0, 0.5])


def test_least_squares_and_bce_match_torch():
    rng = np.random.default_rng(1)
    r_np, f_np = (3 * rng.normal(size=32)).astype(np.float32), (3 * rng.normal(size=32)).astype(np.float32)
    r_t, f_t = torch.from_numpy(r_np), torch.from_numpy(f_np)
    r, f = jnp.asarray(r_np), jnp.asarray(f_np)
    F = torch.nn.functional
    want_d_ls = 0.5 * F.mse_loss(r_t, torch.ones_like(r_t)) + 0.5 * F.mse_loss(f_t, torch.zeros_like(f_t))
    want_g_ls = 0.5 * F.mse_loss(f_t, torch.ones_like(f_t))
    bce_t = F.binary_cross_entropy_with_logits
    want_d_bce = bce_t(r_t, torch.full_like(r_t, 0.9)) + bce_t(f_t, torch.full_like(f_t, 0.1))
    want_ns = bce_t(f_t, torch.full_like(f_t, 0.9))
    want_mm = -bce_t(f_t, torch.full_like(f_t, 0.1))
    assert float(losses.d_least_squares(r, f)) == pytest.approx(want_d_ls.item(), rel=1e-5)
    assert float(losses.g_least_squares(f)) == pytest.approx(want_g_ls.item(), rel=1e-5)
    assert float(losses.d_bce(r, f, 0.9, 0.1)) == pytest.approx(want_d_bce.item(), rel=1e-5)
    assert float(losses.g_non_saturating(f, 0.9)) == pytest.approx(want_ns.item(), rel=1e-5)
    assert float(losses.g_minimax(f, 0.1)) == pytest.approx(want_mm.item(), rel=1e-5)


def random_pair(seed: int, B: int = 8, D: int = 5) -> tuple[jax.Array, jax.Array]:
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.normal(size=(B, D)), jnp.float32), jnp.asarray(rng.normal(size=(B, D)), jnp.float32)


def test_gradient_penalty_of_a_linear_critic_is_its_norm_minus_one_squared():
    w = jnp.array([0.5, -2.0, 1.0, 0.25, 3.0])
    want = (float(jnp.linalg.norm(w)) - 1.0) ** 2
    for seed in range(3):
        x_real, x_fake = random_pair(seed)
        got = losses.gradient_penalty(lambda x: x @ w, x_real, x_fake, jax.random.key(seed))
        assert float(got) == pytest.approx(want, rel=1e-6)


def test_gradient_penalty_of_a_square_critic_at_a_known_point():
    # critic(x) = ||x||^2 has input gradient 2x; with x_real = x_fake = x, x_hat = x whatever eps is.
    x = jnp.array([[0.3, 0.4], [1.0, 0.0], [0.0, 0.25], [1.2, 1.6]])  # norms 0.5, 1, 0.25, 2
    want = ((2 * 0.5 - 1) ** 2 + (2 * 1 - 1) ** 2 + (2 * 0.25 - 1) ** 2 + (2 * 2 - 1) ** 2) / 4
    got = losses.gradient_penalty(lambda x: jnp.sum(x**2, axis=-1), x, x, jax.random.key(0))
    assert float(got) == pytest.approx(want, rel=1e-6)


def test_gradient_penalty_interpolates_with_a_uniform_eps_per_sample():
    # critic(x) = ||x||^2 / 2 at x_hat = eps u (u a unit vector, x_fake = 0) has gradient norm eps:
    # the penalty is mean((eps - 1)^2), 1/3 for eps ~ U(0, 1); one eps for the whole batch would scatter it
    # over [0, 1] from key to key, and x_real alone (eps = 1) or x_fake alone (eps = 0) gives 0 or 1.
    B = 4096
    u = jnp.tile(jnp.array([[0.6, 0.8]]), (B, 1))
    values = [float(losses.gradient_penalty(lambda x: jnp.sum(x**2, axis=-1) / 2, u, jnp.zeros_like(u), jax.random.key(k))) for k in range(4)]
    np.testing.assert_allclose(values, 1 / 3, atol=0.02)
    assert len(set(values)) == len(values)  # the key draws eps


def mlp_critic(params: dict) -> Callable[[jax.Array], jax.Array]:
    return lambda x_BxD: jnp.tanh(x_BxD @ params["w1"]) @ params["w2"]


def test_gradient_penalty_gradient_reaches_the_critic_parameters():
    rng = np.random.default_rng(2)
    params = {
        "w1": jnp.asarray(rng.normal(size=(5, 16)), jnp.float32),
        "w2": jnp.asarray(rng.normal(size=16), jnp.float32),
    }
    x_real, x_fake = random_pair(3)
    grads = jax.grad(lambda p: losses.gradient_penalty(mlp_critic(p), x_real, x_fake, jax.random.key(0)))(params)
    for g in jax.tree.leaves(grads):
        assert np.all(np.isfinite(g)) and np.any(np.abs(g) > 1e-3)


def test_gradient_penalty_gradient_of_a_linear_critic_is_analytic():
    # d (||w|| - 1)^2 / dw = 2 (||w|| - 1) w / ||w||: zero exactly when ||w|| = 1.
    x_real, x_fake = random_pair(4)

    def grad_w(w):
        return jax.grad(lambda w: losses.gradient_penalty(lambda x: x @ w, x_real, x_fake, jax.random.key(0)))(w)

    unit = jnp.array([0.0, 0.6, 0.0, -0.8, 0.0])
    np.testing.assert_allclose(grad_w(unit), 0.0, atol=1e-6)
    w = 3 * unit
    np.testing.assert_allclose(grad_w(w), 2 * (3 - 1) * unit, rtol=1e-5)


def test_gradient_penalty_is_finite_where_the_critic_is_flat():
    # A dead ReLU critic has a zero input gradient: penalty 1 per sample, and a zero (not NaN) parameter gradient.
    x_real, x_fake = random_pair(5)
    x_real, x_fake = jnp.abs(x_real), jnp.abs(x_fake)

    def penalty(w):
        return losses.gradient_penalty(lambda x: jax.nn.relu(x @ w), x_real, x_fake, jax.random.key(0))

    w = -jnp.ones(5)  # x @ w < 0 for every x_hat
    assert float(penalty(w)) == 1.0
    np.testing.assert_array_equal(jax.grad(penalty)(w), np.zeros(5))


def test_registries_name_every_loss():
    assert losses.D_LOSSES == {
        "bce": losses.d_bce,
        "least_squares": losses.d_least_squares,
        "hinge": losses.d_hinge,
        "wasserstein": losses.d_wasserstein,
    }
    assert losses.G_LOSSES == {
        "non_saturating": losses.g_non_saturating,
        "minimax": losses.g_minimax,
        "least_squares": losses.g_least_squares,
        "hinge": losses.g_hinge,
        "wasserstein": losses.g_wasserstein,
    }


@pytest.mark.parametrize("kind", list(losses.G_LOSSES))
def test_generator_loss_dispatches_and_passes_targets_only_to_bce(kind):
    # Targets 0.9/0.1 change only the BCE losses; every other loss ignores them.
    want = {
        "non_saturating": losses.g_non_saturating(FAKE, 0.9),
        "minimax": losses.g_minimax(FAKE, 0.1),
    }.get(kind, losses.G_LOSSES[kind](FAKE))
    assert float(losses.g_loss_named(kind, real_target=0.9, fake_target=0.1)(FAKE)) == float(want)


def test_unknown_generator_loss_names_the_choices():
    choices = "choose one of non_saturating, minimax, least_squares, hinge, wasserstein"
    with pytest.raises(ValueError, match=f"unknown generator loss 'unknown'; {choices}"):
        losses.g_loss_named("unknown")


def test_bound_losses_are_equal_and_hash_equal_for_equal_kwargs():
    a = losses.bind(losses.d_bce, real_target=0.9, fake_target=0.1)
    b = losses.bind(losses.d_bce, fake_target=0.1, real_target=0.9)
    assert a == b and hash(a) == hash(b)
    assert a != losses.bind(losses.d_bce, real_target=0.8, fake_target=0.1)
    assert losses.bind(losses.g_hinge, scale=2.0) != losses.bind(losses.g_wasserstein, scale=2.0)
    assert float(a(REAL, FAKE)) == float(losses.d_bce(REAL, FAKE, real_target=0.9, fake_target=0.1))


def test_bind_without_kwargs_returns_the_function_itself():
    assert losses.bind(losses.d_hinge) is losses.d_hinge


def test_equal_bound_losses_share_one_compilation():
    step = jax.jit(lambda loss, r, f: loss(r, f), static_argnums=0)
    step(losses.bind(losses.d_bce, real_target=0.9), REAL, FAKE)
    step(losses.bind(losses.d_bce, real_target=0.9), REAL, FAKE)
    assert step._cache_size() == 1
    step(losses.bind(losses.d_bce, real_target=0.8), REAL, FAKE)
    assert step._cache_size() == 2
