"""Flax NNX networks (`jaxgan.nnx`) train, resume, sample and evaluate as Linen ones do."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from gancore.config import Config
from jaxgan import models
from jaxgan.fit import fit, load_final_params
from jaxgan.gan import GAN
from jaxgan.nnx import from_nnx, to_nnx
from jaxgan.step import create_train_state, discriminate, generate, train_step


class TorchLinear(nnx.Module):
    """`models.TorchDense` in NNX: kernel [in, out] and bias drawn as torch.nn.Linear draws them."""

    def __init__(self, fan_in: int, features: int, *, rngs: nnx.Rngs):
        bound = fan_in**-0.5
        self.kernel = nnx.Param(jax.random.uniform(rngs.params(), (fan_in, features), minval=-bound, maxval=bound))
        self.bias = nnx.Param(jax.random.uniform(rngs.params(), (features,), minval=-bound, maxval=bound))

    def __call__(self, x_BxI):
        return x_BxI @ self.kernel + self.bias


class ArticleG(nnx.Module):
    """The article's G in NNX, its layers named as `models.Generator` names them."""

    def __init__(self, latent_dim: int = 128, widths=(256, 512, 1024), *, rngs: nnx.Rngs):
        self.widths = widths
        for i, (fan_in, width) in enumerate(zip((latent_dim, *widths), widths)):
            setattr(self, f"hidden_{i}", TorchLinear(fan_in, width, rngs=rngs))
        self.out = TorchLinear(widths[-1], 784, rngs=rngs)

    def __call__(self, z_BxZ):
        h = z_BxZ
        for i in range(len(self.widths)):
            h = nnx.leaky_relu(getattr(self, f"hidden_{i}")(h), 0.2)
        return jnp.tanh(self.out(h))


class ArticleD(nnx.Module):
    """The article's D in NNX (logits out), dropout 0.3 after each hidden layer."""

    def __init__(self, widths=(256, 128), *, rngs: nnx.Rngs):
        self.widths = widths
        for i, (fan_in, width) in enumerate(zip((784, *widths), widths)):
            setattr(self, f"hidden_{i}", TorchLinear(fan_in, width, rngs=rngs))
        self.out = TorchLinear(widths[-1], 1, rngs=rngs)
        self.dropout = nnx.Dropout(0.3, rngs=rngs)

    def __call__(self, x_BxD, *, train):
        h = x_BxD
        for i in range(len(self.widths)):
            h = self.dropout(nnx.leaky_relu(getattr(self, f"hidden_{i}")(h), 0.2), deterministic=not train)
        return self.out(h)[:, 0]


