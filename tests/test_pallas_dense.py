"""The fused Pallas dense layer (jaxgan.pallas_dense) equals the XLA path: forward, gradients, and a whole
training step with the same seed; its params are the XLA path's. On a CPU it runs in Pallas's interpret mode;
scripts/gpu_bench.sh runs this file on a GPU, where it goes through Triton."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import load_script

from gancore.config import Config, ConfigError
from jaxgan import models, step
from jaxgan.build import make_gan
from jaxgan.pallas_dense import fused_dense, reference

RATE = 0.3


@pytest.fixture(autouse=True)
def full_float32_products():
    """On a GPU both paths would otherwise round the products to TF32, each in its own way."""
    with jax.default_matmul_precision("highest"):
        yield


def inputs(B, I, O, dtype=jnp.float32):
    kx, kw, kb, kk = jax.random.split(jax.random.key(B * I + O), 4)
    x_BxI = jax.random.normal(kx, (B, I)).astype(dtype)
    w_IxO = (jax.random.normal(kw, (I, O)) / I**0.5).astype(dtype)
    b_O = jax.random.normal(kb, (O,)).astype(dtype)
    return x_BxI, w_IxO, b_O, jax.random.bernoulli(kk, 1 - RATE, (B, O))


# Odd shapes (no multiple of any block), one of the article's D layers at a small batch, more than one block of rows.
@pytest.mark.parametrize("shape", [(37, 50, 70), (64, 784, 256), (300, 128, 256)])
@pytest.mark.parametrize("dropout", [False, True])
def test_forward_equals_the_xla_layer_in_float32(shape, dropout):
    x, w, b, keep = inputs(*shape)
    keep, rate = (keep, RATE) if dropout else (None, 0.0)
    y = jax.jit(lambda *a: fused_dense(*a, slope=0.2, rate=rate))(x, w, b, keep)
    np.testing.assert_allclose(y, reference(x, w, b, keep, slope=0.2, rate=rate), rtol=1e-5, atol=1e-5)
    if dropout:
        assert np.array_equal(np.asarray(y) == 0, ~np.asarray(keep))  # dropped exactly where the mask says


def test_bfloat16_products_give_bfloat16_close_to_the_xla_layer():
    x, w, b, keep = inputs(70, 100, 130, jnp.bfloat16)
    y = fused_dense(x, w, b, keep, slope=0.2, rate=RATE)
    assert y.dtype == jnp.bfloat16
    want = reference(x, w, b, keep, slope=0.2, rate=RATE)
    np.testing.assert_allclose(np.float32(y), np.float32(want), rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("dropout", [False, True])
def test_gradients_in_x_w_and_b_equal_the_xla_layers(dropout):
    x, w, b, keep = inputs(45, 70, 90)
    keep, rate = (keep, RATE) if dropout else (None, 0.0)
    # A loss whose cotangent differs per element, so every entry of the backward pass is exercised.
    loss = lambda fn: lambda x, w, b: jnp.sum(jnp.sin(fn(x, w, b, keep, slope=0.2, rate=rate)))
    got = jax.grad(loss(fused_dense), (0, 1, 2))(x, w, b)
    want = jax.grad(loss(reference), (0, 1, 2))(x, w, b)
    for g, r in zip(got, want):
        np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-5)


def test_a_slope_of_zero_is_refused():
    x, w, b, _ = inputs(16, 16, 16)
    with pytest.raises(ValueError, match="slope > 0"):
        fused_dense(x, w, b, slope=0.0)


def small_gan(dense, one_d_pass=False):
    config = Config(batch_size=24, g_features=(40, 24), d_features=(24, 20), latent_dim=8, one_d_pass=one_d_pass)
    return make_gan(config, data_dim=100, dense=dense)


def test_params_of_one_path_work_in_the_other_and_give_the_same_outputs():
    xla, pallas = small_gan("xla"), small_gan("pallas")
    # Each state drawn as one compiled program (op by op, a Pallas layer's init is a program of its own).
    state, other = step.init_train_state(xla, 0), step.init_train_state(pallas, 0)
    assert jax.tree.map(np.shape, state.g_params) == jax.tree.map(np.shape, other.g_params)
    assert all(jax.tree.leaves(jax.tree.map(np.array_equal, (state.g_params, state.d_params), (other.g_params, other.d_params))))
    z_BxZ = jax.random.normal(jax.random.key(1), (24, 8))
    generate = {gan: jax.jit(lambda p, z, gan=gan: step.generate(gan, p, z)) for gan in (xla, pallas)}
    discriminate = {gan: jax.jit(lambda p, x, k, gan=gan: step.discriminate(gan, p, x, k)) for gan in (xla, pallas)}
    x_BxD = generate[xla](state.g_params, z_BxZ)
    np.testing.assert_allclose(generate[pallas](state.g_params, z_BxZ), x_BxD, rtol=1e-5, atol=1e-6)
    key = jax.random.key(2)  # the same dropout key: the same mask in both paths
    np.testing.assert_allclose(discriminate[pallas](state.d_params, x_BxD, key), discriminate[xla](state.d_params, x_BxD, key), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("one_d_pass", [False, True])  # --one-d-pass: D over both batches stacked, one dropout draw
def test_training_steps_with_pallas_equal_those_with_xla_for_the_same_seed(one_d_pass):
    x_BxD = jax.random.uniform(jax.random.key(3), (24, 100), minval=-1, maxval=1)
    states = {}
    for dense in ("xla", "pallas"):
        state = step.init_train_state(small_gan(dense, one_d_pass), 0)
        for _ in range(3):
            state, metrics = step.train_step(state, x_BxD)
        states[dense] = state
    for got, want in zip(
        jax.tree.leaves((states["pallas"].g_params, states["pallas"].d_params)), jax.tree.leaves((states["xla"].g_params, states["xla"].d_params))
    ):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_dcgan_with_pallas_is_refused_in_one_sentence():
    with pytest.raises(ConfigError, match=r"^--dense pallas fuses the MLP's dense layers and --arch dcgan has none to fuse; use --dense xla\.$"):
        make_gan(Config(arch="dcgan"), dense="pallas")


def test_a_module_given_an_unknown_dense_says_what_it_takes():
    with pytest.raises(ValueError, match=r"^dense must be one of xla, pallas, got 'triton'\."):
        models.Generator(dense="triton").init(jax.random.key(0), jnp.zeros((1, 128)))


def test_train_jax_refuses_a_bad_dense_in_one_sentence(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        load_script("train_jax").main(["--dense", "triton", "--workdir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert exit.value.code == 2 and "argument --dense: invalid choice: 'triton'" in err and not (tmp_path / "run").exists()
