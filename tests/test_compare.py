"""sidebyside.compare (scripts/compare.py): both frameworks from the same weights, one report with numbers, curves and samples."""

import json

import numpy as np
import pytest
import torch

from gancore import reporting
from gancore.config import Config, ConfigError
from jaxgan.fit import load_final_params
from sidebyside.compare import compare
from torch_baseline import convert


def test_compare_writes_a_report_of_both_runs(tmp_path):
    workdir = tmp_path / "cmp"
    config = Config(epochs=2, batch_size=100, subset=300, eval_n=200, workdir=str(workdir)).validate()
    assert compare(config, device="cpu", loader="device", argv=["--subset", "300"]) == workdir
    report = json.loads((workdir / "report.json").read_text())
    for fw in ("jax", "torch"):
        epochs = report["epochs"][fw]
        assert [r["epoch"] for r in epochs] == [1, 2] and [r["step"] for r in epochs] == [3, 6]
        assert epochs == [{k: r[k] for k in epochs[0]} for r in reporting.read_metrics(workdir / fw / "metrics.jsonl")]
        assert 1.0 < epochs[0]["d_loss"] < 1.6 and report["steps_per_s"][fw] > 0 and report["wall_s"][fw] > 0
    assert report["wall_s"]["total"] == pytest.approx(report["wall_s"]["jax"] + report["wall_s"]["torch"], abs=0.011)
    assert report["device"] == {"jax": "cpu", "torch": "cpu"}
    ls = report["lockstep"]
    assert ls["steps"] == 3 and ls["batch"] == 100 and ls["agree"] and max(ls["rel_diff"]) < 1e-4
    # Both runs started from the same weights: after 6 steps of Adam at lr 2e-4 their weights differ by < 12 lr.
    torch_final = torch.load(workdir / "torch" / "final.pt")
    jax_out = np.asarray(load_final_params(workdir / "jax")["g_params"]["out"]["kernel"])
    torch_out = convert.params_from_state_dict(torch_final["generator"])["out"]["kernel"]
    assert np.abs(jax_out - torch_out).max() < 12 * 2e-4
    assert report["agree"] is True
    # Both final generators measured at the same N; from the same weights after 6 steps they are alike.
    quality = report["quality"]
    assert report["quality_n"] == 200 and quality["jax"]["n"] == quality["torch"]["n"] == 200
    assert quality["jax"]["fid"] > 100 and quality["torch"]["fid"] > 100  # untrained: far from the digits
    assert quality["jax"]["fid"] == pytest.approx(quality["torch"]["fid"], rel=0.2)
    assert f"| jaxgan | {quality['jax']['fid']:.1f} |" in (workdir / "report.md").read_text()
    md = (workdir / "report.md").read_text()
    assert "**The two frameworks agree.**" in md and "| jaxgan | cpu |" in md and "| torch_baseline | cpu |" in md
    for png in ("losses.png", "samples.png"):
        assert (workdir / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"]({png})" in md
    assert md.count("`python scripts/compare.py --subset 300`") == 1
    # The lock-step tolerance is stated as sidebyside.lockstep holds it: 2e-05 growing 12% a step.
    assert "(tolerance 2e-05 growing 12% a step)" in md and ls["rtol"][1] == pytest.approx(2e-5 * 1.12)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"subset": 50, "batch_size": 100}, "--batch-size 100 is larger than the 50 training images"),
        ({"arch": "dcgan"}, "both frameworks; --arch is a jaxgan option: compare variants with scripts/ablate.py"),
    ],
)
def test_compare_refuses_bad_settings_before_writing(tmp_path, settings, message):
    workdir = tmp_path / "cmp"
    with pytest.raises(ConfigError, match=message):
        compare(Config(workdir=str(workdir), **settings).validate(), device="cpu")
    assert not workdir.exists()


def test_compare_script_compiles_into_the_persistent_cache_unless_switched_off(tmp_path, monkeypatch):
    import jax
    from conftest import load_script

    import sidebyside.compare
    from jaxgan import compile_cache

    seen = []
    monkeypatch.setattr(sidebyside.compare, "compare", lambda config, **_: seen.append(jax.config.jax_compilation_cache_dir) or tmp_path)
    compile_cache.disable()  # as a fresh process starts
    monkeypatch.setenv("JAXGAN_CACHE_DIR", str(tmp_path / "xla"))
    try:
        assert load_script("compare").main(["--workdir", str(tmp_path / "cmp")]) == 0
        compile_cache.disable()
        monkeypatch.setenv("JAXGAN_NO_CACHE", "1")
        assert load_script("compare").main(["--workdir", str(tmp_path / "cmp")]) == 0
    finally:
        compile_cache.disable()
    assert seen == [str(tmp_path / "xla"), None]
