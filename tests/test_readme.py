"""README's library example runs as written."""

import json
import re

import numpy as np

from conftest import ROOT


def test_readme_library_example_runs(capsys):
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert blocks, "README lost its library example"
    exec(compile(blocks[0], "README.md", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["0", "1", "2"]
    d_losses = np.array([float(line.split()[1]) for line in lines])
    assert np.all((0.3 < d_losses) & (d_losses < 2.5))


def test_readme_custom_gan_example_trains_through_fit_and_is_measured(capsys, tmp_path, monkeypatch):
    readme = (ROOT / "README.md").read_text()
    example = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "fit(config, gan=gan)" in b)
    assert len(example.splitlines()) < 30
    monkeypatch.chdir(tmp_path)
    exec(compile(example, "README.md", "exec"), {"__name__": "readme_example"})
    fid = float(capsys.readouterr().out.split("FID")[-1])
    workdir = tmp_path / "runs" / "my_gan"
    assert (workdir / "samples" / "epoch_0003.png").exists() and (workdir / "final_params").exists()
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [60, 120, 180]
    # D learned to tell the digits from G's samples (at the start both read about 1/2).
    assert records[-1]["d_real"] - records[-1]["d_fake"] > 0.3
    # Three epochs of a small GAN are far from trained (README says what it prints): a real FID, not a placeholder.
    assert 300 < fid < 1500


def test_readme_nnx_example_trains_through_fit_evaluates_and_gives_the_nnx_generator_back(capsys, tmp_path, monkeypatch):
    readme = (ROOT / "README.md").read_text()
    example = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "from_nnx(" in b)
    monkeypatch.chdir(tmp_path)
    exec(compile(example, "README.md", "exec"), {"__name__": "readme_example"})
    assert capsys.readouterr().out.splitlines()[-1] == "(16, 784)"
    workdir = tmp_path / "runs" / "my_nnx_gan"
    assert (workdir / "samples" / "epoch_0003.png").exists()
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [60, 120, 180]
    # D, dropout and all, learned to tell the digits from G's samples (at the start both read about 1/2).
    assert records[-1]["d_real"] - records[-1]["d_fake"] > 0.3
    # The evaluation at epoch 3 scored the NNX generator: a real FID of a barely trained GAN.
    assert "fid" not in records[0] and 100 < records[-1]["fid"] < 1500
