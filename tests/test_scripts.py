"""The scripts from outside: the metrics/samples contract and one clear sentence per bad input."""

import dataclasses
import json
import subprocess
import sys

import pytest
from conftest import ROOT, load_script

from gancore.config import Config

SCRIPTS = ("train_jax", "train_torch")
# 2 steps an epoch on the data of test_robustness's runs: train_jax loads the programs those compiled.
TINY = ["--epochs", "2", "--batch-size", "100", "--subset", "200", "--sample-every", "1"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_writes_metrics_samples_and_plot(tmp_path, script):
    workdir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, ROOT / "scripts" / f"{script}.py", *TINY, "--workdir", str(workdir)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert [r["step"] for r in records] == [2, 4]
    for r in records:
        assert {"epoch", "d_loss", "g_loss", "d_real", "d_fake", "seconds"} <= set(r)
        assert 0 < r["d_real"] < 1 and 0 < r["d_fake"] < 1 and r["d_loss"] > 0 and r["seconds"] > 0
    # First epoch of an untrained pair: D(x) and D(G(z)) near 1/2, D loss near 2 log 2.
    assert 1.0 < records[0]["d_loss"] < 1.6 and 0.4 < records[0]["d_real"] < 0.8
    pngs = sorted(p.name for p in (workdir / "samples").iterdir())
    assert pngs == ["epoch_0001.png", "epoch_0002.png"]
    assert (workdir / "samples" / "epoch_0002.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (workdir / "losses.png").stat().st_size > 10_000
    # config.json as runs were saved with (resume and the readers rely on it): every Config field in order,
    # beta1 the one in effect, then what each trainer adds.
    saved = json.loads((workdir / "config.json").read_text())
    fields = json.loads(json.dumps(dataclasses.asdict(Config(epochs=2, batch_size=100, subset=200, sample_every=1, workdir=str(workdir)))))
    own = {
        "train_jax": {"framework": "jax", "dtype": "float32", "prng": "threefry2x32", "dense": "xla", "image_shape": [28, 28], "num_classes": 0},
        "train_torch": {"framework": "torch", "device": saved.get("device"), "loader": "article", "image_shape": [28, 28]},
    }[script]
    if script == "train_jax":
        own |= {"devices": saved.get("devices"), "processes": 1, "model": None}
    assert list(saved.items()) == list({**fields, "beta1": 0.9, **own}.items())
    assert saved["batch_size"] == 100 and saved.get("devices", 1) >= 1 and saved.get("device", "cpu") in ("cpu", "cuda")
    final = workdir / ("final_params" if script == "train_jax" else "final.pt")
    assert final.exists()


def test_final_params_round_trip(tmp_path):
    from gancore import reporting
    from gancore.config import Config
    from jaxgan.build import make_gan
    from jaxgan.fit import fit, load_final_params
    from jaxgan.step import generate

    config = Config(epochs=1, batch_size=100, subset=200, workdir=str(tmp_path / "run"))  # TINY's data: its compiled epoch
    workdir = fit(config)
    params = load_final_params(workdir)
    assert params["d_params"]["hidden_0"]["kernel"].shape == (784, 256)
    # The restored G redraws the run's last grid exactly.
    z = reporting.fixed_noise(64, config.latent_dim, config.seed)
    reporting.save_grid(generate(make_gan(config), params["g_params"], z), tmp_path / "again.png")
    assert (tmp_path / "again.png").read_bytes() == (workdir / "samples" / "epoch_0001.png").read_bytes()


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_explains_every_shared_flag(script, capsys):
    with pytest.raises(SystemExit) as exit_info:
        load_script(script).main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--epochs", "--batch-size", "--lr", "--seed", "--subset", "--digit", "--label-smoothing", "--workdir"):
        assert flag in out
    assert "6000" in out and "2000" in out  # the article's defaults


def run_main(script, argv, capsys):
    code = load_script(script).main(argv)
    err = capsys.readouterr().err
    return code, err


BAD_FLAGS = [
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--subset", "600", "--batch-size", "601"], "--batch-size 601 is larger than the 600 training images; choose at most 600"),
    (["--digit", "11"], "--digit must be one of 0-9, got 11"),
    (["--digit", "1", "--subset", "7000"], "larger than the 6742 images available"),
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--lr", "nan"], "--lr must be a positive number"),
    (["--label-smoothing", "0.7"], "--label-smoothing must be in [0, 0.5)"),
    (["--dataset", "cifar10"], "--dataset must be mnist, fashion_mnist or tfds:NAME"),
]


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize("argv, message", BAD_FLAGS)
def test_bad_flag_gets_one_clear_sentence(tmp_path, capsys, script, argv, message):
    workdir = tmp_path / "run"
    code, err = run_main(script, [*argv, "--workdir", str(workdir)], capsys)
    assert code == 2
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not workdir.exists()  # refused before anything was written


@pytest.mark.parametrize("script", SCRIPTS)
def test_missing_and_corrupt_data_files_are_refused(tmp_path, capsys, monkeypatch, script):
    monkeypatch.setenv("JAXGAN_DATA_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("JAXGAN_MNIST_PKL", str(tmp_path / "absent.pkl.gz"))
    code, err = run_main(script, [*TINY, "--workdir", str(tmp_path / "a")], capsys)
    assert code == 2 and "is missing: reinstall it with `pip install" in err
    corrupt = tmp_path / "corrupt.pkl.gz"
    corrupt.write_bytes(b"\x1f\x8b" + b"\x00" * 100)
    monkeypatch.setenv("JAXGAN_MNIST_PKL", str(corrupt))
    code, err = run_main(script, [*TINY, "--workdir", str(tmp_path / "b")], capsys)
    assert code == 2 and "is corrupt" in err and err.count("\n") == 1
    code, err = run_main(script, [*TINY, "--data-dir", str(tmp_path / "no-idx"), "--workdir", str(tmp_path / "c")], capsys)
    assert code == 2 and "does not exist" in err
    assert not any((tmp_path / d).exists() for d in "abc")


@pytest.mark.parametrize("script", SCRIPTS)
def test_unwritable_workdir_is_refused(tmp_path, capsys, script):
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me")
    code, err = run_main(script, [*TINY, "--workdir", str(blocker / "run")], capsys)
    assert code == 2 and "cannot be written" in err and "choose a writable --workdir" in err
    assert blocker.read_text() == "keep me"


@pytest.mark.parametrize("script", SCRIPTS)
def test_existing_run_is_not_overwritten(tmp_path, capsys, script):
    workdir = tmp_path / "run"
    (workdir / "samples").mkdir(parents=True)
    (workdir / "metrics.jsonl").write_text('{"epoch": 1}\n')
    (workdir / "samples" / "epoch_0001.png").write_bytes(b"old grid")
    code, err = run_main(script, [*TINY, "--workdir", str(workdir)], capsys)
    assert code == 2 and "already holds a run" in err and "--overwrite" in err
    assert (workdir / "metrics.jsonl").read_text() == '{"epoch": 1}\n'
    assert (workdir / "samples" / "epoch_0001.png").read_bytes() == b"old grid"


def test_argparse_rejects_malformed_values_with_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        load_script("train_jax").main(["--batch-size", "many"])
    assert exit_info.value.code == 2
    assert "invalid int value: 'many'" in capsys.readouterr().err


def test_frameworks_stay_apart(python):
    check = "import sys, {mod}; bad = [m for m in sys.modules if m.split('.')[0] == '{other}']; sys.exit(f'{mod} imported {{bad[:3]}}' if bad else 0)"
    for mod, other in (("torch_baseline.train", "jax"), ("jaxgan.fit", "torch")):
        result = subprocess.run([python, "-c", check.format(mod=mod, other=other)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("script", ["train_torch", "compare"])
def test_unusable_torch_device_is_refused(tmp_path, capsys, script):
    code, err = run_main(script, [*TINY, "--device", "cuda:7", "--workdir", str(tmp_path / "run")], capsys)
    assert code == 2 and "--device cuda:7 is not usable here" in err and "try --device cpu" in err
    assert not (tmp_path / "run").exists()


def test_overwrite_replaces_the_old_runs_files(tmp_path, capsys):
    workdir = tmp_path / "run"
    (workdir / "samples").mkdir(parents=True)
    (workdir / "metrics.jsonl").write_text('{"epoch": 9}\n')
    (workdir / "samples" / "epoch_0009.png").write_bytes(b"old grid")
    code, _ = run_main("train_jax", [*TINY, "--workdir", str(workdir), "--overwrite"], capsys)
    assert code == 0
    assert sorted(p.name for p in (workdir / "samples").iterdir()) == ["epoch_0001.png", "epoch_0002.png"]
    assert [json.loads(line)["epoch"] for line in (workdir / "metrics.jsonl").read_text().splitlines()] == [1, 2]


def test_compare_reports_divergence_in_one_line(tmp_path, capsys):
    code, err = run_main("compare", [*TINY, "--lr", "1e30", "--workdir", str(tmp_path / "cmp")], capsys)
    assert code == 3 and "\nerror: training diverged in epoch 1" in err and "Traceback" not in err
