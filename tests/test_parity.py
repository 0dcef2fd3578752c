"""jaxgan is the article's GAN: step for step with dropout off, and statistically with it on."""

import jax
import numpy as np
import pytest
import torch
from torch import nn

from gancore import data
from gancore.config import Config
from jaxgan import epochs
from jaxgan.build import make_gan
from jaxgan.step import create_train_state
from sidebyside import lockstep
from torch_baseline import convert
from torch_baseline import model as torch_model
from torch_baseline import train as torch_train

BATCH, STEPS, LR = 64, 50, 2e-4
# The per-step tolerance of the losses is sidebyside.lockstep's (scripts/compare.py checks with it too).
# |params_jax - params_torch| / |params_torch - params_initial| after STEPS steps:
# 1.6e-3 at worst over 3 seeds; the 10%-high learning rate below gives 0.17 (G) and 0.26 (D).
PARAM_REL_TOL = 5e-3
# Element-wise: a weight whose gradient is near zero takes an Adam step of up to
# lr whose sign roundoff can decide (worst over 3 seeds: 1.4 lr; weights move ~60 lr).
PARAM_ATOL = 3 * LR


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """At these batch sizes torch's intra-op threads, beside JAX's pool on 2 cores, cost 4x the CPU time they save."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def lockstep_inputs():
    """STEPS distinct MNIST batches and both noise draws of every step, as NumPy."""
    return lockstep.inputs(data.load("train", subset=STEPS * BATCH).flat_NxD, STEPS, BATCH, 128, seed=0)


@pytest.fixture(scope="module")
def initial():
    torch.manual_seed(0)
    return torch_model.Generator().state_dict(), torch_model.Discriminator().state_dict()


def run_torch(initial, inputs, lr=LR, no_tanh=False, **targets):
    """The article's step in torch_baseline, D in eval mode (dropout off); -> (losses_Sx2, g_params, d_params)."""
    G, D = torch_model.Generator(), torch_model.Discriminator()
    G.load_state_dict(initial[0]), D.load_state_dict(initial[1])
    if no_tanh:
        G.net[-1] = nn.Identity()
    return lockstep.replay_torch(G, D, lr, *inputs, **targets)


@pytest.fixture(scope="module")
def jax_run(initial, lockstep_inputs):
    """jaxgan's `update` on the same weights, batches and noise, dropout off."""
    g0, d0 = (convert.params_from_state_dict(sd) for sd in initial)
    return lockstep.replay_jax(make_gan(Config(batch_size=BATCH, lr=LR)), {"g_params": g0, "d_params": d0}, *lockstep_inputs)


def flat(params) -> np.ndarray:
    return np.concatenate([np.ravel(params[layer][leaf]) for layer in sorted(params) for leaf in ("kernel", "bias")])


def assert_losses_agree(jax_losses_Sx2, torch_losses_Sx2):
    assert jax_losses_Sx2.shape == torch_losses_Sx2.shape == (STEPS, 2)
    agreement = lockstep.loss_agreement(jax_losses_Sx2, torch_losses_Sx2)
    t = int(np.argmax(np.divide(agreement["rel_diff"], agreement["rtol"])))
    assert agreement["agree"], f"D, G loss at step {t + 1} differ by {agreement['rel_diff'][t]:.1e}, over {agreement['rtol'][t]:.1e}"


def assert_params_agree(jax_result, torch_result, initial):
    for name, j, tt, start in zip(("G", "D"), jax_result[1:], torch_result[1:], initial, strict=True):
        j, tt, start = flat(j), flat(tt), flat(convert.params_from_state_dict(start))
        np.testing.assert_allclose(j, tt, rtol=0, atol=PARAM_ATOL, err_msg=f"{name} params after {STEPS} steps")
        rel = np.linalg.norm(j - tt) / np.linalg.norm(tt - start)
        assert rel < PARAM_REL_TOL, f"{name}: jax and torch updates differ by {rel:.2e} of the distance moved"


def test_fifty_adam_steps_agree_step_for_step(initial, lockstep_inputs, jax_run):
    torch_run = run_torch(initial, lockstep_inputs)
    assert_losses_agree(jax_run[0], torch_run[0])
    assert_params_agree(jax_run, torch_run, initial)
    # The run trained: D loss left 2 log 2 and the weights moved far beyond PARAM_ATOL.
    assert abs(jax_run[0][-1, 0] - 2 * np.log(2)) > 0.1
    assert np.abs(flat(jax_run[1]) - flat(convert.params_from_state_dict(initial[0]))).max() > 30 * LR


@pytest.mark.parametrize(
    "mistake",
    [{"lr": 1.1 * LR}, {"no_tanh": True}, {"real_target": 0.0, "fake_target": 1.0}],
    ids=["lr_10_percent_high", "missing_tanh", "swapped_targets"],
)
def test_one_deliberate_mistake_fails_the_comparison(initial, lockstep_inputs, jax_run, mistake):
    wrong = run_torch(initial, lockstep_inputs, **mistake)
    with pytest.raises(AssertionError):
        assert_losses_agree(jax_run[0], wrong[0])
    with pytest.raises(AssertionError):
        assert_params_agree(jax_run, wrong, initial)


