"""Every failure of a run ends in one sentence and loses nothing on disk: full disks, stray
files, bad settings files, unwritable outputs (tests/test_robustness.py: kills and resumes)."""

import errno
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, load_script
from test_robustness import DATA, SMALL, losses, train

SAVE_FAILURES = {
    "disk full": OSError(errno.ENOSPC, "No space left on device"),
    "torch's full disk": RuntimeError("[enforce fail at inline_container.cc:778] . PytorchStreamWriter failed writing file: unexpected pos"),
    "orbax's full disk": ValueError("RESOURCE_EXHAUSTED: Error writing to file: No space left on device"),
}


@pytest.mark.parametrize("script, failure", [("train_jax", "orbax's full disk"), ("train_torch", "torch's full disk"), ("train_torch", "disk full")])
def test_a_failed_checkpoint_save_is_one_sentence_and_keeps_the_last_checkpoint(script, failure, tmp_path, capsys, monkeypatch):
    module = "jaxgan.checkpoint" if script == "train_jax" else "torch_baseline.checkpoint"
    checkpointer = __import__(module, fromlist=["Checkpointer"]).Checkpointer
    real_save = checkpointer.save

    def save(self, epoch, *args):
        if epoch >= 2:
            raise SAVE_FAILURES[failure]
        real_save(self, epoch, *args)

    monkeypatch.setattr(checkpointer, "save", save)
    run = tmp_path / "run"
    assert train(script, run, 3) == 2
    err = capsys.readouterr().err
    last = err.rstrip().splitlines()[-1]  # the lines before it are the progress bar's
    assert "Traceback" not in err and last.startswith("error: the checkpoint of epoch 2 could not be written"), err
    assert "the checkpoint of epoch 1 is kept" in last and last.endswith("continue with --resume.")
    assert [r[0] for r in losses(run)] == [1, 2]
    monkeypatch.setattr(checkpointer, "save", real_save)
    assert train(script, run, 3, "--resume") == 0
    assert [r[0] for r in losses(run)] == [1, 2, 3]


def test_torch_overflowing_adam_is_a_divergence(tmp_path, capsys):
    assert train("train_torch", tmp_path / "run", 2, "--lr", "1e38") == 3
    err = capsys.readouterr().err
    assert "training diverged in epoch 1" in err and "Traceback" not in err


def test_sample_of_a_run_without_checkpoints_says_so_and_writes_nothing(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"framework": "torch", "latent_dim": 128, "image_shape": [28, 28]}))
    assert load_script("sample").main(["--workdir", str(run), "--out", str(tmp_path / "g.png")]) == 2
    assert "holds no checkpoint yet" in capsys.readouterr().err
    assert sorted(p.name for p in run.iterdir()) == ["config.json"]


@pytest.mark.parametrize("script, flag", [("sample", "--out"), ("evaluate", "--json")])
def test_outputs_into_a_folder_that_cannot_be_written_are_refused_first(script, flag, tmp_path, capsys):
    # /proc exists but no file can be made in it, not even by root.
    argv = ["--workdir", str(tmp_path), flag, "/proc/jaxgan-test.out"]
    assert load_script(script).main(argv) == 2
    err = capsys.readouterr().err
    assert f"the folder of {flag} /proc/jaxgan-test.out cannot be written" in err


def test_a_second_ctrl_c_or_one_during_start_up_is_one_line(tmp_path, capsys, monkeypatch):
    import gancore.data

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(gancore.data, "load", interrupted)
    assert train("train_torch", tmp_path / "run", 1) == 130
    assert capsys.readouterr().err.startswith("stopped: interrupted")


@pytest.fixture(scope="module")
def torch_run(tmp_path_factory):
    """A finished 2-epoch torch_baseline run (copy it before changing it)."""
    run = tmp_path_factory.mktemp("torch") / "run"
    assert train("train_torch", run, 2) == 0
    return run


