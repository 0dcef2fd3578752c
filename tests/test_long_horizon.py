"""The long-horizon check (gancore.longrun, sidebyside.groups, scripts/long_horizon.py): its statistic on known numbers,
and, shrunk, jaxgan against torch_baseline over several seeds: one distribution, unless jaxgan is changed."""

import json

import numpy as np
import pytest
from conftest import load_script

from gancore import longrun
from gancore.config import UserError
from sidebyside import groups

# 10 steps an epoch as in the article, at a size the suite affords.
SHRUNK = {"epochs": 4, "batch_size": 20, "subset": 200}
SEEDS = [1, 2, 3, 4]


def records(values_ExF) -> list[dict]:
    return [{"epoch": e + 1, **dict(zip(longrun.FIGURES, map(float, row)))} for e, row in enumerate(values_ExF)]


def test_share_outside_counts_figures_outside_the_leave_one_out_band():
    # 3 reference runs, 1 epoch, 4 figures: run i's figures are all i (0, 1, 2).
    ref = np.arange(3.0)[:, None, None] * np.ones((3, 1, 4))
    cand = np.full((1, 1, 4), 1.5)
    ref_shares, cand_shares = longrun.shares_outside(ref, cand)
    # Runs 0 and 2 lie outside the band of the other two; run 1 inside 0..2.
    np.testing.assert_allclose(ref_shares, [1.0, 0.0, 1.0])
    # 1.5 is inside 1..2 and 0..2, outside 0..1: outside 1 band of 3.
    np.testing.assert_allclose(cand_shares, [1 / 3])


def test_exchangeable_groups_have_equal_expected_shares():
    rng = np.random.default_rng(0)
    ref_means, cand_means = [], []
    for _ in range(200):
        runs = rng.normal(size=(10, 6, 4))
        r, c = longrun.shares_outside(runs[:5], runs[5:])
        ref_means.append(r.mean()), cand_means.append(c.mean())
    # 2 / R = 0.4 for both groups when the runs come from one distribution.
    assert abs(np.mean(ref_means) - 0.4) < 0.02 and abs(np.mean(cand_means) - 0.4) < 0.02


def test_compare_separates_shifted_runs_and_keeps_equal_ones():
    rng = np.random.default_rng(1)
    ref = {f"r{i}": records(rng.normal(size=(8, 4))) for i in range(6)}
    same = {f"s{i}": records(rng.normal(size=(8, 4))) for i in range(6)}
    shifted = {f"x{i}": records(rng.normal(size=(8, 4)) + 1.5) for i in range(6)}
    assert longrun.compare(ref, same, 8)["same_distribution"]
    report = longrun.compare(ref, shifted, 8, names=("ref", "shifted"))
    assert not report["same_distribution"] and report["p_value"] < 0.01
    assert report["median_share"]["shifted"] > 0.7 > report["median_share"]["ref"]
    assert "VERDICT: shifted lies outside ref's spread" in longrun.verdict(report)
    assert [w["epochs"] for w in report["windows"]["ref"]] == ["1-5", "6-8"]


def test_window_test_finds_a_shift_in_one_figure_over_the_named_epochs_only():
    rng = np.random.default_rng(3)
    shift = np.zeros((10, 4))
    shift[5:, 1] = 0.5  # the candidate's d_fake is higher over epochs 6-10 only
    ref = {f"r{i}": records(rng.normal(scale=0.1, size=(10, 4))) for i in range(6)}
    cand = {f"c{i}": records(rng.normal(scale=0.1, size=(10, 4)) + shift) for i in range(6)}
    late = longrun.compare(ref, cand, 10, names=("ref", "cand"), test_epochs=(6, 10))
    assert late["window_test"]["differ"] == ["d_fake"] and late["window_test"]["d_fake"]["p"] < 0.01
    assert late["window_test"]["d_fake"]["candidate"] - late["window_test"]["d_fake"]["reference"] > 0.4
    assert "figures that differ there (p < 0.05 / 4): d_fake" in longrun.verdict(late)
    early = longrun.compare(ref, cand, 10, test_epochs=(1, 5))["window_test"]
    assert early["differ"] == [] and early["d_fake"]["p"] > 0.0125
    with pytest.raises(UserError, match="must lie within the 10 epochs"):
        longrun.compare(ref, cand, 10, test_epochs=(8, 12))


def test_a_run_short_of_epochs_is_refused_in_one_sentence():
    runs = {f"r{i}": records(np.zeros((3, 4))) for i in range(3)}
    with pytest.raises(UserError, match="run r0 has no record of epoch 4"):
        longrun.compare(runs, runs, 4)


