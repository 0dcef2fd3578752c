"""gancore.loop: several epochs a call between the epochs that write, one transfer a call."""

import dataclasses
import json

import jax
import numpy as np
import pytest

from gancore import data, loop
from gancore.config import Config
from jaxgan import build, epochs, fit, parallel, step

LOSSES = ("epoch", "step", "d_loss", "g_loss", "d_real", "d_fake")


@pytest.mark.parametrize(
    "epoch, seconds, every, expect",
    [
        (1, None, (100, 100), 1),  # the first call compiles: one epoch
        (2, 0.01, (100, 100), 99),  # up to epoch 100, which writes a grid and a checkpoint
        (101, 0.01, (100, 30), 20),  # up to the checkpoint of epoch 120
        (5, 0.5, (100, 100), 4),  # no call longer than about CALL_SECONDS
        (5, 60.0, (100, 100), 1),
        (1995, 0.01, (100, 100), 6),  # never past the last epoch
    ],
)
def test_epochs_per_call_stop_at_the_next_epoch_that_writes(epoch, seconds, every, expect):
    config = Config(epochs=2000, sample_every=every[0], checkpoint_every=every[1])
    assert loop._epochs_per_call(config, epoch, seconds, evaluates=False) == expect
    assert loop._epochs_per_call(dataclasses.replace(config, eval_every=7), 2, 0.01, evaluates=True) == 6


def test_a_call_of_several_epochs_makes_one_device_to_host_transfer(monkeypatch):
    images = data.load("train", subset=200)
    config = Config(batch_size=50)
    gan = build.make_gan(config)
    mesh = parallel.data_mesh(50, 1)
    images_NxD = parallel.put_replicated(images.flat_NxD, mesh)

    def trainer():
        state = parallel.put_replicated(step.create_train_state(gan, jax.random.key(0)), mesh)
        return fit.JaxTrainer(gan, state, epochs.compile(mesh, 50), images_NxD, None, (28, 28), 4)

    one_by_one = trainer()
    expected = [one_by_one.train_epochs(1)[0][0] for _ in range(3)]
    chunked, calls, real_get = trainer(), [], jax.device_get
    monkeypatch.setattr(jax, "device_get", lambda x: calls.append(1) or real_get(x))
    with jax.transfer_guard_device_to_host("disallow"):  # an implicit transfer (float(x), np.asarray(x)) raises
        per_epoch, finite = chunked.train_epochs(3)
    assert len(calls) == 1 and finite
    assert per_epoch == expected and chunked.step() == one_by_one.step() == 12


def test_runs_with_several_epochs_a_call_log_every_epoch_as_one_a_call_does(tmp_path):
    base = Config(epochs=5, batch_size=50, subset=200, seed=3)
    fit.fit(dataclasses.replace(base, sample_every=1, checkpoint_every=1, workdir=str(tmp_path / "each")))
    fit.fit(dataclasses.replace(base, sample_every=100, checkpoint_every=100, workdir=str(tmp_path / "chunked")))

    def losses(run):
        return [tuple(json.loads(line)[k] for k in LOSSES) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]

    assert losses("chunked") == losses("each") and [r[0] for r in losses("each")] == [1, 2, 3, 4, 5]
    for a, b in zip(*(jax.tree.leaves(fit.load_final_params(tmp_path / run)) for run in ("each", "chunked")), strict=True):
        np.testing.assert_array_equal(a, b)
    summary = json.loads((tmp_path / "chunked" / "summary.json").read_text())
    assert summary["epoch"] == 5 and summary["step"] == 20
    assert set(summary["seconds"]) == {"startup_s", "setup_s", "first_call_s", "train_s", "write_s", "final_outputs_s", "total_s"}