def test_the_article_mlp_in_nnx_given_the_linen_params_computes_what_jaxgan_models_does():
    linen = GAN(models.Generator(), models.Discriminator())
    ours = GAN(from_nnx(ArticleG), from_nnx(ArticleD))
    linen_state = create_train_state(linen, jax.random.key(0))
    state = create_train_state(ours, jax.random.key(0), linen_state.g_params, linen_state.d_params)
    z_BxZ = jax.random.normal(jax.random.key(1), (16, 128))
    x_BxD = generate(linen, linen_state.g_params, z_BxZ)
    assert float(jnp.std(x_BxD)) > 0.01  # not a constant that any two nets would agree on
    np.testing.assert_allclose(generate(ours, state.g_params, z_BxZ), x_BxD, rtol=1e-6, atol=1e-6)
    logits_B = discriminate(linen, linen_state.d_params, x_BxD, None)
    np.testing.assert_allclose(discriminate(ours, state.d_params, x_BxD, None), logits_B, rtol=1e-5, atol=1e-6)
    # The same as plain NNX modules (nnx.split/merge), outside any GAN.
    np.testing.assert_allclose(to_nnx(ours.generator, state.g_params)(z_BxZ), x_BxD, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(to_nnx(ours.discriminator, state.d_params)(x_BxD, train=False), logits_B, rtol=1e-5, atol=1e-6)
    # Its own drawing follows torch's bounds too: every kernel within +-1/sqrt(fan_in).
    drawn = create_train_state(ours, jax.random.key(2))
    for name, layer in drawn.d_params.items():
        bound = layer["kernel"].shape[0] ** -0.5
        assert 0.9 * bound < float(jnp.abs(layer["kernel"]).max()) <= bound, name


def test_nnx_dropout_takes_the_steps_dropout_key_in_training_and_is_off_otherwise():
    gan = GAN(from_nnx(ArticleG, latent_dim=16), from_nnx(ArticleD), latent_dim=16)
    state = create_train_state(gan, jax.random.key(0))
    x_BxD = generate(gan, state.g_params, jax.random.normal(jax.random.key(1), (64, 16)))
    off = discriminate(gan, state.d_params, x_BxD, None)
    on = discriminate(gan, state.d_params, x_BxD, jax.random.key(3))
    np.testing.assert_array_equal(discriminate(gan, state.d_params, x_BxD, jax.random.key(3)), on)
    assert np.all(np.asarray(on) != np.asarray(discriminate(gan, state.d_params, x_BxD, jax.random.key(4))))
    assert np.abs(np.asarray(on - off)).mean() > 1e-3
    # Sampling never draws dropout: G has none and generate passes no key.
    np.testing.assert_array_equal(generate(gan, state.g_params, jnp.ones((2, 16))), generate(gan, state.g_params, jnp.ones((2, 16))))
    # The jitted step trains it: both params move, the losses are the BCE of logits near 0.
    initial = jax.tree.map(np.asarray, (state.g_params, state.d_params))  # train_step donates the state
    new, metrics = train_step(state, x_BxD)
    assert 1.2 < float(metrics["d_loss"]) < 1.6 and 0.5 < float(metrics["g_loss"]) < 0.9
    for before, after in zip(initial, (new.g_params, new.d_params)):
        assert all(float(jnp.abs(a - b).max()) > 0 for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after)))


def test_an_nnx_gan_trains_through_fit_evaluates_and_resumes_bit_for_bit(tmp_path):
    gan = GAN(from_nnx(ArticleG, latent_dim=16, widths=(64,)), from_nnx(ArticleD, widths=(64,)), latent_dim=16)
    shrunk = dict(batch_size=50, subset=200, checkpoint_every=1, sample_every=2, eval_every=2, eval_n=100)
    whole = fit(Config(epochs=4, workdir=str(tmp_path / "whole"), **shrunk), gan=gan)
    fit(Config(epochs=2, workdir=str(tmp_path / "cut"), **shrunk), gan=gan)
    cut = fit(Config(epochs=4, workdir=str(tmp_path / "cut"), resume=True, **shrunk), gan=gan)
    records = [[json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()] for run in (whole, cut)]
    assert [r["step"] for r in records[0]] == [4, 8, 12, 16]
    assert [r["d_loss"] for r in records[0]] == [r["d_loss"] for r in records[1]]
    # --eval-every scored the NNX generator's samples: a real FID of an untrained GAN, not a placeholder.
    assert [("fid" in r) for r in records[0]] == [False, True, False, True]
    assert 100 < records[0][-1]["fid"] < 2000 and records[0][-1]["fid"] == records[1][-1]["fid"]
    assert (whole / "samples" / "epoch_0004.png").exists()
    params = [load_final_params(run) for run in (whole, cut)]
    for a, b in zip(jax.tree.leaves(params[0]), jax.tree.leaves(params[1]), strict=True):
        np.testing.assert_array_equal(a, b)
    assert params[0]["d_params"]["hidden_0"]["kernel"].shape == (784, 64)
    assert json.loads((whole / "config.json").read_text())["model"].startswith("generator=FromNNX(")


class WithBatchNorm(nnx.Module):
    def __init__(self, *, rngs):
        self.norm = nnx.BatchNorm(784, rngs=rngs)

    def __call__(self, x_BxD, *, train):
        return self.norm(x_BxD, use_running_average=not train)[:, 0]


def test_nnx_modules_jaxgan_cannot_train_are_refused_with_what_to_do():
    with pytest.raises(ValueError, match=r"WithBatchNorm keeps BatchStat besides its nnx.Param and Rngs; jaxgan trains and saves params only"):
        create_train_state(GAN(from_nnx(ArticleG), from_nnx(WithBatchNorm)), jax.random.key(0))
    with pytest.raises(TypeError, match="takes an nnx.Module class"):
        from_nnx(ArticleG(rngs=nnx.Rngs(0)))
