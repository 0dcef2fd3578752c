"""Generator EMA (--ema-decay, --ema-start) and keeping the params of the best FID (--eval-every)."""

import contextlib
import dataclasses
import json
import math
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import load_script

from gancore import runs
from gancore.config import Config, ConfigError
from gancore.reporting import fixed_noise, read_metrics
from jaxgan import build, checkpoint, evaluate, fit, step
from jaxgan.models import Discriminator, Generator
from sidebyside.samples import checkpoint_samples

SMALL = Config(epochs=3, batch_size=50, subset=200, g_features=(32, 64), d_features=(32,), checkpoint_every=1, keep_checkpoints=5)
EMA = dict(ema_decay=0.9, ema_start=4)  # 4 steps an epoch: a copy of G through epoch 1, an average after
N = 100
LOSSES = ("epoch", "step", "d_loss", "g_loss", "d_real", "d_fake")


def tiny_gan(**kwargs) -> step.GAN:
    return step.GAN(Generator((8,), 784), Discriminator((8,), 0.3), latent_dim=4, **kwargs)


def host(tree):
    return jax.tree.map(np.array, tree)  # copies: train_step donates its input


def test_ema_matches_a_hand_computation_step_by_step():
    decay, start = 0.75, 2
    state = step.create_train_state(tiny_gan(ema_decay=decay, ema_start=start), jax.random.key(1))
    x_BxD = jax.random.uniform(jax.random.key(2), (16, 784), minval=-1, maxval=1)
    expected = host(state.g_params)
    for t in range(5):
        state, _ = step.train_step(state, x_BxD)
        g = host(state.g_params)
        expected = g if t < start else jax.tree.map(lambda e, g: np.float32(decay) * e + np.float32(1 - decay) * g, expected, g)
        ema = host(state.ema_params)
        for a, b in zip(jax.tree.leaves(ema), jax.tree.leaves(expected), strict=True):
            if t < start:
                np.testing.assert_array_equal(a, b)  # before the start: G's params, exactly
            else:
                np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    # After the start the EMA lags G: it is not a copy.
    assert max(float(np.abs(a - b).max()) for a, b in zip(jax.tree.leaves(ema), jax.tree.leaves(g))) > 1e-4


def test_without_ema_the_state_checkpoint_and_compiled_step_are_the_articles(monkeypatch):
    article = step.create_train_state(tiny_gan(), jax.random.key(0))
    assert article.ema_params is None
    fields = (article.step, article.g_params, article.d_params, article.g_opt_state, article.d_opt_state, article.key)
    assert len(jax.tree.leaves(article)) == len(jax.tree.leaves(fields))
    assert set(checkpoint._arrays(article)) == {"step", "g_params", "d_params", "g_opt_state", "d_opt_state", "key_data"}
    x_BxD = jnp.zeros((16, 784))

    def step_text(state):  # a fresh function each time: traced anew, not taken from jit's cache
        return jax.jit(lambda s, x: step.train_step.__wrapped__(s, x)).lower(state, x_BxD).as_text()

    with_hook = step_text(article)
    monkeypatch.setattr(step, "ema_update", lambda state: state)
    assert step_text(article) == with_hook  # the EMA's code adds nothing to the article's step
    with_ema = step.create_train_state(tiny_gan(ema_decay=0.9), jax.random.key(0))
    assert len(jax.tree.leaves(with_ema)) == len(jax.tree.leaves(article)) + len(jax.tree.leaves(article.g_params))
    assert "ema_params" in checkpoint._arrays(with_ema)
    assert tiny_gan().describe() + "; ema_decay=0.9" == tiny_gan(ema_decay=0.9).describe()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(ema_decay=1.0), "--ema-decay must be in [0, 1)"),
        (dict(ema_start=-1), "--ema-start must be 0 or more"),
    ],
)
def test_bad_ema_settings_get_one_sentence(kwargs, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        Config(**kwargs).validate()


@pytest.fixture(scope="module")
def ema_run(tmp_path_factory):
    """3 epochs with an EMA, evaluated after every epoch, a checkpoint each epoch."""
    workdir = tmp_path_factory.mktemp("ema") / "run"
    return fit.fit(dataclasses.replace(SMALL, **EMA, eval_every=1, eval_n=N, workdir=str(workdir)))


def losses(workdir):
    return [tuple(r[k] for k in LOSSES) for r in read_metrics(workdir / "metrics.jsonl")]


def test_a_resumed_run_with_an_ema_continues_bit_for_bit(ema_run, tmp_path):
    resumed = dataclasses.replace(SMALL, **EMA, workdir=str(tmp_path / "run"))
    fit.fit(dataclasses.replace(resumed, epochs=2))
    fit.fit(dataclasses.replace(resumed, resume=True))
    assert losses(tmp_path / "run") == losses(ema_run)
    a, b = fit.load_final_params(tmp_path / "run"), fit.load_final_params(ema_run)
    assert set(a) == set(b) == {"g_params", "d_params", "g_ema_params"}
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)
    gap = max(float(np.abs(e - g).max()) for e, g in zip(jax.tree.leaves(b["g_ema_params"]), jax.tree.leaves(b["g_params"])))
    assert gap > 1e-4  # the EMA is saved as itself, not as a copy of G


