"""Issue 15's regularisers: separate learning rates for G and D, the R1 penalty on real images and
spectral normalisation of D's layers, each off by default (the article's step)."""

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import load_script
from jax.test_util import check_grads

from gancore import data
from gancore.config import JAX, Config
from gancore.flags import build_parser, from_flags
from jaxgan import losses
from jaxgan.build import gan_of_run, make_gan
from jaxgan.fit import fit, load_final_params
from jaxgan.step import create_train_state, d_loss_fn, discriminate, generate_jit, init_train_state, train_step

SMALL = Config(batch_size=32, g_features=(64, 128), d_features=(64, 32), latent_dim=16)


def small(**changes) -> Config:
    return Config(**{**SMALL.to_dict(), **changes})


# One hidden layer a network, for the tests that compile whole R1 steps (a gradient of D's input gradient):
# what they check does not need depth, and XLA compiles each copy of D's double backward pass for seconds.
SHALLOW = dict(g_features=(32,), d_features=(32,))


def first_adam_update(tx, params):
    """Adam's first update on gradients of ones: -lr on every entry (m / sqrt(v) = 1, up to eps).

    On the first layer's kernel alone: Adam updates each entry on its own, and op by op each other shape
    is another round of programs to compile."""
    params = jax.tree.leaves(params)[:1]
    updates, _ = tx.update(jax.tree.map(jnp.ones_like, params), tx.init(params), params)
    return float(jax.tree.leaves(updates)[0].ravel()[0])


@pytest.mark.parametrize(
    "argv, g_lr, d_lr",
    [([], 2e-4, 2e-4), (["--lr", "1e-3"], 1e-3, 1e-3), (["--lr", "1e-3", "--g-lr", "1e-4"], 1e-4, 1e-3), (["--g-lr", "1e-4", "--d-lr", "4e-4"], 1e-4, 4e-4)],
)
def test_lr_sets_both_networks_and_g_lr_d_lr_override_it(argv, g_lr, d_lr):
    config, _ = from_flags(JAX, build_parser(JAX, "test", "runs/t").parse_args([*argv, "--batch-size", "32"]))
    state = init_train_state(make_gan(config), 0)
    assert first_adam_update(state.gan.g_tx, state.g_params) == pytest.approx(-g_lr, rel=1e-4)
    assert first_adam_update(state.gan.d_tx, state.d_params) == pytest.approx(-d_lr, rel=1e-4)


def test_unset_g_lr_and_d_lr_leave_the_articles_gan_as_it_was():
    gan = make_gan(Config())
    assert gan.g_lr is None and gan.d_lr is None and "lr" not in gan.describe() and "adam(0.0002, 0.9, 0.999)" in gan.earlier_description()
    assert make_gan(Config(g_lr=1e-4)).describe() == gan.describe() + "; g_lr=0.0001"
    assert make_gan(Config(g_lr=1e-4)) != gan


@pytest.fixture(scope="module")
def mnist():
    return data.load("train", subset=256)


def test_r1_of_a_linear_d_is_half_its_weights_squared_norm():
    # D(x) = x.w + b: the input gradient is w for every sample, so R1 = ||w||^2 / 2 = (9 + 16 + 144) / 2.
    w_D, x_BxD = jnp.array([3.0, 4.0, 12.0]), jax.random.normal(jax.random.key(0), (5, 3))
    assert float(losses.r1_penalty(lambda x: x @ w_D + 1.0, x_BxD)) == pytest.approx(84.5)
    # D(x) = sum(x^2): the gradient is 2x, so R1 = mean_i 2 ||x_i||^2, a batch mean of each sample's own.
    expected = float(np.mean(2 * np.sum(np.asarray(x_BxD) ** 2, axis=1)))
    assert float(losses.r1_penalty(lambda x: jnp.sum(x**2, axis=1), x_BxD)) == pytest.approx(expected, rel=1e-6)


