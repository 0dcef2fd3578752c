import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import linen as nn

from gancore import data
from jaxgan import models

Z = 128


def dc_param_counts(features: int, image_shape=(28, 28), latent_dim: int = Z, num_classes: int = 0) -> tuple[int, int]:
    """(G, D) parameter counts by hand: 4x4 kernels, (H/4, W/4, 2F) after G's Dense and before D's."""
    H, W, C = (*image_shape, 1)[:3]
    F, K, cells = features, num_classes, (H // 4) * (W // 4)
    g = (latent_dim + K + 1) * cells * 2 * F + (16 * 2 * F * F + F) + (16 * F * C + C)
    d = (16 * (C + K) * F + F) + (16 * F * 2 * F + 2 * F) + (cells * 2 * F + 1)
    return g, d


@functools.cache
def nets(image_shape=(28, 28), features: int = 32, num_classes: int = 0):
    """(G, D, G's params, D's params), built once per configuration, each init one compiled program."""
    G, D = models.DCGenerator(image_shape, features, num_classes), models.DCDiscriminator(image_shape, features, num_classes)
    labels_B = jnp.zeros((1,), jnp.int32) if num_classes else None
    g = jax.jit(G.init)(jax.random.key(0), jnp.zeros((1, Z)), labels_B)["params"]
    d = jax.jit(functools.partial(D.init, train=False))(jax.random.key(1), jnp.zeros((1, int(np.prod(image_shape)))), labels_B)["params"]
    return G, D, g, d


@functools.partial(jax.jit, static_argnums=0, static_argnames="train")
def run(net, params, *args, train=None, rngs=None):
    """`net.apply` as one compiled program: op by op, each layer's operations compile one by one."""
    return net.apply({"params": params}, *args, rngs=rngs, **({} if train is None else {"train": train}))


def test_default_widths_have_the_hand_computed_parameter_counts():
    _, _, g, d = nets()
    assert (models.param_count(g), models.param_count(d)) == dc_param_counts(32) == (437_857, 36_513)


@pytest.mark.parametrize("image_shape, features", [((28, 28), 32), ((32, 32, 3), 8)])
def test_shapes_dtypes_and_tanh_range(image_shape, features):
    G, D, g, d = nets(image_shape, features)
    assert (models.param_count(g), models.param_count(d)) == dc_param_counts(features, image_shape)
    z_BxZ = jax.random.normal(jax.random.key(2), (5, Z)) * 10  # large inputs saturate tanh
    x_BxD = run(G, g, z_BxZ)
    assert x_BxD.shape == (5, int(np.prod(image_shape))) and x_BxD.dtype == jnp.float32
    assert 0.5 < float(jnp.abs(x_BxD).max()) <= 1.0
    logits_B = run(D, d, x_BxD, train=False)
    assert logits_B.shape == (5,) and logits_B.dtype == jnp.float32


def test_phase_decomposition_equals_flax_conv_transpose():
    x_BxHxWxI = jax.random.normal(jax.random.key(0), (2, 7, 5, 6))
    params = models.ConvTranspose2x(4).init(jax.random.key(1), x_BxHxWxI)
    want = nn.ConvTranspose(4, (4, 4), (2, 2), "SAME").apply(params, x_BxHxWxI)
    got = models.ConvTranspose2x(4).apply(params, x_BxHxWxI)
    assert got.shape == (2, 14, 10, 4)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_conv_kernels_are_the_draws_of_flax_default_init(monkeypatch):
    # Drawn as matrices for a faster compile, they must stay the values (and fan-in) of nn.Conv's own init...
    for key in (jax.random.key(5), jax.random.key(5, impl="rbg")):
        np.testing.assert_array_equal(models.conv_kernel_init()(key, (4, 4, 3, 2)), nn.initializers.lecun_normal()(key, (4, 4, 3, 2)))
    # ...and every convolution kernel of G and D is drawn by it.
    drawn, conv_kernel_init = [], models.conv_kernel_init
    monkeypatch.setattr(models, "conv_kernel_init", lambda: lambda key, shape, dtype: drawn.append(shape) or conv_kernel_init()(key, shape, dtype))
    G, D = models.DCGenerator((8, 8), 4, 3), models.DCDiscriminator((8, 8), 4, 3)
    labels_B = jnp.zeros((1,), jnp.int32)
    jax.eval_shape(lambda k: (G.init(k, jnp.zeros((1, Z)), labels_B), D.init(k, jnp.zeros((1, 64)), labels_B, train=False)), jax.random.key(0))
    assert sorted(drawn) == [(4, 4, 4, 1), (4, 4, 4, 4), (4, 4, 4, 8), (4, 4, 8, 4)]  # G's up_1, D's down_0, down_1, G's up_0


def test_labels_condition_both_networks_and_are_required():
    G, D, g, d = nets(features=8, num_classes=10)
    assert (models.param_count(g), models.param_count(d)) == dc_param_counts(8, num_classes=10)
    z_BxZ = jnp.broadcast_to(jax.random.normal(jax.random.key(2), (1, Z)), (2, Z))
    x_BxD = run(G, g, z_BxZ, jnp.array([3, 7]))
    assert float(jnp.abs(x_BxD[0] - x_BxD[1]).max()) > 1e-3
    logits_B = run(D, d, jnp.broadcast_to(x_BxD[:1], x_BxD.shape), jnp.array([3, 7]), train=False)
    assert float(jnp.abs(logits_B[0] - logits_B[1])) > 1e-4
    with pytest.raises(ValueError, match="labels_B must be given"):
        G.apply({"params": g}, z_BxZ)
    with pytest.raises(ValueError, match="labels_B must be given"):
        D.apply({"params": d}, x_BxD, train=False)


def test_discriminator_logits_are_per_sample():
    """The gradient penalty needs each critic value to depend on its own image only."""
    _, D, _, d = nets()
    x_BxD = jax.random.uniform(jax.random.key(0), (3, 784), minval=-1, maxval=1)
    logits_B = run(D, d, x_BxD, train=False)
    changed_B = run(D, d, x_BxD.at[1].set(1.0), train=False)
    assert logits_B[0] == changed_B[0] and logits_B[2] == changed_B[2] and logits_B[1] != changed_B[1]


def test_discriminator_dropout_is_active_only_in_train_mode():
    _, _, _, d = nets()
    D = models.DCDiscriminator(dropout=0.3)
    x_BxD = jnp.ones((4, 784))
    np.testing.assert_array_equal(run(D, d, x_BxD, train=False), run(D, d, x_BxD, train=False))
    a = run(D, d, x_BxD, train=True, rngs={"dropout": jax.random.key(1)})
    b = run(D, d, x_BxD, train=True, rngs={"dropout": jax.random.key(2)})
    assert not np.allclose(a, b)


def test_bfloat16_products_keep_float32_params_and_outputs():
    G16, D16 = models.DCGenerator(dtype=jnp.bfloat16), models.DCDiscriminator(dtype=jnp.bfloat16)
    g16 = jax.eval_shape(G16.init, jax.random.key(0), jnp.zeros((1, Z)))["params"]
    d16 = jax.eval_shape(functools.partial(D16.init, train=False), jax.random.key(1), jnp.zeros((1, 784)))["params"]
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves((g16, d16)))
    G, D, g, d = nets()
    z_BxZ = jax.random.normal(jax.random.key(2), (2, Z))
    x16_BxD, x32_BxD = run(G16, g, z_BxZ), run(G, g, z_BxZ)
    logits16_B, logits32_B = run(D16, d, x32_BxD, train=False), run(D, d, x32_BxD, train=False)
    assert x16_BxD.dtype == logits16_B.dtype == jnp.float32
    np.testing.assert_allclose(x16_BxD, x32_BxD, atol=0.05)
    np.testing.assert_allclose(logits16_B, logits32_B, atol=0.05)
    assert not np.array_equal(x16_BxD, x32_BxD)