def test_torch_ignores_stray_files_and_removes_its_torn_temporaries(torch_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(torch_run, run)
    (run / "checkpoints" / "epoch_abc.pt").write_text("not a checkpoint")
    (run / "checkpoints" / ".epoch_000003.tmp-x1y2.pt").write_bytes(b"torn")
    assert train("train_torch", run, 3, "--resume") == 0
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    epochs = [f"epoch_00000{e}.pt{digest}" for e in (1, 2, 3) for digest in ("", ".sha256")]
    assert names == [*epochs, "epoch_abc.pt"]


@pytest.mark.parametrize("text", ["{not json", "[1, 2]"])
def test_a_malformed_config_json_is_one_sentence_for_resume_and_sample(text, torch_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(torch_run, run)
    (run / "config.json").write_text(text)
    before = (run / "metrics.jsonl").read_text()
    assert train("train_torch", run, 3, "--resume") == 2
    assert f"{run / 'config.json'}" in capsys.readouterr().err
    assert load_script("sample").main(["--workdir", str(run), "--out", str(tmp_path / "g.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert (run / "metrics.jsonl").read_text() == before


def test_evaluating_a_run_whose_final_params_are_torn_names_the_resume_that_finishes_it(torch_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(torch_run, run)
    (run / "final.pt").write_bytes(b"")  # as a kill while writing it would leave it, before atomic writes
    assert load_script("evaluate").main(["--workdir", str(run), "--n", "100"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {run / 'final.pt'} cannot be read") and err.count("\n") == 1
    assert f"scripts/train_torch.py --workdir {run} --resume --epochs 2" in err


def test_a_checkpoints_folder_that_cannot_be_written_is_refused_before_anything_changes(torch_run, tmp_path, capsys, monkeypatch):
    import pathlib

    run = tmp_path / "run"
    shutil.copytree(torch_run, run)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    real_write = pathlib.Path.write_text

    def write_text(self, *args, **kwargs):
        if self.name == ".write-test" and self.parent.name == "checkpoints":
            raise PermissionError(13, "Permission denied", str(self))
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "write_text", write_text)
    assert train("train_torch", run, 5, "--resume") == 2
    assert "checkpoints/.write-test cannot be written (Permission denied)" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before  # final.pt, pictures, metrics kept


def test_resuming_with_the_other_trainer_names_the_script_that_continues_the_run(torch_run, capsys):
    assert train("train_jax", torch_run, 3, "--resume") == 2
    assert "was trained by torch, not jax; continue it with scripts/train_torch.py" in capsys.readouterr().err


def test_a_corrupt_torch_checkpoint_is_set_aside_with_its_digest(torch_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(torch_run, run)
    newest = run / "checkpoints" / "epoch_000002.pt"
    newest.write_bytes(newest.read_bytes()[:-10])
    assert train("train_torch", run, 3, "--resume") == 0
    aside = sorted(p.name for p in (run / "checkpoints.corrupt").iterdir())
    assert len(aside) == 2 and aside[0].startswith("epoch_000002.pt-") and aside[1] == aside[0] + ".sha256"


def messages(err: str) -> list[str]:
    """stderr's lines without the progress bar's."""
    return [line for line in err.replace("\r", "\n").splitlines() if line.strip() and "%|" not in line]


def run_script(script, argv, inject="", timeout=300):
    """A real process of scripts/SCRIPT.py (run as __main__), after `inject`."""
    code = f"import os, runpy, sys\n{inject}sys.argv = {[str(ROOT / 'scripts' / f'{script}.py'), *map(str, argv)]!r}\n"
    code += "runpy.run_path(sys.argv[0], run_name='__main__')\n"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)


ORBAX_WRITE_FAILS = (  # Orbax's own write fails from the second checkpoint on, as on a full disk
    "import errno\n"
    "from orbax.checkpoint._src.path import atomicity\n"
    "def patch(cls):\n"
    "    real = cls.finalize\n"
    "    async def finalize(self, *a, **k):\n"
    "        if '/checkpoints/1' not in repr(vars(self)): raise OSError(errno.ENOSPC, 'No space left on device')\n"
    "        return await real(self, *a, **k)\n"
    "    cls.finalize = finalize\n"
    "patch(atomicity.AtomicRenameTemporaryPath); patch(atomicity.CommitFileTemporaryPath)\n"
)


def test_orbax_failing_to_write_is_one_sentence_its_log_goes_to_a_file_and_the_process_ends(tmp_path):
    run = tmp_path / "run"
    proc = run_script("train_jax", [*SMALL, *DATA, "--epochs", "4", "--workdir", run], ORBAX_WRITE_FAILS, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert messages(proc.stderr) == [
        f"error: the checkpoint of epoch 2 could not be written to {run / 'checkpoints'} (OSError: [Errno 28] No space left on device); "
        "the checkpoint of epoch 1 is kept: free some space or fix the folder, then continue with --resume."
    ]
    assert "ERROR absl" in (run / "orbax.log").read_text()  # Orbax's tracebacks, for whoever wants them


def test_a_garbled_ocdbt_manifest_falls_back_to_the_older_checkpoint_in_one_warning_line(tmp_path):
    run = tmp_path / "run"
    assert train("train_jax", run, 2) == 0
    (run / "checkpoints" / "2" / "state" / "manifest.ocdbt").write_bytes(b"garbled")
    warning = "warning: checkpoint of epoch 2 is corrupt (ValueError: DATA_LOSS: Error opening"
    proc = run_script("sample", ["--workdir", run, "--n", "4", "--out", tmp_path / "g.png"])
    assert proc.returncode == 0 and proc.stdout == f"4 samples of the jax run at epoch 1 -> {tmp_path / 'g.png'}\n", proc.stderr
    assert len(messages(proc.stderr)) == 1 and messages(proc.stderr)[0].startswith(warning), proc.stderr
    proc = run_script("train_jax", [*SMALL, *DATA, "--epochs", "3", "--workdir", run, "--resume"])
    assert proc.returncode == 0, proc.stderr
    assert len(messages(proc.stderr)) == 1 and messages(proc.stderr)[0].startswith(warning), proc.stderr
    assert [r[0] for r in losses(run)] == [1, 2, 3]


def not_a_runs_settings(saved: dict, case: str):
    return {"a list": [], "no image_shape": {"framework": "jax"}, "a word for latent_dim": {**saved, "latent_dim": "abc"}}[case]


@pytest.mark.parametrize("case", ["a list", "no image_shape", "a word for latent_dim"])
@pytest.mark.parametrize("script", ["evaluate", "sample"])
def test_readers_refuse_a_config_json_that_is_not_a_runs_settings_in_one_sentence(script, case, torch_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(torch_run, run)
    saved = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps(not_a_runs_settings(saved, case)))
    before = sorted(p.name for p in run.iterdir())
    argv = ["--workdir", str(run), *(["--n", "100"] if script == "evaluate" else ["--out", str(tmp_path / "g.png")])]
    assert load_script(script).main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {run / 'config.json'} does not hold a run's settings (") and err.count("\n") == 1, err
    assert sorted(p.name for p in run.iterdir()) == before and not (tmp_path / "g.png").exists()


@pytest.mark.parametrize(
    "script, flag, name, problem",
    [
        ("sample", "--out", "folder", "is a folder"),
        ("sample", "--out", "grid", "must end in .png"),
        ("sample", "--out", "grid.txt", "must end in .png"),
        ("evaluate", "--json", "folder", "is a folder"),
        ("evaluate", "--grid", "x.txt", "must end in .png"),
        ("evaluate", "--grid", "folder", "is a folder"),
    ],
)
def test_an_output_that_cannot_be_the_file_asked_for_is_refused_before_any_work(script, flag, name, problem, torch_run, tmp_path, capsys):
    (tmp_path / "folder").mkdir()
    before = sorted(p.name for p in torch_run.iterdir())
    argv = ["--workdir", str(torch_run), flag, str(tmp_path / name), *(["--n", "100"] if script == "evaluate" else [])]
    started = time.perf_counter()
    assert load_script(script).main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {flag} {tmp_path / name} {problem}") and err.count("\n") == 1, err
    assert time.perf_counter() - started < 5  # refused before the samples are drawn or scored
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"] and sorted(p.name for p in torch_run.iterdir()) == before


@pytest.mark.parametrize("flags", [["--r1-every", "1.5"], ["--dense", "foo"], ["--prng", "foo"], ["--dtype", "float16"], ["--batch-size", "abc"]])
def test_a_value_argparse_refuses_is_one_line_not_the_usage_block(flags, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train("train_jax", tmp_path / "run", 1, *flags)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith(f"error: argument {flags[0]}: invalid ") and err.count("\n") == 1, err
    with pytest.raises(SystemExit):
        train("train_torch", tmp_path / "run", 1, "--loader", "foo")
    assert capsys.readouterr().err.count("\n") == 1 and not (tmp_path / "run").exists()


def test_a_stop_before_the_run_exists_does_not_advise_resume_and_leaves_no_workdir(tmp_path, capsys, monkeypatch):
    import pathlib

    import gancore.data

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "cache.npz"))

    monkeypatch.setattr(gancore.data, "load", full)
    assert train("train_torch", tmp_path / "run", 1) == 2
    err = capsys.readouterr().err
    assert err.endswith("free some space or fix the folder, then run the same command again.\n"), err
    monkeypatch.undo()
    real_write = pathlib.Path.write_text

    def write_text(self, *args, **kwargs):
        if self.name == ".write-test":
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "write_text", write_text)
    assert train("train_torch", tmp_path / "run", 1) == 2
    assert "cannot be written (No space left on device)" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # nothing written: not even the workdir and its .lock


def test_resume_names_a_setting_missing_from_config_json_and_a_refusal_leaves_the_lock_as_it_was(torch_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(torch_run, run)
    saved = json.loads((run / "config.json").read_text())
    del saved["batch_size"]
    (run / "config.json").write_text(json.dumps(saved))
    (run / ".lock").write_text("12345")
    assert train("train_torch", run, 3, "--resume") == 2
    assert "has no batch_size in its config.json (read as 6000), this command has 100" in capsys.readouterr().err
    assert train("train_torch", run, 3) == 2  # no --resume: refused, it holds a run
    assert (run / ".lock").read_text() == "12345"


def test_a_resume_removes_what_interrupted_writes_left(torch_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(torch_run, run)
    leftovers = [".summary.tmp-a1b2.json", ".interpolation.tmp-c3d4.png", ".final.tmp-e5f6.pt", "samples/.epoch_0002.tmp-g7.png"]
    for name in leftovers:
        (run / name).write_bytes(b"torn")
    (run / ".final_params.tmp").mkdir()
    (run / "checkpoints" / "epoch_000003.pt.sha256").write_text("0" * 64)  # its checkpoint was never renamed into place
    before = sorted(str(p.relative_to(run)) for p in run.rglob("*"))
    assert train("train_torch", run, 3, "--resume") == 0
    after = sorted(str(p.relative_to(run)) for p in run.rglob("*"))
    assert not {*leftovers, ".final_params.tmp"} & set(after)
    assert "checkpoints/epoch_000003.pt.sha256" in after and (run / "checkpoints" / "epoch_000003.pt").exists()  # the new one's
    assert len(before) > len(after) - 3  # epoch 3's checkpoint, digest and grid are the only new files


def test_a_final_write_that_fails_names_the_file(tmp_path, capsys, monkeypatch):
    import torch

    real_save = torch.save

    def save(obj, f, *args, **kwargs):
        if Path(f).name.startswith(".final."):
            raise RuntimeError("[enforce fail at inline_container.cc:778] . PytorchStreamWriter failed writing file")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    run = tmp_path / "run"
    assert train("train_torch", run, 1) == 2
    err = capsys.readouterr().err
    assert f"error: {run / 'final.pt'} could not be written or read (" in err and "Traceback" not in err
    assert err.rstrip().endswith("then continue with --resume.") and not list(run.glob(".final*"))


def test_a_failed_write_of_jaxgans_final_params_names_the_folder(tmp_path, capsys, monkeypatch):
    import orbax.checkpoint as ocp

    real_save = ocp.StandardCheckpointer.save

    def save(self, directory, *args, **kwargs):
        if Path(directory).name == ".final_params.tmp":
            raise ValueError("RESOURCE_EXHAUSTED: No space left on device")
        return real_save(self, directory, *args, **kwargs)

    monkeypatch.setattr(ocp.StandardCheckpointer, "save", save)
    run = tmp_path / "run"
    assert train("train_jax", run, 1) == 2
    err = capsys.readouterr().err
    assert f"error: {run.absolute() / 'final_params'} could not be written or read (ValueError: RESOURCE_EXHAUSTED" in err
    assert "Traceback" not in err and err.rstrip().endswith("then continue with --resume.") and (run / "checkpoints" / "1").is_dir()