def test_r1_gradient_in_ds_weights_matches_finite_differences():
    with jax.enable_x64(True):
        x_BxD = jax.random.normal(jax.random.key(1), (4, 3), jnp.float64)
        w_DxH = jax.random.normal(jax.random.key(2), (3, 5), jnp.float64)
        v_H = jax.random.normal(jax.random.key(3), (5,), jnp.float64)
        r1 = lambda w, v: losses.r1_penalty(lambda x: jnp.tanh(x @ w) @ v, x_BxD)
        check_grads(r1, (w_DxH, v_H), order=2, modes=["rev"])
        assert float(jnp.abs(jax.grad(r1)(w_DxH, v_H)).max()) > 1e-3


def test_r1_is_added_to_d_loss_with_its_weight_through_the_real_pass_dropout(mnist):
    plain, penalised = make_gan(small()), make_gan(small(r1_weight=10.0))
    state = init_train_state(plain, 0)
    x_real = data.to_unit_range(jnp.asarray(mnist.flat_NxD[:32]))
    x_fake = generate_jit(plain, state.g_params, jax.random.normal(jax.random.key(1), (32, 16)))
    dropout_key = jax.random.key(2)

    @jax.jit  # one program for the three, not each operation its own
    def base_total_and_penalty(d_params):
        base, _ = d_loss_fn(d_params, plain, x_real, x_fake, dropout_key)
        total, _ = d_loss_fn(d_params, penalised, x_real, x_fake, dropout_key)
        real_key = jax.random.split(dropout_key)[0]
        return base, total, losses.r1_penalty(lambda x: discriminate(plain, d_params, x, real_key), x_real)

    base, total, penalty = base_total_and_penalty(state.d_params)
    assert float(penalty) > 1e-4
    assert float(total) == pytest.approx(float(base) + 10.0 * float(penalty), rel=1e-5)


def epoch_losses(workdir) -> list[tuple[float, float]]:
    lines = (workdir / "metrics.jsonl").read_text().splitlines()
    return [(json.loads(line)["d_loss"], json.loads(line)["g_loss"]) for line in lines]


def test_a_run_with_r1_trains_through_fit(tmp_path):
    run = dict(subset=256, epochs=3, sample_every=3, checkpoint_every=3, **SHALLOW)
    plain = epoch_losses(fit(small(**run, workdir=str(tmp_path / "plain"))))
    with_r1 = epoch_losses(fit(small(**run, r1_weight=10.0, workdir=str(tmp_path / "r1"))))
    assert len(with_r1) == 3 and np.all(np.isfinite(with_r1))
    # Same seed, same batches: only the penalty tells the runs apart, and it only adds to D's loss at first.
    assert with_r1[0][0] > plain[0][0] and with_r1 != plain
    assert json.loads((tmp_path / "r1" / "config.json").read_text())["r1_weight"] == 10.0


def sigma_ratios(state) -> dict[str, float]:
    """Each normalised kernel's largest singular value by SVD over the sigma spectral norm divides it by."""
    ratios = {}
    for name, sigma in state.d_stats["SpectralNorm_0"].items():
        if name.endswith("/sigma"):
            kernel = state.d_params
            for key in name.split("/")[:-1]:  # discriminator/<layer>/kernel/sigma
                kernel = kernel[key]
            matrix = np.asarray(kernel).reshape(-1, kernel.shape[-1])
            ratios[name] = float(np.linalg.svd(matrix, compute_uv=False)[0]) / float(sigma)
    return ratios