@pytest.mark.parametrize("image_shape", [(28, 30), (30, 28, 3), (28,), (28, 28, 1, 1), (0, 28)])
def test_bad_image_shape_is_refused(image_shape):
    for net in (models.DCGenerator, models.DCDiscriminator):
        with pytest.raises(ValueError, match="image_shape must be"):
            net(image_shape)


def test_discriminator_learns_to_tell_mnist_from_untrained_samples():
    G, D, g, d = nets()
    real_NxD = jnp.asarray(data.to_unit_range(data.load("train", subset=512).flat_NxD))
    fake_NxD = run(G, g, jax.random.normal(jax.random.key(3), (512, Z)))
    tx = optax.adam(2e-4)

    def loss_fn(d, real_BxD, fake_BxD):
        logits_B = run(D, d, jnp.concatenate([real_BxD, fake_BxD]), train=False)
        targets_B = jnp.concatenate([jnp.ones(len(real_BxD)), jnp.zeros(len(fake_BxD))])
        return optax.sigmoid_binary_cross_entropy(logits_B, targets_B).mean()

    @jax.jit
    def step(d, opt_state, i):
        real_BxD, fake_BxD = (jax.lax.dynamic_slice_in_dim(x, i % 8 * 64, 64) for x in (real_NxD, fake_NxD))
        grads = jax.grad(loss_fn)(d, real_BxD, fake_BxD)
        updates, opt_state = tx.update(grads, opt_state)
        return optax.apply_updates(d, updates), opt_state

    def accuracy(d) -> float:
        real_B, fake_B = (run(D, d, x, train=False) for x in (real_NxD, fake_NxD))
        return float(jnp.concatenate([real_B > 0, fake_B < 0]).mean())

    # Untrained, D already gets ~0.9 right (fakes are greyer than MNIST), but its loss is ~0.6.
    assert loss_fn(d, real_NxD, fake_NxD) > 0.5
    opt_state = tx.init(d)
    for i in range(50):
        d, opt_state = step(d, opt_state, i)
    assert loss_fn(d, real_NxD, fake_NxD) < 0.1 and accuracy(d) > 0.99
