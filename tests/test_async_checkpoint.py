"""jaxgan writes its checkpoints in the background: the next call trains while Orbax writes,
a write that fails later is still one sentence, and `epochs()` lists complete checkpoints only."""

import errno
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from orbax.checkpoint._src.path import atomicity
from test_robustness import assert_same_run, losses, train

import jaxgan.checkpoint
import jaxgan.fit
from jaxgan.step import TrainState

# Orbax's last act of a save, in its background thread: renaming the finished folder into place.
REAL_FINALIZE = atomicity.AtomicRenameTemporaryPath.finalize


def patch_finalize(monkeypatch, before):
    """Runs `before(epoch)` in the writing thread just before the checkpoint of `epoch` is renamed into place."""

    async def finalize(self, *args, **kwargs):
        if self.get_final().name.isdigit():  # the step's folder, not one of its items'
            before(int(self.get_final().name))
        return await REAL_FINALIZE(self, *args, **kwargs)

    monkeypatch.setattr(atomicity.AtomicRenameTemporaryPath, "finalize", finalize)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted 4-epoch jaxgan run (a checkpoint every epoch)."""
    workdir = tmp_path_factory.mktemp("reference") / "run"
    assert train("train_jax", workdir, 4) == 0
    return workdir


def test_the_next_call_trains_while_a_checkpoint_is_written_and_resume_is_bit_for_bit(reference, tmp_path, monkeypatch):
    run = tmp_path / "run"
    patch_finalize(monkeypatch, lambda epoch: time.sleep(0.3))
    pending_at_call = []  # per call: was the checkpoint of the epoch before it still unwritten when it began?
    real_train_epochs = jaxgan.fit.JaxTrainer.train_epochs

    def train_epochs(self, k):
        last = self.step() // self.steps_per_epoch
        pending_at_call.append(None if last == 0 else not (run / "checkpoints" / str(last)).is_dir())
        return real_train_epochs(self, k)

    monkeypatch.setattr(jaxgan.fit.JaxTrainer, "train_epochs", train_epochs)
    assert train("train_jax", run, 2) == 0
    assert pending_at_call == [None, True]
    assert sorted(p.name for p in (run / "checkpoints").iterdir() if p.name.isdigit()) == ["1", "2"]
    assert train("train_jax", run, 4, "--resume") == 0
    assert pending_at_call[2:] == [False, True]  # a resumed run's first call has its restored checkpoint behind it
    assert_same_run("train_jax", run, reference)


def test_a_write_that_fails_in_the_background_is_one_sentence_and_resume_continues(reference, tmp_path, capsys, monkeypatch):
    def full_disk(epoch):
        if epoch == 2:
            raise OSError(errno.ENOSPC, "No space left on device")

    patch_finalize(monkeypatch, full_disk)
    returned = []  # the epochs whose save returned: the failure comes later, at wait()
    real_save = jaxgan.checkpoint.Checkpointer.save
    monkeypatch.setattr(jaxgan.checkpoint.Checkpointer, "save", lambda self, epoch, *a: real_save(self, epoch, *a) or returned.append(epoch))
    run = tmp_path / "run"
    assert train("train_jax", run, 4) == 2
    assert returned == [1, 2]
    err = capsys.readouterr().err
    last = err.rstrip().splitlines()[-1]  # the lines before it are the progress bar's
    assert "Traceback" not in err and last.startswith("error: the checkpoint of epoch 2 could not be written"), err
    assert "No space left on device" in last and "the checkpoint of epoch 1 is kept" in last and last.endswith("continue with --resume.")
    assert [r[0] for r in losses(run)] == [1, 2]  # epoch 3 trained, but its line waits for the checkpoint before it
    assert [p.name for p in (run / "checkpoints").iterdir() if p.name.isdigit()] == ["1"]
    monkeypatch.setattr(atomicity.AtomicRenameTemporaryPath, "finalize", REAL_FINALIZE)
    assert train("train_jax", run, 4, "--resume") == 0
    assert "resuming" in capsys.readouterr().out
    assert_same_run("train_jax", run, reference)


def toy_state(step: int) -> TrainState:
    params = {"w": jnp.arange(6.0).reshape(2, 3) * step}
    return TrainState(step=jnp.int32(step), g_params=params, d_params=params, g_opt_state=(), d_opt_state=(), key=jax.random.key(step), gan=None)


def test_epochs_never_lists_a_checkpoint_still_being_written(tmp_path, monkeypatch):
    release = threading.Event()
    patch_finalize(monkeypatch, lambda epoch: release.wait(timeout=30))
    checkpointer = jaxgan.checkpoint.Checkpointer(tmp_path, keep=3)
    listed = []
    try:
        checkpointer.save(1, toy_state(1), {"seed": 0})  # returns while the write is held back
        reader = threading.Thread(target=lambda: listed.append(checkpointer.epochs()))
        reader.start()
        reader.join(timeout=0.5)
        assert reader.is_alive() and listed == [], f"epochs() listed {listed} while the write was pending"
        assert not (tmp_path / "checkpoints" / "1").exists()
    finally:
        release.set()
    reader.join(timeout=30)
    assert listed == [[1]]
    state, meta = checkpointer.restore(1, toy_state(0))
    np.testing.assert_array_equal(state.g_params["w"], toy_state(1).g_params["w"])
    assert meta["epoch"] == 1 and int(state.step) == 1
    checkpointer.close()