@pytest.mark.parametrize("arch", ["mlp", "dcgan"])
def test_spectral_norm_divides_each_kernel_of_d_by_its_largest_singular_value(mnist, arch):
    # DCGAN on 8x8 crops of the digits: the same two convolutions and output layer as at 28x28, a smaller program.
    shape = (8, 8) if arch == "dcgan" else (28, 28)
    gan = make_gan(small(spectral_norm=True, arch=arch, dcgan_features=8), data_dim=int(np.prod(shape)), image_shape=shape)
    state = create_train_state(gan, jax.random.key(0))
    assert len(sigma_ratios(state)) == 3  # two hidden layers and the output, each normalised
    assert any(abs(r - 1) > 0.1 for r in sigma_ratios(state).values())  # sigma starts at 1, not at the kernel's
    top, left = (28 - shape[0]) // 2, (28 - shape[1]) // 2  # the digits' middle (all of them for the MLP)
    images_NxHxW = np.asarray(mnist.flat_NxD[:32]).reshape(32, 28, 28)[:, top : top + shape[0], left : left + shape[1]]
    x_real = data.to_unit_range(jnp.asarray(images_NxHxW.reshape(32, -1)))
    g_before = state.g_params
    for _ in range(30):  # one power iteration per D update
        state, metrics = train_step(state, x_real)
    assert all(r == pytest.approx(1.0, abs=0.1) for r in sigma_ratios(state).values()), sigma_ratios(state)
    assert np.isfinite(float(metrics["d_loss"])) and not np.array_equal(jax.tree.leaves(g_before)[0], jax.tree.leaves(state.g_params)[0])


def test_the_g_step_and_evaluation_leave_ds_stats_as_they_are(mnist):
    state = create_train_state(make_gan(small(spectral_norm=True)), jax.random.key(0))
    x_real = data.to_unit_range(jnp.asarray(mnist.flat_NxD[:32]))
    logits, advanced = discriminate(state.gan, state.d_params, x_real, None, None, state.d_stats, update_stats=True)
    assert not np.array_equal(*(np.asarray(s["SpectralNorm_0"]["discriminator/hidden_0/kernel/u"]) for s in (state.d_stats, advanced)))
    # Read without update_stats, D gives the same logits from the same stats and changes nothing.
    np.testing.assert_array_equal(logits, discriminate(state.gan, state.d_params, x_real, None, None, state.d_stats))


def test_resume_with_spectral_norm_continues_bit_for_bit(tmp_path):
    train = load_script("train_jax").main
    args = ["--subset", "200", "--batch-size", "50", "--checkpoint-every", "1", "--spectral-norm", "--r1-weight", "1", "--g-lr", "1e-4", "--d-lr", "4e-4"]
    assert train([*args, "--epochs", "3", "--workdir", str(tmp_path / "whole")]) == 0
    assert train([*args, "--epochs", "2", "--workdir", str(tmp_path / "run")]) == 0
    assert train([*args, "--epochs", "3", "--workdir", str(tmp_path / "run"), "--resume"]) == 0
    assert epoch_losses(tmp_path / "run") == epoch_losses(tmp_path / "whole") and len(epoch_losses(tmp_path / "run")) == 3
    # Epoch 3 of the resumed run read D's stats from the checkpoint: its losses and weights match only if they were saved.
    final = [jax.tree.leaves(load_final_params(tmp_path / name)) for name in ("run", "whole")]
    for a, b in zip(*final, strict=True):
        np.testing.assert_array_equal(a, b)
    # The final params carry D's stats, and a state built from them (fit's init_params) starts from them.
    saved = load_final_params(tmp_path / "whole")
    gan = gan_of_run(json.loads((tmp_path / "whole" / "config.json").read_text()))
    state = create_train_state(gan, jax.random.key(5), **saved)
    assert jax.tree.leaves(saved["d_stats"]) and jax.tree.structure(saved["d_stats"]) == jax.tree.structure(state.d_stats)
    for a, b in zip(jax.tree.leaves(saved["d_stats"]), jax.tree.leaves(state.d_stats), strict=True):
        np.testing.assert_array_equal(a, b)


