"""Runs that survive: resume, crashes, corrupt checkpoints, mismatches, divergence."""

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, load_script

from gancore import files

SMALL = ["--batch-size", "100", "--checkpoint-every", "1", "--keep-checkpoints", "3"]
DATA = ["--subset", "200"]  # 2 steps an epoch: a torch_baseline step of the article's MLP costs ~0.4 CPU-s
LOSSES = ("epoch", "step", "d_loss", "g_loss", "d_real", "d_fake")


def losses(workdir: Path) -> list[tuple]:
    lines = (workdir / "metrics.jsonl").read_text().splitlines()
    return [tuple(json.loads(line)[k] for k in LOSSES) for line in lines]


def train(script, workdir, epochs, *extra) -> int:
    data = [] if "--subset" in extra else DATA
    return load_script(script).main([*SMALL, *data, "--epochs", str(epochs), "--workdir", str(workdir), *extra])


def final_params(script, workdir) -> list[np.ndarray]:
    if script == "train_jax":
        import jax

        from jaxgan.fit import load_final_params

        return [np.asarray(x) for x in jax.tree.leaves(load_final_params(workdir))]
    import torch

    final = torch.load(workdir / "final.pt", weights_only=True)
    return [t.numpy() for part in final.values() for t in part.values()]


def assert_same_run(script, a: Path, b: Path) -> None:
    assert losses(a) == losses(b)
    for x, y in zip(final_params(script, a), final_params(script, b), strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.fixture(scope="module", params=["train_jax", "train_torch"])
def reference(request, tmp_path_factory):
    """An uninterrupted 4-epoch run of each framework."""
    workdir = tmp_path_factory.mktemp("reference") / request.param
    assert train(request.param, workdir, 4) == 0
    return request.param, workdir


def test_resume_continues_bit_for_bit(reference, tmp_path):
    script, uninterrupted = reference
    assert train(script, tmp_path / "run", 2) == 0
    (tmp_path / "run" / "metrics.jsonl").open("a").write('{"epoch": 3, "st')  # a line cut short by a crash
    assert train(script, tmp_path / "run", 4, "--resume") == 0
    assert_same_run(script, tmp_path / "run", uninterrupted)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["epochs"] == 4


def test_metrics_after_the_last_checkpoint_are_replayed_not_duplicated(reference, tmp_path):
    script, uninterrupted = reference
    run = tmp_path / "run"
    assert train(script, run, 3) == 0
    checkpoints = run / "checkpoints"
    newest = max(checkpoints.iterdir(), key=lambda p: p.name)
    # As if killed after epoch 3's metrics line but before its checkpoint was complete.
    if newest.is_dir():
        import shutil

        shutil.rmtree(newest)
    else:
        for p in checkpoints.glob("epoch_000003*"):
            p.unlink()
    assert train(script, run, 4, "--resume") == 0
    assert_same_run(script, run, uninterrupted)


def corrupt_newest(checkpoints: Path, how: str) -> None:
    if any(p.is_dir() for p in checkpoints.iterdir()):  # Orbax: <epoch>/state/... files
        newest = max((p for p in checkpoints.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
        files = [p for p in newest.rglob("*") if p.is_file() and p.stat().st_size > 1000]
    else:
        files = [max(checkpoints.glob("epoch_*.pt"))]
    for f in files:
        blob = bytearray(f.read_bytes())
        if how == "truncate":
            f.write_bytes(bytes(blob[: len(blob) // 2]))
        else:
            blob[len(blob) // 2] ^= 0x01
            f.write_bytes(bytes(blob))


@pytest.mark.parametrize("how", ["truncate", "flip"])
def test_corrupt_newest_checkpoint_falls_back_to_an_intact_one(reference, tmp_path, capsys, how):
    script, uninterrupted = reference
    run = tmp_path / "run"
    assert train(script, run, 3) == 0
    corrupt_newest(run / "checkpoints", how)
    capsys.readouterr()
    assert train(script, run, 4, "--resume") == 0
    err = capsys.readouterr().err
    assert "is corrupt" in err and "trying an older one" in err
    assert_same_run(script, run, uninterrupted)


def test_no_intact_checkpoint_is_one_clear_error(reference, tmp_path, capsys):
    script, _ = reference
    run = tmp_path / "run"
    assert train(script, run, 2, "--keep-checkpoints", "1") == 0
    corrupt_newest(run / "checkpoints", "flip")
    before = (run / "metrics.jsonl").read_text()
    assert train(script, run, 4, "--resume") == 2
    assert "error: no checkpoint in" in capsys.readouterr().err
    assert (run / "metrics.jsonl").read_text() == before


@pytest.mark.parametrize(
    "change, field",
    [(["--batch-size", "50"], "batch_size"), (["--subset", "300"], "subset"), (["--seed", "1"], "seed"), (["--digit", "3"], "digit")],
)
def test_resuming_with_other_settings_names_the_field_and_changes_nothing(reference, tmp_path, capsys, change, field):
    script, uninterrupted = reference
    run = tmp_path / "run"
    shutil.copytree(uninterrupted, run)  # a run of 4 epochs, to be continued to 6
    snapshot = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert train(script, run, 6, *change, "--resume") == 2
    err = capsys.readouterr().err
    assert f"cannot resume: the run in this workdir has {field}=" in err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == snapshot


def test_resuming_the_other_frameworks_run_is_refused(reference, tmp_path, capsys):
    script, uninterrupted = reference
    other = "train_torch" if script == "train_jax" else "train_jax"
    snapshot = {p: p.read_bytes() for p in uninterrupted.rglob("*") if p.is_file()}
    assert train(other, uninterrupted, 6, "--resume") == 2
    assert f"was trained by {script[6:]}, not {other[6:]}; continue it with scripts/{script}.py" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in uninterrupted.rglob("*") if p.is_file()} == snapshot


def test_resume_without_a_run_and_with_overwrite_are_refused(reference, tmp_path, capsys):
    script, _ = reference
    assert train(script, tmp_path / "empty", 2, "--resume") == 2
    assert "holds no run to resume" in capsys.readouterr().err
    assert train(script, tmp_path / "x", 2, "--resume", "--overwrite") == 2
    assert "pass only one" in capsys.readouterr().err


def test_divergence_stops_with_a_clear_message_and_keeps_the_checkpoint(reference, tmp_path, capsys):
    script, _ = reference
    run = tmp_path / "run"
    # Adam moves every weight by about lr a step: 1e30 overflows float32 within an epoch.
    assert train(script, run, 3, "--lr", "1e30") == 3
    err = capsys.readouterr().err
    assert "training diverged in epoch 1" in err and "no checkpoint was saved yet" in err and "lower --lr" in err
    assert losses(run) == []


def start(script, workdir, epochs, *extra):
    """A real training process; later flags override SMALL's."""
    return subprocess.Popen(
        [sys.executable, ROOT / "scripts" / f"{script}.py", *SMALL, "--epochs", str(epochs), "--workdir", str(workdir), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_epochs(workdir: Path, n: int, proc, timeout=240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        metrics = workdir / "metrics.jsonl"
        if metrics.exists() and len(metrics.read_text().splitlines()) >= n:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.01)
    raise AssertionError(f"no epoch {n} within {timeout} s")


def test_sigkill_at_any_moment_resumes_from_the_last_complete_checkpoint(tmp_path):
    """Kills a real jaxgan run three times, once in the first epoch and twice later
    (each epoch is mostly checkpoint saving here, so kills land inside saves too).
    DATA: the programs the reference runs above compiled, loaded from the compile cache."""
    run, reference = tmp_path / "run", tmp_path / "reference"
    for kill_after in (0, 2, 5):
        proc = start("train_jax", run, 8, *DATA, *(["--resume"] if (run / "checkpoints").exists() else []))
        if kill_after:
            wait_for_epochs(run, kill_after, proc)
        else:
            time.sleep(2)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert train("train_jax", run, 8, "--resume") == 0  # in this process: the killed ones were real processes
    assert train("train_jax", reference, 8) == 0
    assert_same_run("train_jax", run, reference)


def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(tmp_path):
    run = tmp_path / "run"
    proc = start("train_jax", run, 400, *DATA, "--checkpoint-every", "1000")
    wait_for_epochs(run, 2, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "continue with --resume" in err
    done = len(losses(run))
    assert 2 <= done < 400
    assert [p.name for p in (run / "checkpoints").iterdir() if p.name.isdigit()] == [str(done)]


def test_sample_script_draws_from_the_newest_checkpoint_of_either_framework(reference, tmp_path, capsys):
    script, workdir = reference
    out = tmp_path / "grid.png"
    assert load_script("sample").main(["--workdir", str(workdir), "--n", "16", "--out", str(out)]) == 0
    framework = "jax" if script == "train_jax" else "torch"
    assert f"16 samples of the {framework} run at epoch 4" in capsys.readouterr().out
    assert out.read_bytes()[:4] == b"\x89PNG"
    # The newest checkpoint is the end of the run, so the grid equals the run's last one at the same noise.
    import matplotlib.image

    grid = matplotlib.image.imread(out)
    assert grid.shape[:2] == (2 * (4 * 30 + 2),) * 2  # 4 x 4 tiles of 28 px + 2 px padding, scaled 2x
    assert load_script("sample").main(["--workdir", str(tmp_path / "none"), "--out", str(out)]) == 2
    assert "holds no run" in capsys.readouterr().err


def test_divergence_after_good_epochs_keeps_the_last_good_checkpoint(tmp_path, capsys, monkeypatch):
    import jax
    import jax.numpy as jnp

    import jaxgan.epochs

    real_factory = jaxgan.epochs.compile

    def poisoned_from_epoch_3(mesh, batch_size, per_step=False):
        real_epoch = real_factory(mesh, batch_size, per_step)

        def epoch(state, images, labels=None):
            state, metrics = real_epoch(state, images, labels)
            if int(state.step) > 2 * 2:  # 2 steps an epoch
                state = state.replace(g_params=jax.tree.map(lambda x: x * jnp.nan, state.g_params))
            return state, metrics

        return epoch

    monkeypatch.setattr(jaxgan.epochs, "compile", poisoned_from_epoch_3)
    run = tmp_path / "run"
    assert train("train_jax", run, 5) == 3
    err = capsys.readouterr().err
    assert "training diverged in epoch 3" in err and "the last good checkpoint is epoch 2" in err
    assert [r[0] for r in losses(run)] == [1, 2]
    monkeypatch.setattr(jaxgan.epochs, "compile", real_factory)
    assert train("train_jax", run, 5, "--resume") == 0  # the kept checkpoint is intact
    assert [r[0] for r in losses(run)] == [1, 2, 3, 4, 5]


KILL_IN_FIRST_SAVE = {
    # Orbax finalises a checkpoint by renaming its finished temporary folder: die just before.
    "train_jax": (
        "from orbax.checkpoint._src.path import atomicity\n"
        "async def die(self, *a, **k): os.kill(os.getpid(), signal.SIGKILL)\n"
        "atomicity.AtomicRenameTemporaryPath.finalize = die\n"
        "atomicity.CommitFileTemporaryPath.finalize = die\n"
    ),
    # torch_baseline writes a temporary file and renames it over epoch_NNNNNN.pt: die instead of renaming.
    "train_torch": (
        "import gancore.files\n"
        "real = gancore.files.os.replace\n"
        "def replace(src, dst):\n"
        "    if str(dst).endswith('.pt'): os.kill(os.getpid(), signal.SIGKILL)\n"
        "    real(src, dst)\n"
        "gancore.files.os.replace = replace\n"
    ),
}


def test_a_kill_during_the_first_save_is_continued_by_resume_from_epoch_1(reference, tmp_path, capsys):
    script, uninterrupted = reference
    run = tmp_path / "run"
    argv = [*SMALL, *DATA, "--epochs", "4", "--workdir", str(run)]
    code = f"import os, signal, sys\n{KILL_IN_FIRST_SAVE[script]}sys.path.insert(0, {str(ROOT / 'scripts')!r})\n"
    code += f"import {script}\nsys.exit({script}.main({argv!r}))\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert [r[0] for r in losses(run)] == [1]  # epoch 1's line, then killed inside its checkpoint
    assert train(script, run, 4, "--resume") == 0
    assert "holds no complete checkpoint" in capsys.readouterr().out
    assert_same_run(script, run, uninterrupted)


def test_a_kill_while_the_final_outputs_are_written_is_finished_by_resume(reference, tmp_path, capsys):
    script, uninterrupted = reference
    run = tmp_path / "run"
    shutil.copytree(uninterrupted, run)
    finals = ["summary.json", "progress.gif", "interpolation.png", "final_params" if script == "train_jax" else "final.pt"]
    for name in finals:  # as a kill after the last checkpoint leaves them
        files.remove(run / name)
    (run / "losses.png").write_bytes(b"")
    assert train(script, run, 4, "--resume") == 0
    assert "writing its final outputs" in capsys.readouterr().out
    assert all((run / name).exists() for name in finals) and (run / "losses.png").stat().st_size > 1000
    assert_same_run(script, run, uninterrupted)
    # Finished: the same command now says what would continue it.
    assert train(script, run, 4, "--resume") == 2
    assert "already at epoch 4; pass --epochs above 4" in capsys.readouterr().err


def test_a_second_writer_is_refused_while_the_first_trains_and_not_after_it_is_killed(tmp_path, capsys):
    run = tmp_path / "run"
    first = start("train_torch", run, 400, *DATA, "--loader", "device", "--checkpoint-every", "2")
    wait_for_epochs(run, 2, first)
    before = (run / "config.json").read_text()
    for extra in (["--overwrite"], ["--resume"]):
        assert train("train_torch", run, 400, "--loader", "device", *extra) == 2
        err = capsys.readouterr().err
        assert f"is in use by another run (process {first.pid})" in err, err
    assert (run / "config.json").read_text() == before and first.poll() is None
    first.kill()
    first.wait()
    assert train("train_torch", run, 4, "--loader", "device", "--overwrite") == 0  # the dead process's lock is gone
    assert [r[0] for r in losses(run)] == [1, 2, 3, 4]
