import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from jaxgan import models
from torch_baseline import model as torch_model

G_PARAMS, D_PARAMS = 1_493_520, 233_985


@pytest.fixture(scope="module")
def jax_params():
    g = models.Generator().init(jax.random.key(0), jnp.zeros((1, 128)))["params"]
    d = models.Discriminator().init(jax.random.key(1), jnp.zeros((1, 784)), train=False)["params"]
    return g, d


def test_parameter_counts_are_the_articles_in_both_frameworks(jax_params):
    g, d = jax_params
    assert models.param_count(g) == G_PARAMS and models.param_count(d) == D_PARAMS
    assert torch_model.param_count(torch_model.Generator()) == G_PARAMS
    assert torch_model.param_count(torch_model.Discriminator()) == D_PARAMS


def test_output_shapes_and_ranges_in_both_frameworks(jax_params):
    g, d = jax_params
    z = jax.random.normal(jax.random.key(2), (5, 128)) * 10  # large inputs saturate tanh
    x = models.Generator().apply({"params": g}, z)
    assert x.shape == (5, 784) and x.dtype == jnp.float32
    assert float(jnp.abs(x).max()) <= 1.0
    logits = models.Discriminator().apply({"params": d}, x, train=True, rngs={"dropout": jax.random.key(3)})
    assert logits.shape == (5,)
    tx = torch_model.Generator()(torch.randn(5, 128) * 10)
    assert tuple(tx.shape) == (5, 784) and tx.abs().max().item() <= 1.0
    td = torch_model.Discriminator()(tx)
    assert tuple(td.shape) == (5, 1) and 0.0 <= td.min().item() and td.max().item() <= 1.0


def test_init_is_torch_linears_uniform(jax_params):
    g, d = jax_params
    for params in (g, d):
        for layer in params.values():
            fan_in = layer["kernel"].shape[0]
            bound = 1 / np.sqrt(fan_in)
            for leaf in (layer["kernel"], layer["bias"]):
                assert float(jnp.abs(leaf).max()) <= bound
    # Uniform(-b, b) has standard deviation b/sqrt(3); Flax's default (lecun normal) has 1/sqrt(fan_in).
    kernel = np.asarray(g["hidden_2"]["kernel"])  # 512 x 1024
    assert kernel.std() == pytest.approx(1 / np.sqrt(512) / np.sqrt(3), rel=0.01)
    assert np.abs(kernel).max() == pytest.approx(1 / np.sqrt(512), rel=0.01)
    torch_kernel = torch_model.Generator().net[4].weight.detach().numpy()
    assert torch_kernel.std() == pytest.approx(kernel.std(), rel=0.01)


def test_discriminator_dropout_is_active_only_in_train_mode(jax_params):
    _, d = jax_params
    x = jnp.ones((4, 784))
    D = models.Discriminator()
    eval_a = D.apply({"params": d}, x, train=False)
    np.testing.assert_array_equal(eval_a, D.apply({"params": d}, x, train=False))
    a = D.apply({"params": d}, x, train=True, rngs={"dropout": jax.random.key(0)})
    b = D.apply({"params": d}, x, train=True, rngs={"dropout": jax.random.key(1)})
    assert not np.allclose(a, b)


def test_bfloat16_products_keep_float32_params_and_outputs():
    G = models.Generator(dtype=jnp.bfloat16)
    params = G.init(jax.random.key(0), jnp.zeros((1, 128)))["params"]
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(params))
    x16 = G.apply({"params": params}, jnp.ones((2, 128)))
    x32 = models.Generator().apply({"params": params}, jnp.ones((2, 128)))
    assert x16.dtype == jnp.float32
    np.testing.assert_allclose(x16, x32, atol=0.05)
    assert not np.array_equal(x16, x32)