def test_lazy_r1_adds_k_times_the_penalty_on_every_kth_step_and_nothing_between(mnist):
    plain, lazy, every = make_gan(small()), make_gan(small(r1_weight=10.0, r1_every=4)), make_gan(small(r1_weight=40.0))
    state = init_train_state(plain, 0)
    x_real = data.to_unit_range(jnp.asarray(mnist.flat_NxD[:32]))
    x_fake = generate_jit(plain, state.g_params, jax.random.normal(jax.random.key(1), (32, 16)))
    key = jax.random.key(2)

    @functools.partial(jax.jit, static_argnums=0)
    def loss_and_grads(gan_index, step):  # the step traced, as in train_step: lax.cond picks the branch at run time
        gan = (plain, lazy, every)[gan_index]
        return jax.value_and_grad(lambda p: d_loss_fn(p, gan, x_real, x_fake, key, step=step)[0])(state.d_params)

    base, base_grads = loss_and_grads(0, 0)
    heavy, heavy_grads = loss_and_grads(2, 0)
    assert float(heavy) > float(base) + 1e-3
    for step in (0, 4, 8, 1, 2, 7):
        loss, grads = loss_and_grads(1, step)
        want, want_grads = (heavy, heavy_grads) if step % 4 == 0 else (base, base_grads)
        assert float(loss) == pytest.approx(float(want), rel=1e-6), step
        for g, w in zip(jax.tree.leaves(grads), jax.tree.leaves(want_grads)):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="applies R1 every 4 steps"):
        d_loss_fn(state.d_params, lazy, x_real, x_fake, key)
    assert lazy.describe() == plain.describe() + "; r1_weight=10.0; r1_every=4"
    # In the words of runs saved before (custom runs resume): without R1, r1_every changes nothing.
    assert "every" not in make_gan(small(r1_weight=10.0)).earlier_description()
    assert make_gan(small(r1_every=4)).earlier_description() == plain.earlier_description()


def test_a_lazy_r1_step_is_the_heavy_step_every_kth_step_and_the_plain_one_between(mnist):
    """Through train_step, with two D updates a step: the step counter picks the branch, and XLA keeps a
    conditional (not a select that would compute the penalty every step)."""
    two = dict(d_steps=2, subset=64, **SHALLOW)
    plain, lazy, heavy = (make_gan(small(**two, **c)) for c in ({}, {"r1_weight": 1.0, "r1_every": 3}, {"r1_weight": 3.0}))
    x_KxBxD = data.to_unit_range(jnp.asarray(mnist.flat_NxD[:64])).reshape(2, 32, -1)
    state = create_train_state(lazy, jax.random.key(0))
    lazy_step = train_step.lower(state, x_KxBxD).compile()  # the program the lazy steps below run: built once
    assert "conditional" in lazy_step.as_text()
    for step, want in ((0, heavy), (1, plain), (3, heavy)):
        at = state.replace(step=jnp.asarray(step, jnp.int32))
        copy = lambda s: jax.device_put(s, may_alias=False)  # train_step donates: a fresh copy a call (no program)
        got = lazy_step(copy(at), x_KxBxD)[0].d_params
        other = plain if want is heavy else heavy
        expected = train_step(copy(at.replace(gan=want)), x_KxBxD)[0].d_params
        wrong = train_step(copy(at.replace(gan=other)), x_KxBxD)[0].d_params
        for g, e in zip(jax.tree.leaves(got), jax.tree.leaves(expected)):
            np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-7)
        assert max(float(jnp.abs(g - w).max()) for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(wrong))) > 1e-5, step


def test_lazy_r1_takes_a_discriminator_with_bfloat16_logits():
    import flax.linen as nn

    from jaxgan.gan import GAN

    class BF16Critic(nn.Module):  # a custom D whose logits stay bfloat16 (jaxgan's own cast theirs to float32)
        @nn.compact
        def __call__(self, x_BxD, *, train):
            return nn.Dense(1, dtype=jnp.bfloat16)(x_BxD)[:, 0]

    gan = GAN(make_gan(small()).generator, BF16Critic(), latent_dim=16, r1_weight=1.0, r1_every=2)
    state = create_train_state(gan, jax.random.key(0))
    x_BxD = jax.random.uniform(jax.random.key(1), (8, 784), minval=-1, maxval=1)
    losses_by_step = [float(d_loss_fn(state.d_params, gan, x_BxD, -x_BxD, None, step=jnp.asarray(s))[0]) for s in (0, 1)]
    assert np.all(np.isfinite(losses_by_step)) and losses_by_step[0] > losses_by_step[1]
