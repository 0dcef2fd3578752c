"""--dropout-bits (issue 14): D's dropout masks from 16 or 8 random bits a unit instead of a float32 uniform.
The mask's layout and keep rate, the layer's scaling, the same masks through --dense pallas, the refusals,
and 32 (the default) left as the article's nn.Dropout."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from gancore.config import Config, ConfigError
from jaxgan.build import make_gan
from jaxgan.gan import GAN
from jaxgan.models import BitsDropout, Discriminator, Generator, keep_mask, keep_probability
from jaxgan.step import create_train_state, train_step


def test_keep_probability_is_the_nearest_multiple_of_two_to_the_minus_bits():
    assert keep_probability(0.3) == 0.7
    assert keep_probability(0.3, 16) == 45875 / 65536  # round(0.7 * 65536)
    assert keep_probability(0.3, 8) == 179 / 256  # 0.69922: the rate becomes 0.30078
    assert keep_probability(0.5, 8) == 0.5


@pytest.mark.parametrize("bits", [16, 8])
def test_each_word_of_random_bits_is_cut_into_fields_lowest_first(bits):
    key, shape = jax.random.key(3), (5, 7)  # 35 units: the last word is only partly used
    per_word = 32 // bits
    words = np.asarray(jax.random.bits(key, (-(-35 // per_word),), jnp.uint32))
    fields = [(int(w) >> (bits * j)) & (2**bits - 1) for w in words for j in range(per_word)][:35]
    expected = np.array(fields) < round(keep_probability(0.3, bits) * 2**bits)
    np.testing.assert_array_equal(np.asarray(keep_mask(key, 0.3, shape, bits)).reshape(-1), expected)


@pytest.mark.parametrize("bits", [16, 8])
def test_the_mask_keeps_units_at_its_keep_probability_without_correlation(bits):
    keep = np.asarray(keep_mask(jax.random.key(0), 0.3, (2000, 384), bits)).reshape(-1).astype(float)
    p, n = keep_probability(0.3, bits), keep.size
    assert abs(keep.mean() - p) < 5 * np.sqrt(p * (1 - p) / n)
    for lag in (1, 2, 4):  # neighbours share a word at lags below 32 // bits
        assert abs(np.corrcoef(keep[:-lag], keep[lag:])[0, 1]) < 5 / np.sqrt(n)


def test_32_bits_is_flax_s_own_dropout_draw():
    key = jax.random.key(5)
    np.testing.assert_array_equal(keep_mask(key, 0.3, (64, 32)), jax.random.bernoulli(key, 0.7, (64, 32)))


def test_bits_dropout_divides_kept_units_by_their_exact_keep_probability():
    x = jax.random.normal(jax.random.key(1), (256, 64))
    key = jax.random.key(2)
    y = np.asarray(BitsDropout(0.3, 8).apply({}, x, deterministic=False, rngs={"dropout": key}))
    kept = y != 0.0
    np.testing.assert_array_equal(y[kept], np.asarray(x / (179 / 256))[kept])
    assert abs(kept.mean() - 179 / 256) < 5 * np.sqrt(0.21 / kept.size)
    assert BitsDropout(0.3, 8).apply({}, x, deterministic=True) is x
    # The same params and names as nn.Dropout's D: a run's params do not depend on the bits.
    params = Discriminator((32, 16), 0.3, dropout_bits=8).init(jax.random.key(0), x, train=False)
    assert jax.tree.structure(params) == jax.tree.structure(Discriminator((32, 16), 0.3).init(jax.random.key(0), x, train=False))


@pytest.mark.parametrize("bits", [16, 8])
def test_pallas_layers_draw_the_same_masks(bits):
    x = jax.random.normal(jax.random.key(1), (24, 40))
    xla = Discriminator((32, 16), 0.3, dropout_bits=bits)
    pallas = Discriminator((32, 16), 0.3, dense="pallas", dropout_bits=bits)
    params = xla.init(jax.random.key(0), x, train=False)
    rngs = {"dropout": jax.random.key(9)}
    np.testing.assert_allclose(pallas.apply(params, x, train=True, rngs=rngs), xla.apply(params, x, train=True, rngs=rngs), rtol=1e-5, atol=1e-6)


def test_training_steps_with_fewer_bits_are_the_same_through_pallas_with_one_d_pass():
    config = Config(batch_size=24, g_features=(40, 24), d_features=(24, 20), latent_dim=8, one_d_pass=True, dropout_bits=8)
    x_BxD = jax.random.uniform(jax.random.key(3), (24, 100), minval=-1, maxval=1)
    states = {}
    for dense in ("xla", "pallas"):
        state = create_train_state(make_gan(config, data_dim=100, dense=dense), jax.random.key(0))
        for _ in range(3):
            state, metrics = train_step(state, x_BxD)
        assert np.isfinite(float(metrics["d_loss"]))
        states[dense] = state
    for got, want in zip(
        jax.tree.leaves((states["pallas"].g_params, states["pallas"].d_params)), jax.tree.leaves((states["xla"].g_params, states["xla"].d_params))
    ):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_a_step_with_fewer_bits_reads_fewer_bytes_and_trains():
    x = jax.random.uniform(jax.random.key(4), (64, 784), minval=-1.0, maxval=1.0)
    costs, losses = {}, {}
    for bits in (32, 16, 8):
        gan = make_gan(Config(batch_size=64, g_features=(32,), d_features=(256, 128), latent_dim=8, dropout_bits=bits))
        state = create_train_state(gan, jax.random.key(0))
        compiled = train_step.lower(state, x).compile()
        cost = compiled.cost_analysis()
        costs[bits] = (cost[0] if isinstance(cost, list) else cost)["bytes accessed"]
        _, metrics = compiled(state, x)
        losses[bits] = float(metrics["d_loss"])
    # XLA's count: the generator writes half, then a quarter of the random words.
    assert costs[8] < costs[16] < costs[32]
    assert all(np.isfinite(v) for v in losses.values()) and len(set(losses.values())) == 3  # other masks, other losses


@pytest.mark.parametrize("changes", [dict(arch="dcgan"), dict(dropout=0.0)], ids=["dcgan", "no dropout"])
def test_a_d_without_dropout_refuses_fewer_bits_in_one_sentence(changes):
    with pytest.raises(ConfigError, match=r"^--dropout-bits 16 draws D's dropout masks and this D has no dropout .*; leave it at 32\.$"):
        Config(dropout_bits=16, **changes).validate()
    Config(dropout_bits=32, **changes).validate()


@pytest.mark.parametrize("rate, bits, rounded", [(0.999, 8, 0), (0.001, 8, 1), (0.999999, 16, 0)])
def test_a_rate_that_rounds_to_keeping_all_or_nothing_is_refused_in_one_sentence(rate, bits, rounded):
    with pytest.raises(
        ConfigError,
        match=rf"^--dropout {rate} with --dropout-bits {bits} rounds to a keep probability of {rounded}; "
        r"use more bits or a rate further from 0 and 1\.$",
    ):
        Config(dropout=rate, dropout_bits=bits).validate()
    Config(dropout=rate, dropout_bits=32).validate()


def test_a_custom_gan_s_description_is_the_one_saved_before_the_dense_and_bits_fields():
    # config.json's "model" of custom runs saved before --dense and --dropout-bits: resume compares it.
    before = "Generator(\n    # attributes\n    features = (256, 512, 1024)\n    out_dim = 784\n    dtype = None\n    precision = None\n    num_classes = 0\n)"
    gan = GAN(generator=Generator(), discriminator=Discriminator())
    described, earlier = gan.describe(), gan.earlier_description()
    assert described.startswith(f"generator={before}; discriminator=Discriminator(") and "dense" not in described and "dropout_bits" not in described
    assert earlier.startswith(f"G={before}; D=Discriminator(") and "dense" not in earlier and "dropout_bits" not in earlier
    assert "dropout_bits = 8" in GAN(generator=Generator(), discriminator=Discriminator(dropout_bits=8)).describe()


def test_flax_dropout_is_still_what_the_article_s_d_runs():
    d = make_gan(Config()).discriminator
    assert d.dropout_bits == 32
    modules = []
    x = jnp.zeros((2, 784))

    def record(next_fun, args, kwargs, context):
        modules.append(type(context.module))
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(record):
        d.init({"params": jax.random.key(0), "dropout": jax.random.key(1)}, x, train=True)
    assert nn.Dropout in modules and BitsDropout not in modules