def test_script_reads_folders_of_runs_and_writes_its_report(tmp_path, capsys):
    rng = np.random.default_rng(2)
    for name, shift in (("ref", 0.0), ("cand", 0.0)):
        (tmp_path / name).mkdir()
        for i in range(4):
            lines = [json.dumps(r) for r in records(rng.normal(size=(6, 4)) + shift)]
            (tmp_path / name / f"seed_{i}.jsonl").write_text("\n".join(lines) + "\n")
    out = tmp_path / "report.json"
    args = [str(tmp_path / "ref"), str(tmp_path / "cand"), "--epochs", "6", "--json", str(out)]
    assert load_script("long_horizon").main(args) == 0  # the script, once: its flags reach the check
    report = json.loads(out.read_text())
    assert set(report["shares"]["cand"]) == {"seed_0", "seed_1", "seed_2", "seed_3"}
    assert "VERDICT" in capsys.readouterr().out
    png = tmp_path / "pictures" / "runs.png"
    assert groups.check(str(tmp_path / "ref"), str(tmp_path / "cand"), epochs=6, report_path=out, test_epochs="3-6", plot=png) == 0
    assert json.loads(out.read_text())["window_test"]["epochs"] == [3, 6]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert groups.check(str(tmp_path / "ref"), str(tmp_path / "cand"), epochs=6, test_epochs="3..6") == 2
    assert "--test-epochs takes FIRST-LAST" in capsys.readouterr().err
    assert groups.check(str(tmp_path / "nowhere"), "jaxgan") == 2
    assert "is neither a trainer" in capsys.readouterr().err


def test_a_jaxgan_flags_group_trains_those_settings_under_its_own_folder(tmp_path, monkeypatch, capsys):
    assert groups.group_flags("jaxgan:--one-d-pass") == {"one_d_pass": True}
    assert groups.group_flags("jaxgan:--lr 1e-3 --dropout 0") == {"lr": 1e-3, "dropout": 0.0}
    trained = []
    monkeypatch.setattr(groups, "train_group", lambda trainer, seeds, workdir, folder=None, **config: trained.append((trainer, folder, config)))
    groups.group("jaxgan:--one-d-pass", SEEDS, tmp_path, {"epochs": 2})
    assert trained == [("jaxgan", "jaxgan_--one-d-pass", {"epochs": 2, "one_d_pass": True})]
    for bad, says in [
        ("jaxgan:--one-d-pas", "unrecognized arguments: --one-d-pas"),
        ("jaxgan:--epochs 3", "--epochs is not a group's to set"),
        ("jaxgan:--dtype bfloat16", "--dtype is not a group's to set"),
        ("jaxgan:", "no flags after the colon"),
    ]:
        assert groups.check(bad, "jaxgan", workdir=tmp_path) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: group {bad!r}: {says}; ") and err.count("\n") == 1
    assert trained == [("jaxgan", "jaxgan_--one-d-pass", {"epochs": 2, "one_d_pass": True})]  # nothing trained for a bad group


@pytest.fixture(scope="module")
def torch_runs(tmp_path_factory):
    return groups.train_group("torch_baseline", SEEDS, tmp_path_factory.mktemp("lh"), **SHRUNK)


@pytest.fixture(scope="module")
def jax_runs(tmp_path_factory):
    return groups.train_group("jaxgan", SEEDS, tmp_path_factory.mktemp("lh"), **SHRUNK)


def test_jaxgan_and_torch_baseline_are_one_distribution(torch_runs, jax_runs):
    report = longrun.compare(torch_runs, jax_runs, SHRUNK["epochs"], names=("torch_baseline", "jaxgan"))
    assert report["same_distribution"], longrun.verdict(report)
    assert report["median_share"]["jaxgan"] < 0.7, longrun.verdict(report)


def test_a_jaxgan_with_another_learning_rate_is_caught(torch_runs, tmp_path):
    # 5x the article's lr. (Dropout 0 instead of 0.3 was not caught over so few steps.)
    changed = groups.train_group("jaxgan", SEEDS, tmp_path, **SHRUNK, lr=1e-3)
    report = longrun.compare(torch_runs, changed, SHRUNK["epochs"], names=("torch_baseline", "jaxgan"))
    assert not report["same_distribution"], longrun.verdict(report)
    assert report["median_share"]["jaxgan"] > 0.8, longrun.verdict(report)


def test_a_jaxgan_group_is_one_program_and_a_finished_one_is_read_not_trained(tmp_path, monkeypatch):
    import jaxgan.fit

    calls, real = [], jaxgan.fit.fit
    monkeypatch.setattr(jaxgan.fit, "fit", lambda config, **kw: calls.append(config.seeds) or real(config, **kw))
    shrunk = {**SHRUNK, "epochs": 1}  # the program of jax_runs, one epoch of it
    first = groups.train_group("jaxgan", SEEDS, tmp_path, **shrunk)
    assert calls == ["1,2,3,4"] and [len(first[f"seed_{s}"]) for s in SEEDS] == [1, 1, 1, 1]
    # config.json records beta1 in effect (0.9), not the None given: still the same run, read back.
    assert groups.train_group("jaxgan", SEEDS, tmp_path, **shrunk) == first and calls == ["1,2,3,4"]
