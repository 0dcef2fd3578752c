"""A run's XLA programs (jaxgan.compiles) and its writer thread (gancore.background): few programs, none
compiled op by op, none compiled again on a rerun with the cache, and a slow writer never holds the training."""

import dataclasses
import json
import os
import subprocess
import sys
import threading
import time

import pytest
from conftest import ROOT, load_script

from gancore import background, loop
from gancore.config import Config
from jaxgan import compile_cache, compiles, fit

# Every program a plain run builds: the initial state, the epoch, the finiteness check, G at the grid's
# and at the interpolation's batch. An operation's name here (dot, add, ...) would be one run eagerly.
PROGRAMS = {"jit(_compiled_init)", "jit(epoch)", "jit(all_finite)", "jit(generate)"}
SHORT = ["--epochs", "3", "--batch-size", "50", "--subset", "200", "--sample-every", "1", "--checkpoint-every", "1"]


def run_short(workdir, cache_dir) -> dict:
    env = {**os.environ, compile_cache.ENV_DIR: str(cache_dir), compile_cache.ENV_OFF: ""}
    result = subprocess.run(
        [sys.executable, ROOT / "scripts" / "train_jax.py", *SHORT, "--workdir", str(workdir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return json.loads((workdir / "summary.json").read_text())["compilations"]


def test_a_short_run_builds_a_few_programs_and_its_rerun_loads_them_all(tmp_path):
    cold = run_short(tmp_path / "cold", tmp_path / "xla")
    assert cold["before_first_call"]["names"] == {"jit(_compiled_init)": 1}
    # G at the grid's batch compiles beside the first epoch; at the interpolation strip's, at the end.
    assert cold["first_call"]["names"] == {"jit(epoch)": 1, "jit(all_finite)": 1, "jit(generate)": 1}
    assert cold["after_first_call"]["names"] == {"jit(generate)": 1}
    assert sum(part["compiled"] for part in cold.values()) == 5 and all(part["cache_hits"] == 0 for part in cold.values())
    warm = run_short(tmp_path / "warm", tmp_path / "xla")
    assert {part: counts["names"] for part, counts in warm.items()} == {part: counts["names"] for part, counts in cold.items()}
    assert all(counts["compiled"] == 0 and counts["cache_hits"] == counts["programs"] for counts in warm.values())
    # sample.py draws from the run's checkpoint through compiled programs too (it built 105 single operations).
    split = compiles.Split()
    assert load_script("sample").main(["--workdir", str(tmp_path / "cold"), "--n", "64", "--out", str(tmp_path / "grid.png")]) == 0
    assert set(split.summary()["before_first_call"]["names"]) <= {"jit(_compiled_init)", "jit(generate)"}


def test_a_longer_run_builds_no_more_programs(tmp_path):
    """Several epochs a call, grids and checkpoints at other epochs: still one program each."""
    config = Config(epochs=7, batch_size=50, subset=200, sample_every=3, checkpoint_every=2, seed=11, workdir=str(tmp_path / "run"))
    fit.fit(config)
    parts = json.loads((tmp_path / "run" / "summary.json").read_text())["compilations"]
    # In this process some may be compiled already (by other tests): none beyond these, none twice.
    assert set().union(*(part["names"] for part in parts.values())) <= PROGRAMS
    assert sum(part["programs"] for part in parts.values()) <= 5


def test_a_slow_writer_does_not_hold_the_training(tmp_path, monkeypatch):
    sleep, ends, written = 2.0, [], []  # long beside a tiny epoch, even on a busy machine
    real_write, real_train = loop._write_grid, fit.JaxTrainer.train_epochs

    def slow_write(*args):
        time.sleep(sleep)
        real_write(*args)
        written.append(time.perf_counter())

    def timed_train(self, k):
        out = real_train(self, k)
        ends.append(time.perf_counter())
        return out

    monkeypatch.setattr(loop, "_write_grid", slow_write)
    monkeypatch.setattr(fit.JaxTrainer, "train_epochs", timed_train)
    base = Config(epochs=3, batch_size=50, subset=200, sample_every=1, checkpoint_every=100, seed=5)
    fit.fit(dataclasses.replace(base, workdir=str(tmp_path / "slow")))
    assert len(written) == 3 and ends[-1] < written[0]  # every epoch was trained before the first grid was written
    summary = json.loads((tmp_path / "slow" / "summary.json").read_text())
    assert summary["blocking_writes"]["grids"]["count"] == 3 and summary["blocking_writes"]["grids"]["max_s"] < sleep
    assert summary["blocking_writes"]["checkpoints"]["count"] == 1 and summary["seconds"]["train_s"] < sleep
    assert sorted(p.name for p in (tmp_path / "slow" / "samples").iterdir()) == [f"epoch_000{e}.png" for e in (1, 2, 3)]
    monkeypatch.setattr(loop, "_write_grid", real_write)
    fit.fit(dataclasses.replace(base, workdir=str(tmp_path / "plain")))
    for e in (1, 3):  # the same pictures as without the writer's delay
        name = f"samples/epoch_000{e}.png"
        assert (tmp_path / "slow" / name).read_bytes() == (tmp_path / "plain" / name).read_bytes()


def test_a_writers_error_is_raised_in_the_training_thread():
    def fail():
        raise OSError(28, "No space left on device")

    threads = []
    with background.Writer() as writer:
        writer.submit(lambda: threads.append(threading.current_thread()))
        writer.submit(fail)
        with pytest.raises(OSError, match="No space left"):
            writer.drain()
        writer.drain()  # raised once
    assert threads and threads[0] is not threading.main_thread()


def test_a_grid_the_writer_cannot_write_stops_the_run_in_one_sentence(tmp_path, capsys, monkeypatch):
    real_save = loop.reporting.save_grid

    def full_disk(samples, path, *args):
        if "epoch_0002" in str(path):
            raise OSError(28, "No space left on device", str(path))
        real_save(samples, path, *args)

    monkeypatch.setattr(loop.reporting, "save_grid", full_disk)
    argv = [*SHORT, "--epochs", "4", "--workdir", str(tmp_path / "run")]
    assert load_script("train_jax").main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.splitlines()[-1] == (
        f"error: {tmp_path / 'run' / 'samples' / 'epoch_0002.png'} could not be written or read (No space left on device); "
        "free some space or fix the folder, then continue with --resume."
    )
    # Raised at the next checkpoint, after the one of its own epoch: the resume draws the missing grid again.
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir() if p.name.isdigit()) == ["1", "2"]
    monkeypatch.setattr(loop.reporting, "save_grid", real_save)
    assert load_script("train_jax").main([*argv, "--resume"]) == 0
    pngs = sorted(p.name for p in (tmp_path / "run" / "samples").iterdir())
    assert pngs == [f"epoch_000{e}.png" for e in (1, 2, 3, 4)]
