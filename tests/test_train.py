import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gancore import data
from gancore.config import Config
from jaxgan import epochs
from jaxgan.build import make_gan
from jaxgan.step import create_train_state, discriminate, generate, generate_jit, init_train_state, train_step, update

SMALL = Config(batch_size=32, g_features=(64, 128), d_features=(64, 32), latent_dim=16)
# The step compiled, as train_step runs it: op by op, its few hundred operations were as many programs to compile.
update_jit = jax.jit(update)


@pytest.fixture(scope="module")
def images_NxD():
    """150 images: 4 steps of 32 and 22 images dropped, one epoch program for every test of a whole epoch."""
    return jnp.asarray(data.load("train", subset=150).flat_NxD)


def fresh_state(seed=0, config=SMALL):
    """create_train_state from the key of `seed`, as one compiled program (op by op it is dozens; test_the_compiled_init_...
    checks that both draw the same state)."""
    return init_train_state(make_gan(config), seed)


def leaves(tree):
    as_numpy = lambda x: np.asarray(jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x)
    return [as_numpy(x) for x in jax.tree.leaves(tree)]


def assert_trees_equal(a, b):
    for x, y in zip(leaves(a), leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


def test_state_is_one_pytree_with_step_params_adam_states_and_key():
    state = fresh_state()
    assert int(state.step) == 0
    assert isinstance(state.g_opt_state[0], __import__("optax").ScaleByAdamState)
    n_params = sum(x.size for x in jax.tree.leaves((state.g_params, state.d_params)))
    # Adam keeps two moments per parameter, plus two step counters.
    n_adam = sum(x.size for x in jax.tree.leaves((state.g_opt_state, state.d_opt_state)))
    assert n_adam == 2 * n_params + 2


@pytest.mark.parametrize(
    "config",
    [Config(), Config(ema_decay=0.9, conditional=True), Config(arch="dcgan", spectral_norm=True, latent_dim=16)],
    ids=["article", "ema-conditional", "dcgan-spectral"],
)
def test_the_compiled_init_and_sampling_equal_the_op_by_op_ones(config):
    """One program each (`jaxgan.compiles`; a spectrally normalised D's init stays op by op), the same numbers
    as run op by op: the same params from a seed, the same samples."""
    gan = make_gan(config)
    compiled, eager = init_train_state(gan, 7), create_train_state(gan, jax.random.key(7))
    assert_trees_equal(compiled, eager)
    # The seed is an argument of the program, as uint32: a seed above 2**31 keeps its key.
    assert_trees_equal(init_train_state(gan, 2**32 - 1).g_params, create_train_state(gan, jax.random.key(2**32 - 1)).g_params)
    given = {"g_params": eager.g_params, "d_params": eager.d_params}
    assert_trees_equal(init_train_state(gan, 8, given=given).g_params, eager.g_params)
    z_BxZ = np.random.default_rng(0).standard_normal((80, gan.latent_dim)).astype(np.float32)
    labels_B = np.arange(80) % 10 if gan.num_classes else None
    np.testing.assert_array_equal(generate_jit(gan, eager.g_params, z_BxZ, labels_B), generate(gan, eager.g_params, z_BxZ, labels_B))


def test_one_step_changes_both_networks_and_is_reproducible(images_NxD):
    x = data.to_unit_range(images_NxD[:32])
    before = fresh_state()
    g0, d0 = leaves(before.g_params), leaves(before.d_params)
    after, metrics = train_step(fresh_state(), x)
    assert int(after.step) == 1
    assert all(not np.array_equal(a, b) for a, b in zip(g0, leaves(after.g_params)))
    assert all(not np.array_equal(a, b) for a, b in zip(d0, leaves(after.d_params)))
    # Adam's first step moves each weight by about lr.
    delta = np.abs(leaves(after.g_params)[0] - g0[0])
    assert np.median(delta) == pytest.approx(2e-4, rel=0.05)
    again, metrics2 = train_step(fresh_state(), x)
    assert_trees_equal(after, again)
    assert {k: float(v) for k, v in metrics.items()} == {k: float(v) for k, v in metrics2.items()}
    other, _ = train_step(fresh_state(seed=1), x)
    assert not np.array_equal(leaves(other.g_params)[0], leaves(after.g_params)[0])


def test_metrics_are_the_articles_four_numbers(images_NxD):
    _, metrics = train_step(fresh_state(), data.to_unit_range(images_NxD[:32]))
    assert set(metrics) == {"d_loss", "g_loss", "d_real", "d_fake"}
    # An untrained D outputs about 1/2 for everything: D loss ~ 2 log 2, G loss ~ log 2.
    assert float(metrics["d_loss"]) == pytest.approx(2 * np.log(2), abs=0.1)
    assert float(metrics["g_loss"]) == pytest.approx(np.log(2), abs=0.1)
    assert 0.4 < float(metrics["d_real"]) < 0.6 and 0.4 < float(metrics["d_fake"]) < 0.6


def test_an_epoch_equals_the_same_steps_one_at_a_time(images_NxD):
    # shuffled_batches compiled, as the looped epoch draws them (op by op it is a dozen programs).
    idx = np.asarray(epochs._shuffled_batches(fresh_state(), len(images_NxD), 32))
    assert idx.shape == (4, 1, 32) and len(np.unique(idx)) == 128  # drawn from a permutation, no repeats
    state, per_step = fresh_state(), []
    for idx_KxB in idx:
        state, m = train_step(state, data.to_unit_range(images_NxD[idx_KxB]))
        per_step.append(m)
    scanned, metrics = epochs.run(fresh_state(), images_NxD, 32)
    assert int(scanned.step) == 4 and metrics["d_loss"].shape == (4,)
    for a, b in zip(leaves(state), leaves(scanned), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for k in per_step[0]:
        np.testing.assert_allclose([float(m[k]) for m in per_step], metrics[k], rtol=1e-5)


def test_epochs_draw_new_orders_and_drop_the_partial_batch(images_NxD):
    assert len(images_NxD) == 150
    state, _ = epochs.run(fresh_state(), images_NxD, 32)  # 4 batches, 22 images dropped
    assert int(state.step) == 4
    first = np.asarray(epochs._shuffled_batches(fresh_state(), 150, 32))  # compiled, as test_an_epoch_equals_... draws them
    second = np.asarray(epochs._shuffled_batches(state, 150, 32))
    assert first.shape == second.shape == (4, 1, 32)
    assert not np.array_equal(first, second)


def test_update_with_dropout_off_is_deterministic_given_the_noise(images_NxD):
    x = data.to_unit_range(images_NxD[:32])
    z1, z2 = jax.random.normal(jax.random.key(5), (2, 32, 16))
    a, ma = update_jit(fresh_state(), x, z1, z2, None, None)
    b, mb = update_jit(fresh_state(seed=0), x, z1, z2, None, None)
    assert_trees_equal(a.g_params, b.g_params)
    c, mc = update_jit(fresh_state(), x, z2, z1, None, None)  # swapped noise: a different step
    assert float(mc["g_loss"]) != float(ma["g_loss"])


def test_an_epoch_compiles_once(images_NxD):
    state = fresh_state(seed=3)
    state, _ = epochs.run(state, images_NxD, 32)
    before = epochs.run._cache_size()
    for _ in range(2):
        state, _ = epochs.run(state, images_NxD, 32)
    assert epochs.run._cache_size() == before


@pytest.mark.parametrize("smoothing, g_loss", [(0.0, "non_saturating"), (0.02, "non_saturating"), (0.0, "minimax")])
def test_step_losses_use_the_configured_targets_and_g_loss(images_NxD, smoothing, g_loss):
    config = Config(**{**SMALL.to_dict(), "label_smoothing": smoothing, "g_loss": g_loss})
    state = fresh_state(config=config)
    gan = state.gan
    x = data.to_unit_range(images_NxD[:32])
    z_d, z_g = jax.random.normal(jax.random.key(5), (2, 32, 16))
    new_state, metrics = update_jit(state, x, z_d, z_g, None, None)
    # D's loss: before D's update; G's loss: through the updated D.
    real_B = discriminate(gan, state.d_params, x, None)
    fake_B = discriminate(gan, state.d_params, generate(gan, state.g_params, z_d), None)
    p_real, p_fake = jax.nn.sigmoid(real_B), jax.nn.sigmoid(fake_B)
    t = 1.0 - smoothing
    expected_d = -jnp.mean(t * jnp.log(p_real) + (1 - t) * jnp.log1p(-p_real)) - jnp.mean((1 - t) * jnp.log(p_fake) + t * jnp.log1p(-p_fake))
    g_fake_B = jax.nn.sigmoid(discriminate(gan, new_state.d_params, generate(gan, state.g_params, z_g), None))
    if g_loss == "minimax":
        expected_g = jnp.mean((1 - t) * jnp.log(g_fake_B) + t * jnp.log1p(-g_fake_B))
    else:
        expected_g = -jnp.mean(t * jnp.log(g_fake_B) + (1 - t) * jnp.log1p(-g_fake_B))
    assert float(metrics["d_loss"]) == pytest.approx(float(expected_d), rel=1e-5)
    assert float(metrics["g_loss"]) == pytest.approx(float(expected_g), rel=1e-5)
    assert float(metrics["d_real"]) == pytest.approx(float(p_real.mean()), rel=1e-6)


# The conditional GAN with one hidden layer each: its own epoch and step to compile, less of each.
@pytest.mark.parametrize("changes", [{}, {"conditional": True, "d_steps": 2, "g_features": (64,), "d_features": (32,)}])
def test_the_looped_epoch_computes_what_the_scanned_epoch_does(images_NxD, changes):
    """One compiled call a step (fit's choice for convolutions on the CPU) gives the scanned epoch's numbers."""
    config = Config(**{**SMALL.to_dict(), **changes})
    labels_N = jnp.arange(len(images_NxD)) % 10 if config.conditional else None  # None: the scanned epoch of the tests above
    scanned, scanned_metrics = epochs.run(fresh_state(config=config), images_NxD, 32, labels_N=labels_N)
    step = jax.jit(epochs.step_at, donate_argnums=0)
    looped, looped_metrics = epochs.loop(step, fresh_state(config=config), images_NxD, 32, labels_N)
    assert looped_metrics["d_loss"].shape == scanned_metrics["d_loss"].shape == (4 // config.d_steps,)
    for a, b in zip(leaves(looped), leaves(scanned), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for k in scanned_metrics:
        np.testing.assert_allclose(looped_metrics[k], scanned_metrics[k], rtol=1e-5)
