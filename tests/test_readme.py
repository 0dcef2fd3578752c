"""The documentation holds: README's and docs/library.md's Python examples run as written, every relative
link of README.md and docs/*.md points to a file (and heading) that exists, and every `python scripts/...`
command there parses with the script's own flags."""

import argparse
import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, load_script

from sidebyside.groups import group_flags

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def python_blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(), re.S)


def test_readme_python_blocks_are_the_ones_these_tests_run():
    blocks = python_blocks(ROOT / "README.md")
    assert len(blocks) == 2 and "fit(config, gan=gan)" in blocks[0] and "from_nnx(" in blocks[1]
    assert len(python_blocks(ROOT / "docs" / "library.md")) == 1
    assert not [page.name for page in PAGES[1:] if page.name != "library.md" and python_blocks(page)]


def test_readme_gives_the_test_command_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci == "bash setup.sh && .venv/bin/python -m pytest -q -n 2 --dist loadfile" and f"\n{ci}\n" in (ROOT / "README.md").read_text()


def test_library_epoch_example_runs(capsys):
    blocks = python_blocks(ROOT / "docs" / "library.md")
    assert blocks, "docs/library.md lost its example"
    exec(compile(blocks[0], "docs/library.md", "exec"), {})
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
    # README and docs/library.md say what a custom run's config.json holds.
    saved = json.loads((workdir / "config.json").read_text())
    assert saved["model"] == "generator=G(); discriminator=D(); latent_dim=64; d_loss=d_loss; g_loss=g_hinge" and saved["beta1"] is None
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


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation but hyphens dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return {slug(h) for h in re.findall(r"^#+ (.*)$", text, re.M)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_points_to_a_file_and_heading_that_exist(page):
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    assert links, f"{page.name} links nowhere"
    broken = []
    for link in links:
        if re.match(r"[a-z]+:", link):
            continue
        target, _, anchor = link.partition("#")
        path = (page.parent / target).resolve() if target else page
        if not path.exists() or (anchor and path.suffix == ".md" and anchor not in anchors(path)):
            broken.append(link)
    assert not broken, f"{page.name}: broken links {broken}"


def test_the_link_check_can_fail(tmp_path):
    (tmp_path / "there.md").write_text("# A heading\n")
    assert anchors(tmp_path / "there.md") == {"a-heading"}
    assert slug("Speed options: `--one-d-pass` and `--dropout-bits`") == "speed-options---one-d-pass-and---dropout-bits"


class Parsed(Exception):
    """Raised in place of running a script once its flags have parsed."""


def commands(page: Path) -> list[str]:
    """The `python scripts/NAME.py ...` commands of a page: in its bash blocks (continued lines joined,
    comments dropped) and in its inline code."""
    text = page.read_text()
    found = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        found += [line.split(" #")[0] for line in block.replace("\\\n", " ").splitlines()]
    found += [" ".join(code.split()) for code in re.findall(r"`([^`]+)`", re.sub(r"```.*?```", "", text, flags=re.S))]
    pattern = r"(?:\.venv/bin/)?python3? (scripts/\w+\.py.*)"
    return [m.group(1).split(" && ")[0].strip() for line in found if (m := re.search(pattern, line))]


def parse_command(command: str, monkeypatch) -> argparse.Namespace:
    """Runs the script's main() up to its parser: its own flags, --recipe and all; SystemExit(2) on a bad flag."""
    words = shlex.split(command)
    script = load_script(Path(words[0]).stem)

    def stop(parser, args=None, namespace=None):
        raise Parsed(original(parser, args, namespace))

    original = argparse.ArgumentParser.parse_args
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", stop)
    with pytest.raises(Parsed) as parsed:
        script.main(words[1:])
    monkeypatch.undo()
    return parsed.value.args[0]


DOC_COMMANDS = sorted({(page.name, c) for page in PAGES for c in commands(page)})


def test_the_pages_hold_the_commands_they_should():
    named = {c.split()[0] for _, c in DOC_COMMANDS}
    assert {f"scripts/{s.stem}.py" for s in (ROOT / "scripts").glob("*.py")} == named  # every script is shown at work
    assert len(DOC_COMMANDS) > 30


@pytest.mark.parametrize("page, command", DOC_COMMANDS, ids=[f"{p}:{c[:60]}" for p, c in DOC_COMMANDS])
def test_every_documented_command_parses_with_the_scripts_own_flags(page, command, monkeypatch):
    args = parse_command(command, monkeypatch)
    for group in getattr(args, "reference", None), getattr(args, "candidate", None):
        if isinstance(group, str) and group.startswith("jaxgan:"):
            group_flags(group)  # a jaxgan:FLAGS group's flags are train_jax.py's


def test_the_command_check_can_fail(monkeypatch, capsys):
    assert parse_command("scripts/train_jax.py --recipe unconditional --epochs 50", monkeypatch).r1_every == 16
    for bad in ("scripts/train_jax.py --epoch-count 3", "scripts/bench.py --steps many", "scripts/train_jax.py --recipe nope"):
        with pytest.raises(SystemExit) as stop:
            parse_command(bad, monkeypatch)
        assert stop.value.code == 2


def test_readme_stays_a_manual_of_at_most_300_lines():
    # The depth belongs in docs/ (issue 25): a figure that does not fit goes to a page there.
    assert len((ROOT / "README.md").read_text().splitlines()) <= 300
