"""The research options: conditional GANs, other losses, a gradient penalty, several D
steps per G step, and a GAN of your own through the same jitted step and loop."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import load_script
from flax import linen as nn
from test_data import write_idx

from gancore import data
from gancore.config import Config, ConfigError
from jaxgan import epochs, evaluate, losses, parallel
from jaxgan.build import gan_of_run, make_gan
from jaxgan.fit import fit, load_final_params
from jaxgan.gan import GAN
from jaxgan.step import TrainState, d_loss_fn, discriminate, generate, init_train_state, train_step, update

SMALL = Config(batch_size=32, g_features=(64, 128), d_features=(64, 32), latent_dim=16)


def small(**changes) -> Config:
    return Config(**{**SMALL.to_dict(), **changes})


@pytest.fixture(scope="module")
def mnist():
    return data.load("train", subset=256)


def state_of(config: Config, seed: int = 0) -> TrainState:
    # Compiled: one program a GAN's networks (GANs that differ in their losses or steps share it), not dozens of operations.
    return init_train_state(make_gan(config), seed)


def test_conditional_networks_take_one_hot_labels_and_follow_them():
    state = state_of(small(conditional=True))
    # One-hot labels are appended to z and to x: 10 more inputs to each first layer.
    assert state.g_params["hidden_0"]["kernel"].shape == (16 + 10, 64)
    assert state.d_params["hidden_0"]["kernel"].shape == (784 + 10, 64)
    z = jax.random.normal(jax.random.key(1), (4, 16))
    as_zero = generate(state.gan, state.g_params, z, jnp.zeros(4, jnp.int32))
    as_one = generate(state.gan, state.g_params, z, jnp.ones(4, jnp.int32))
    assert float(jnp.abs(as_zero - as_one).max()) > 1e-3
    # Without labels, a conditional G draws the classes in turn.
    np.testing.assert_array_equal(generate(state.gan, state.g_params, z), generate(state.gan, state.g_params, z, jnp.arange(4)))
    with pytest.raises(ValueError, match="conditional"):
        epochs.run(state, jnp.zeros((64, 784), jnp.uint8), 32)


def test_conditional_epoch_gathers_the_labels_of_its_images(mnist):
    images, labels = jnp.asarray(mnist.flat_NxD), jnp.asarray(mnist.labels_N, jnp.int32)
    idx = np.asarray(epochs.shuffled_batches(state_of(small(conditional=True)), len(mnist), 32))
    x0 = data.to_unit_range(images[idx[0]])
    _, by_hand = train_step(state_of(small(conditional=True)), x0, labels[idx[0]])
    # The scanned epoch as fit runs it, on a mesh of one: one program with test_conditional_fit_draws_...
    mesh = parallel.data_mesh(32, 1)
    on_mesh = lambda tree: parallel.put_replicated(tree, mesh)
    _, scanned = epochs.compile(mesh, 32)(on_mesh(state_of(small(conditional=True))), on_mesh(images), on_mesh(labels))
    assert float(scanned["d_loss"][0]) == pytest.approx(float(by_hand["d_loss"]), rel=1e-5)
    _, mislabelled = train_step(state_of(small(conditional=True)), x0, (labels[idx[0]] + 1) % 10)
    assert float(mislabelled["d_loss"]) != pytest.approx(float(scanned["d_loss"][0]), rel=1e-5)


# Label smoothing (a bound loss) here too: test_equal_configs_share_one_compiled_step builds this GAN anew.
D_STEPS_3 = small(d_steps=3, label_smoothing=0.1)


def test_several_d_steps_each_on_its_own_batch(mnist):
    state = state_of(D_STEPS_3)
    idx = np.asarray(epochs.shuffled_batches(state, len(mnist), 32))
    assert idx.shape == (2, 3, 32) and len(np.unique(idx)) == 192  # 8 batches: 2 steps of 3, 2 batches left over
    new_state, metrics = epochs.run(state, jnp.asarray(mnist.flat_NxD), 32)
    assert int(new_state.step) == 2 and metrics["d_loss"].shape == (2,)
    # Adam counts its updates: D was updated three times a step, G once.
    assert int(new_state.d_opt_state[0].count) == 6 and int(new_state.g_opt_state[0].count) == 2
    with pytest.raises(ValueError, match="3 batches a step"):
        train_step(state_of(D_STEPS_3), jnp.zeros((32, 784)))
    # Every one of the K batches reaches D: blanking any one of them changes the step.
    x_KxBxD = data.to_unit_range(jnp.asarray(mnist.flat_NxD[idx[0]]))
    _, reference = train_step(state_of(D_STEPS_3), x_KxBxD)
    for k in range(3):
        _, blanked = train_step(state_of(D_STEPS_3), x_KxBxD.at[k].set(-1.0))
        assert abs(float(blanked["g_loss"]) - float(reference["g_loss"])) > 1e-4, k


def test_gradient_penalty_is_added_to_d_loss_with_its_weight(mnist):
    plain, penalised = make_gan(small(d_loss="wasserstein", g_loss="wasserstein")), make_gan(small(d_loss="wasserstein", g_loss="wasserstein", gp_weight=10.0))
    state = init_train_state(plain, 0)
    x_real = data.to_unit_range(jnp.asarray(mnist.flat_NxD[:32]))
    x_fake = generate(plain, state.g_params, jax.random.normal(jax.random.key(1), (32, 16)))
    gp_key = jax.random.key(2)
    base, _ = d_loss_fn(state.d_params, plain, x_real, x_fake, None)
    total, _ = d_loss_fn(state.d_params, penalised, x_real, x_fake, None, None, gp_key)
    critic = lambda x: discriminate(plain, state.d_params, x, None)
    penalty = losses.gradient_penalty(critic, x_real, x_fake, jax.random.split(gp_key)[0])
    assert float(penalty) > 0.01
    assert float(total) == pytest.approx(float(base) + 10.0 * float(penalty), rel=1e-5)


@pytest.mark.parametrize("d_loss, g_loss", [("least_squares", "least_squares"), ("hinge", "hinge"), ("wasserstein", "wasserstein")])
def test_each_loss_pair_trains_through_the_same_step(mnist, d_loss, g_loss):
    gan = make_gan(small(d_loss=d_loss, g_loss=g_loss))
    state = init_train_state(gan, 0)
    x = data.to_unit_range(jnp.asarray(mnist.flat_NxD[:32]))
    z_d, z_g = jax.random.normal(jax.random.key(5), (2, 32, 16))
    new_state, metrics = update(state, x, z_d, z_g, None, None)
    real_B = discriminate(gan, state.d_params, x, None)
    fake_B = discriminate(gan, state.d_params, generate(gan, state.g_params, z_d), None)
    assert float(metrics["d_loss"]) == pytest.approx(float(losses.D_LOSSES[d_loss](real_B, fake_B)), rel=1e-5)
    g_fake_B = discriminate(gan, new_state.d_params, generate(gan, state.g_params, z_g), None)
    assert float(metrics["g_loss"]) == pytest.approx(float(losses.G_LOSSES[g_loss](g_fake_B)), rel=1e-5)


def test_equal_configs_share_one_compiled_step(mnist):
    images = jnp.asarray(mnist.flat_NxD)
    # The program test_several_d_steps_each_on_its_own_batch compiled (not compiled twice a file), from another seed.
    config = dataclasses.replace(D_STEPS_3, seed=4)
    epochs.run(state_of(config), images, 32)
    before = epochs.run._cache_size()
    epochs.run(state_of(Config(**config.to_dict())), images, 32)
    assert epochs.run._cache_size() == before


def test_adam_betas_reach_the_optimiser():
    state = state_of(small(beta1=0.5, beta2=0.9))
    grads = jax.tree.map(jnp.ones_like, state.d_params)
    _, opt = state.gan.d_tx.update(grads, state.d_opt_state, state.d_params)
    # After one step Adam's first moment is (1 - beta1) * g, its second (1 - beta2) * g^2.
    assert float(jax.tree.leaves(opt[0].mu)[0].ravel()[0]) == pytest.approx(0.5)
    assert float(jax.tree.leaves(opt[0].nu)[0].ravel()[0]) == pytest.approx(0.1)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"label_smoothing": 0.1, "d_loss": "hinge"}, "--label-smoothing sets BCE targets"),
        ({"d_steps": 0}, "--d-steps must be at least 1"),
        ({"gp_weight": -1.0}, "--gp-weight must be 0 or more"),
        ({"beta1": 1.0}, r"--beta1 must be in \[0, 1\), got 1.0."),
        ({"beta2": -0.1}, r"--beta2 must be in \[0, 1\), got -0.1."),
        ({"d_loss": "kl"}, "--d-loss must be one of"),
        ({"arch": "resnet"}, "--arch must be one of"),
        ({"conditional": True, "digit": 3}, "--conditional learns every class; it cannot be combined with --digit"),
    ],
)
def test_bad_research_options_are_refused_in_one_sentence(changes, message):
    with pytest.raises(ConfigError, match=message):
        small(**changes).validate()


def test_fit_refuses_a_dcgan_of_images_it_cannot_halve_twice_before_writing(tmp_path):
    idx = tmp_path / "idx"
    idx.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 64), ("t10k", 16)):
        write_idx(idx / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (n, 30, 30)))
        write_idx(idx / f"{split}-labels-idx1-ubyte", np.arange(n) % 10)
    config = small(arch="dcgan", epochs=1, data_dir=str(idx), workdir=str(tmp_path / "run"))
    with pytest.raises(ConfigError, match="--arch dcgan needs image height and width divisible by 4, got 30x30"):
        fit(config)
    assert not (tmp_path / "run").exists()


def test_data_too_small_for_the_d_steps_or_the_arch_is_refused():
    with pytest.raises(ConfigError, match="--d-steps 5 needs 5 batches a step but an epoch has 2"):
        small(d_steps=5).check_data_size(64)
    with pytest.raises(ConfigError, match="divisible by 4"):
        small(arch="dcgan").check_data_size(64, (30, 30))


def test_torch_baseline_refuses_the_research_options(tmp_path, capsys):
    code = load_script("train_torch").main(["--conditional", "--d-loss", "hinge", "--epochs", "1", "--workdir", str(tmp_path / "t")])
    assert code == 2
    err = capsys.readouterr().err
    assert "torch_baseline is the article's GAN only; --conditional, --d-loss is a jaxgan option" in err
    assert not (tmp_path / "t").exists()
    assert load_script("compare").main(["--arch", "dcgan", "--epochs", "1", "--workdir", str(tmp_path / "c")]) == 2
    assert "compare.py runs the article's GAN in both frameworks; --arch is a jaxgan option" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_conditional_fit_draws_one_class_a_row_and_is_refused_on_resume_with_another_loss(tmp_path):
    config = small(conditional=True, epochs=1, subset=256, workdir=str(tmp_path / "run"), sample_every=1)
    workdir = fit(config)
    saved = json.loads((workdir / "config.json").read_text())
    assert saved["conditional"] is True and saved["num_classes"] == 10 and saved["model"] is None
    grid = __import__("matplotlib.image").image.imread(workdir / "samples" / "epoch_0001.png")
    # 10 rows and 10 columns of 28x28 images, 2 px apart, drawn at scale 2.
    assert grid.shape[:2] == (2 * (10 * 30 + 2), 2 * (10 * 30 + 2))
    # scripts/sample.py rebuilds the conditional G from config.json: 20 samples, one class a column.
    assert load_script("sample").main(["--workdir", str(workdir), "--n", "20", "--out", str(tmp_path / "g.png")]) == 0
    assert __import__("matplotlib.image").image.imread(tmp_path / "g.png").shape[:2] == (2 * (2 * 30 + 2), 2 * (10 * 30 + 2))
    with pytest.raises(ConfigError, match="d_loss='bce', this command has 'hinge'"):
        fit(Config(**{**config.to_dict(), "epochs": 2, "resume": True, "d_loss": "hinge"}))


def test_a_gan_of_your_own_trains_through_fit_with_the_same_outputs(tmp_path, mnist):
    class G(nn.Module):
        @nn.compact
        def __call__(self, z_BxZ):
            return jnp.tanh(nn.Dense(784)(nn.relu(nn.Dense(32)(z_BxZ))))

    class D(nn.Module):
        @nn.compact
        def __call__(self, x_BxD, *, train):
            return nn.Dense(1)(nn.leaky_relu(nn.Dense(32)(x_BxD), 0.2))[:, 0]

    def d_loss(real_logits_B, fake_logits_B):
        return losses.d_hinge(real_logits_B, fake_logits_B)

    gan = GAN(G(), D(), latent_dim=8, d_loss=d_loss, g_loss=losses.g_hinge, g_optimizer=optax.sgd(0.01))
    config = Config(epochs=2, batch_size=32, subset=256, workdir=str(tmp_path / "own"), sample_every=1, checkpoint_every=1)
    workdir = fit(config, gan=gan)
    for name in ("metrics.jsonl", "samples/epoch_0002.png", "losses.png", "checkpoints", "final_params"):
        assert (workdir / name).exists(), name
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [8, 16]
    params = load_final_params(workdir)
    assert params["g_params"]["Dense_1"]["kernel"].shape == (8, 32)  # built second, applied first
    assert json.loads((workdir / "config.json").read_text())["model"].startswith("generator=G(")
    samples = evaluate.generate_jax(gan, params["g_params"], 20, seed=0)
    assert samples.shape == (20, 784) and np.all(np.abs(samples) <= 1)
    # A run of a custom GAN cannot be rebuilt from its config.json: one sentence says what to do.
    assert load_script("evaluate").main(["--workdir", str(workdir), "--n", "20"]) == 2
    assert load_script("sample").main(["--workdir", str(workdir), "--out", str(tmp_path / "g.png")]) == 2
    with pytest.raises(ConfigError, match="custom GAN"):
        gan_of_run(json.loads((workdir / "config.json").read_text()))
    with pytest.raises(ConfigError, match="data_dim is 100"):
        fit(Config(**{**config.to_dict(), "overwrite": True}), gan=GAN(G(), D(), latent_dim=8, data_dim=100))
    # Resuming it as the article's GAN (or with another custom one) is refused, and nothing moves.
    with pytest.raises(ConfigError, match="trained with another GAN"):
        fit(Config(**{**config.to_dict(), "epochs": 3, "resume": True}))
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()) == ["1", "2"]
    assert not (workdir / "checkpoints.corrupt").exists()
    # A run saved with the words GAN.describe() had before (GAN.earlier_description) resumes with the same GAN,
    # keeps its words, and is refused with another.
    saved = json.loads((workdir / "config.json").read_text())
    (workdir / "config.json").write_text(json.dumps({**saved, "model": gan.earlier_description()}))
    with pytest.raises(ConfigError, match="trained with another GAN"):
        fit(Config(**{**config.to_dict(), "epochs": 3, "resume": True}), gan=dataclasses.replace(gan, gp_weight=1.0))
    fit(Config(**{**config.to_dict(), "epochs": 3, "resume": True}), gan=gan)
    assert json.loads((workdir / "config.json").read_text())["model"] == gan.earlier_description()
    assert [json.loads(line)["step"] for line in (workdir / "metrics.jsonl").read_text().splitlines()] == [8, 16, 24]


def test_a_gan_whose_networks_do_not_fit_the_calls_is_refused_before_anything_is_written(tmp_path):
    class D(nn.Module):  # no `train` keyword
        @nn.compact
        def __call__(self, x_BxD):
            return nn.Dense(1)(x_BxD)[:, 0]

    class G(nn.Module):
        @nn.compact
        def __call__(self, z_BxZ):
            return jnp.tanh(nn.Dense(784)(z_BxZ))

    config = Config(epochs=1, batch_size=32, subset=64, workdir=str(tmp_path / "bad"))
    with pytest.raises(ConfigError, match=r"G must take \(z_BxZ\) and D \(x_BxD, \*, train\)"):
        fit(config, gan=GAN(G(), D(), latent_dim=8))
    with pytest.raises(ConfigError, match="num_classes=3 but the labels go up to 9"):
        fit(config, gan=GAN(G(), D(), latent_dim=8, num_classes=3))
    assert not (tmp_path / "bad").exists()
    with pytest.raises(ValueError, match="GAN.d_steps must be at least 1"):
        GAN(G(), D(), d_steps=0)
    # A conditional GAN trained without labels would learn nothing of them: refused.
    with pytest.raises(ValueError, match="pass the labels of the batch"):
        train_step(state_of(small(conditional=True)), jnp.zeros((32, 784)))


def test_ablate_trains_each_variant_for_the_same_budget_and_tabulates_it(tmp_path, capsys):
    ablate = load_script("ablate")
    flags = ["--epochs", "1", "--batch-size", "64", "--subset", "256", "--eval-n", "100", "--workdir", str(tmp_path)]
    assert ablate.main(["--variants", "article,hinge", *flags]) == 0
    info = json.loads((tmp_path / "results.json").read_text())
    assert list(info["variants"]) == ["article", "hinge"]
    for r in info["variants"].values():
        assert r["steps"] == 4 and r["fid"] > 1.0 and 0.0 <= r["precision"] <= 1.0 and r["class_accuracy"] is None
    assert "| hinge | hinge losses | 4 |" in (tmp_path / "table.md").read_text()
    assert ablate.main(["--variants", "article,nope", *flags]) == 2
    assert "--variants: unknown nope; choose from article" in capsys.readouterr().err


def test_adam_beta1_defaults_to_each_architectures_own():
    assert Config().adam_beta1 == 0.9 and Config(arch="dcgan").adam_beta1 == 0.5
    assert Config(arch="dcgan", beta1=0.8).adam_beta1 == 0.8
    # torch_baseline runs the article's 0.9 however it is spelt, and refuses anything else.
    assert Config(beta1=0.9).non_article_options() == [] and Config(beta1=0.5).non_article_options() == ["--beta1"]


def test_conditional_dcgan_through_make_gan_trains_a_step(mnist):
    # 2 features, 8x8 crops of the digits and a compiled init: the same layers in smaller programs, fewer of them.
    config = Config(arch="dcgan", conditional=True, batch_size=16, dcgan_features=2, latent_dim=16)
    gan = make_gan(config, data_dim=64, image_shape=(8, 8))
    assert gan.beta1 == 0.5 and gan.num_classes == 10
    state = init_train_state(gan, 0)
    # D reads the image and 10 label planes; G's first layer reads z and the one-hot label.
    assert state.d_params["down_0"]["kernel"].shape == (4, 4, 1 + 10, 2)
    assert state.g_params["project"]["kernel"].shape == (16 + 10, 2 * 2 * 4)
    x = data.to_unit_range(jnp.asarray(mnist.flat_NxD[:16].reshape(16, 28, 28)[:, 10:18, 10:18].reshape(16, 64)))
    g_before = [np.asarray(a) for a in jax.tree.leaves(state.g_params)]  # train_step donates the state
    new_state, metrics = train_step(state, x, jnp.asarray(mnist.labels_N[:16], jnp.int32))
    assert 0.3 < float(metrics["d_real"]) < 0.7  # an untrained D reads about 1/2
    moved = [float(np.abs(a - b).max()) for a, b in zip(g_before, jax.tree.leaves(new_state.g_params))]
    assert min(moved) > 0