# Statistical parity: dropout on, each framework's own noise, dropout masks and
# batch order. Seed s starts both frameworks from the same weights (torch's draw
# for s, converted), so the seed band measures what the random numbers do, not
# the spread of initial weights. 20 steps an epoch at batch 50.
STAT_SUBSET, STAT_BATCH, STAT_EPOCHS, STAT_SEEDS = 1000, 50, 5, (0, 1, 2)
# The band is min..max over the seeds widened by 0.75 pooled seed std (per-epoch
# std over seeds, averaged over epochs): three seeds' min..max under-covers a
# fresh run. Measured: each framework's mean curve lay inside the other's plain
# min..max; a torch D with dropout off left jaxgan's mean 1.5 std outside its band.
SPREAD_MARGIN = 0.75


@pytest.fixture(scope="module")
def stat_setup():
    config = Config(batch_size=STAT_BATCH, subset=STAT_SUBSET)
    images_NxD = data.load("train", subset=STAT_SUBSET).flat_NxD
    initial = {}
    for seed in STAT_SEEDS:
        torch.manual_seed(seed)
        G, D, _, _ = torch_train.build(config, images_NxD.shape[1], "cpu")
        initial[seed] = (G.state_dict(), D.state_dict())
    return config, images_NxD, initial


@pytest.fixture(scope="module")
def jax_curves(stat_setup):
    """curves_SxEx2: per-epoch mean D and G loss of each seed, through jaxgan's scanned epoch."""
    config, images_NxD, initial = stat_setup
    gan, images_NxD = make_gan(config), jax.device_put(images_NxD)
    curves = []
    for seed in STAT_SEEDS:
        g0, d0 = (convert.params_from_state_dict(sd) for sd in initial[seed])
        state, curve = create_train_state(gan, jax.random.key(seed), g0, d0), []
        for _ in range(STAT_EPOCHS):
            state, m = epochs.run(state, images_NxD, config.batch_size)
            curve.append((float(m["d_loss"].mean()), float(m["g_loss"].mean())))
        curves.append(curve)
    return np.array(curves)


def torch_curves(stat_setup, dropout: bool = True) -> np.ndarray:
    """The same through torch_baseline's step and its `--loader device` batches, torch's random numbers."""
    config, images_NxD, initial = stat_setup
    images, curves = torch.from_numpy(images_NxD), []
    for seed in STAT_SEEDS:
        torch.manual_seed(seed)
        shuffle = torch.Generator().manual_seed(seed)
        G, D, g_optim, d_optim = torch_train.build(config, images.shape[1], "cpu")
        G.load_state_dict(initial[seed][0]), D.load_state_dict(initial[seed][1])
        D.train(dropout)
        curve = []
        for _ in range(STAT_EPOCHS):
            steps = []
            for x_BxD in torch_train.device_batches(images, config.batch_size, shuffle):
                z_d, z_g = torch.randn(len(x_BxD), config.latent_dim), torch.randn(len(x_BxD), config.latent_dim)
                m = torch_train.train_step(G, D, g_optim, d_optim, x_BxD, z_d, z_g)
                steps.append((m["d_loss"], m["g_loss"]))
            curve.append(np.mean(steps, axis=0))
        curves.append(curve)
    return np.array(curves)


def assert_mean_in_band(curves_SxEx2, band_curves_SxEx2, what: str):
    margin_2 = SPREAD_MARGIN * band_curves_SxEx2.std(axis=0, ddof=1).mean(axis=0)
    lo_Ex2, hi_Ex2 = band_curves_SxEx2.min(axis=0) - margin_2, band_curves_SxEx2.max(axis=0) + margin_2
    mean_Ex2 = curves_SxEx2.mean(axis=0)
    np.testing.assert_array_less(lo_Ex2, mean_Ex2, err_msg=f"{what}: mean (D, G) loss per epoch below the band")
    np.testing.assert_array_less(mean_Ex2, hi_Ex2, err_msg=f"{what}: mean (D, G) loss per epoch above the band")


def test_loss_curves_with_dropout_lie_in_each_others_seed_band(jax_curves, stat_setup):
    torch_run = torch_curves(stat_setup)
    assert_mean_in_band(torch_run, jax_curves, "torch in jaxgan's band")
    assert_mean_in_band(jax_curves, torch_run, "jaxgan in torch's band")
    # Not vacuous: the curves moved far more than the band's margin over the epochs.
    assert np.ptp(jax_curves.mean(axis=0), axis=0).min() > 0.4


def test_a_discriminator_without_dropout_falls_out_of_the_band(jax_curves, stat_setup):
    no_dropout = torch_curves(stat_setup, dropout=False)
    with pytest.raises(AssertionError):  # in one direction or the other
        assert_mean_in_band(no_dropout, jax_curves, "torch without dropout in jaxgan's band")
        assert_mean_in_band(jax_curves, no_dropout, "jaxgan in the band of torch without dropout")