def test_evaluations_and_scripts_use_the_ema_and_say_so(ema_run, tmp_path, capsys, monkeypatch):
    records = read_metrics(ema_run / "metrics.jsonl")
    assert [r["generator"] for r in records] == ["ema"] * 3
    out = tmp_path / "both.json"
    assert load_script("evaluate").main(["--workdir", str(ema_run), "--n", str(N), "--generator", "both", "--json", str(out)]) == 0
    both = json.loads(out.read_text())
    assert both["generator"] == "both" and both["ema"]["generator"] == "ema" and both["raw"]["generator"] == "raw"
    # The EMA's figures are those of the EMA's own samples, and the training's last evaluation scored the same.
    final = fit.load_final_params(ema_run)
    gan = build.gan_of_run(json.loads((ema_run / "config.json").read_text()))
    for name, params in (("ema", "g_ema_params"), ("raw", "g_params")):
        fid = evaluate.evaluate_samples(evaluate.generate_jax(gan, final[params], N, 0), evaluate.test_reference(N, 0))["fid"]
        assert both[name]["fid"] == pytest.approx(fid, rel=1e-6)
    assert records[-1]["fid"] == pytest.approx(both["ema"]["fid"], rel=1e-6) and both["ema"]["fid"] != both["raw"]["fid"]
    capsys.readouterr()
    assert load_script("evaluate").main(["--workdir", str(ema_run), "--n", str(N), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["generator"] == "ema" and "generator: ema (the EMA of G)" in capsys.readouterr().out

    sample, calls = load_script("sample"), []  # what the script's checkpoint_samples drew, read rather than drawn again
    monkeypatch.setattr(sample, "checkpoint_samples", lambda *args: calls.append((args, checkpoint_samples(*args))) or calls[-1][1])
    assert sample.main(["--workdir", str(ema_run), "--n", "8", "--out", str(tmp_path / "grid.png")]) == 0
    assert "from the EMA of G" in capsys.readouterr().out
    saved = json.loads((ema_run / "config.json").read_text())
    [((workdir, config, z_NxZ), (drawn, epoch))] = calls
    assert workdir == ema_run and config == saved
    np.testing.assert_array_equal(z_NxZ, fixed_noise(8, saved["latent_dim"], 0))
    np.testing.assert_array_equal(drawn, np.asarray(step.generate(gan, final["g_ema_params"], fixed_noise(8, saved["latent_dim"], 0))))
    assert epoch == 3

    no_ema = tmp_path / "no_ema"
    shutil.copytree(ema_run, no_ema, ignore=shutil.ignore_patterns("checkpoints"))
    (no_ema / "config.json").write_text(json.dumps({**saved, "ema_decay": 0.0, "ema_start": 0}))
    assert load_script("evaluate").main(["--workdir", str(no_ema), "--n", str(N), "--generator", "ema"]) == 2
    assert "kept no EMA of G (it was trained without --ema-decay); use --generator raw." in capsys.readouterr().err


def test_the_params_of_the_best_fid_are_kept_and_named(ema_run):
    fids = [r["fid"] for r in read_metrics(ema_run / "metrics.jsonl")]
    best_epoch = int(np.argmin(fids)) + 1
    summary = json.loads((ema_run / "summary.json").read_text())
    assert summary["best_epoch"] == best_epoch and summary["best_fid"] == min(fids)
    best = fit.load_final_params(ema_run, "best_params")
    gan = build.gan_of_run(json.loads((ema_run / "config.json").read_text()))
    like = step.create_train_state(gan, jax.random.key(0))
    with contextlib.closing(checkpoint.Checkpointer(ema_run, read_only=True)) as checkpointer:
        at_best, _ = checkpointer.restore(best_epoch, like)
    for name, params in (("g_params", at_best.g_params), ("d_params", at_best.d_params), ("g_ema_params", at_best.ema_params)):
        for x, y in zip(jax.tree.leaves(best[name]), jax.tree.leaves(params), strict=True):
            np.testing.assert_array_equal(x, y)
    # As fit's init_params: a state built from them starts from them, G's EMA included.
    started = step.create_train_state(gan, jax.random.key(1), **best)
    for x, y in zip(jax.tree.leaves(best["g_ema_params"]), jax.tree.leaves(started.ema_params), strict=True):
        np.testing.assert_array_equal(x, y)


def test_the_best_is_the_lowest_finite_fid_first_of_equals():
    records = [{"epoch": 1}, {"epoch": 2, "fid": 5.0}, {"epoch": 3, "fid": 3.0}, {"epoch": 4, "fid": 3.0}, {"epoch": 5, "fid": math.nan}]
    assert runs.best_evaluation(records) == {"best_epoch": 3, "best_fid": 3.0}
    assert runs.best_evaluation(records[:1]) == {}
    assert runs.is_best({"fid": 2.9}, records) and not runs.is_best({"fid": 3.0}, records)
    assert not runs.is_best({"fid": math.nan}, []) and runs.is_best({"fid": 900.0}, records[:1])
