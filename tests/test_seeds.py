"""--seeds (jaxgan.seeds, jaxgan.stacked): K seeds as one compiled program, each member the run of its seed.

The stacked program batches the members' matrix products, so its sums may be ordered otherwise
than the single run's: members agree with their single runs to float32 round-off (TOL), which a
member trained with another seed's key, or with another seed's shuffle, misses by far.
"""

import contextlib
import json
import os
import signal
import threading
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib.image
import numpy as np
import pytest
from conftest import load_script

from gancore import data
from gancore.config import Config
from jaxgan import build, epochs, parallel, stacked
from jaxgan.checkpoint import Checkpointer
from jaxgan.step import init_train_state

TOL = 1e-5  # measured: 2e-7 after 12 MLP steps, the params' largest difference
FLAGS = ["--batch-size", "100", "--subset", "600", "--checkpoint-every", "1", "--sample-every", "1"]
LOSSES = ("epoch", "step", "d_loss", "g_loss", "d_real", "d_fake")


def leaves(tree) -> list[np.ndarray]:
    as_numbers = lambda x: jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x
    return [np.asarray(as_numbers(x), np.float64) for x in jax.tree.leaves(tree)]


def member(state, k: int):
    """Member k of a stacked state, taken on the host (as `jaxgan.seeds` views its members): on the device,
    each leaf's slice would be a program of its own to compile."""
    return stacked.member(jax.device_get(state), k)


def largest_difference(a, b) -> float:
    return max(float(np.max(np.abs(x - y))) for x, y in zip(leaves(a), leaves(b), strict=True))


def single_epochs(gan, state, images_NxD, batch_size: int, per_step: bool, n: int) -> tuple:
    """n epochs of the single run, placed on its mesh as jaxgan.fit places them: committed as the
    epoch's own outputs are, so every epoch and step is one compiled program (an uncommitted first
    state compiles it twice) and the program is the one train_jax.py's single runs load."""
    mesh = parallel.data_mesh(batch_size, 1)
    run, state, images_NxD = epochs.compile(mesh, batch_size, per_step), parallel.put_replicated(state, mesh), parallel.put_replicated(images_NxD, mesh)
    means = []
    for _ in range(n):
        state, metrics = run(state, images_NxD, None)
        means.append({k: float(np.mean(v)) for k, v in metrics.items()})
    return state, means


@pytest.mark.parametrize("per_step", [False, True], ids=["scan", "per_step"])
def test_each_member_is_the_run_of_its_seed_and_another_key_or_shuffle_is_not(per_step):
    gan = build.make_gan(Config(batch_size=100))
    images_NxD = jnp.asarray(data.load("train", subset=600).flat_NxD)
    fresh = [init_train_state(gan, s) for s in (0, 2)]
    members = stacked.Stacked(fresh, stacked.compile_epoch(stacked.stack(fresh), 100, per_step), images_NxD, None, 6)
    means, alive_ExK = members.train_epochs(1)
    # Seed 2's run as train_jax.py runs the MLP, scanned, for either way of the members: one step a call
    # computes the same numbers (measured: 4e-7 from the scanned run, as the scanned members).
    seed2, seed2_means = single_epochs(gan, init_train_state(gan, 2), images_NxD, 100, False, 1)
    assert largest_difference(member(members.state, 1), seed2) < TOL
    assert means[0][1] == pytest.approx(seed2_means[0], rel=TOL) and alive_ExK.tolist() == [[True, True]]
    # Member 0 drew its own weights, shuffle and noise: far outside TOL of seed 2's run.
    assert largest_difference(member(members.state, 0).g_params, seed2.g_params) > 1000 * TOL
    # Seed 2's run on seed 0's shuffle (its own weights and noise) is far outside TOL too: seed 2's run, the
    # same program, on the images reordered so that its shuffle's batches are seed 0's, image for image.
    shuffle = lambda state: np.asarray(epochs.shuffled_batches(state, 600, 100)).reshape(-1)
    seed0_order = np.empty(600, int)
    seed0_order[shuffle(init_train_state(gan, 2))] = shuffle(fresh[0])
    shared, _ = single_epochs(gan, init_train_state(gan, 2), images_NxD[seed0_order], 100, False, 1)
    assert largest_difference(shared.g_params, seed2.g_params) > 100 * TOL
    # The next epoch too: each member goes on from its own state.
    means, _ = members.train_epochs(1)
    seed2, seed2_means = single_epochs(gan, seed2, images_NxD, 100, False, 1)
    assert largest_difference(member(members.state, 1), seed2) < TOL
    assert means[0][1] == pytest.approx(seed2_means[0], rel=TOL) and members.step() == 12


def test_dcgan_members_step_one_call_a_step_unrolled_and_lazy_r1_stays_a_branch_when_vmapped():
    config = Config(batch_size=100, arch="dcgan", dcgan_features=8, ema_decay=0.99, r1_weight=1.0, r1_every=2)
    gan = build.make_gan(config)
    images_NxD = jnp.asarray(data.load("train", subset=200).flat_NxD)
    fresh = [init_train_state(gan, s) for s in (0, 1)]
    # The CPU's way for convolutions (jaxgan.seeds): one call a step, the members written out in it.
    members = stacked.Stacked(fresh, stacked.compile_epoch(stacked.stack(fresh), 100, per_step=True, unrolled=True), images_NxD, None, 2)
    means, _ = members.train_epochs(1)
    seed1, seed1_means = single_epochs(gan, init_train_state(gan, 1), images_NxD, 100, True, 1)
    assert largest_difference(member(members.state, 1), seed1) < 10 * TOL  # convolutions: measured 1e-6
    assert means[0][1] == pytest.approx(seed1_means[0], rel=10 * TOL) and members.step() == 2
    # Vmapped (the GPU's way), the step is shared, not stacked: lazy R1's cond stays a branch (a batched one computes both sides).
    step = jax.vmap(epochs.step_at, in_axes=(stacked._axes(members.state), 0, None), out_axes=(stacked._axes(members.state), 0))
    jaxpr = str(jax.make_jaxpr(step)(members.state, jnp.zeros((2, 1, 100), jnp.int32), images_NxD))
    assert "cond[" in jaxpr


def read(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def final(run: Path) -> dict:
    from jaxgan.fit import load_final_params

    return load_final_params(run)


def test_member_folders_are_the_runs_of_their_seeds_with_evaluations_and_a_table(tmp_path, capsys):
    train = load_script("train_jax").main
    extra = ["--epochs", "2", "--eval-every", "2", "--eval-n", "100"]
    assert train([*FLAGS, *extra, "--seeds", "0,2", "--workdir", str(tmp_path / "seeds")]) == 0
    assert "seeds.md" in capsys.readouterr().out
    assert train([*FLAGS, *extra, "--seed", "2", "--workdir", str(tmp_path / "single")]) == 0
    member, single = tmp_path / "seeds" / "seed_2", tmp_path / "single"
    mine, theirs = read(member), read(single)
    assert [r["epoch"] for r in mine] == [1, 2] and "fid" in mine[1] and "fid" not in mine[0]
    for a, b in zip(mine, theirs, strict=True):
        assert {k: a[k] for k in LOSSES} == pytest.approx({k: b[k] for k in LOSSES}, rel=TOL)
    assert mine[1]["fid"] == pytest.approx(theirs[1]["fid"], rel=1e-3)
    assert largest_difference(final(member), final(single)) < TOL
    for png in ("samples/epoch_0001.png", "samples/epoch_0002.png"):
        grids = [matplotlib.image.imread(run / png) for run in (member, single)]
        assert np.abs(grids[0] - grids[1]).max() <= 1 / 255 + 1e-6  # a pixel level at most
    saved = [json.loads((run / "config.json").read_text()) for run in (member, single)]
    assert saved[0].pop("workdir") != saved[1].pop("workdir") and saved[0] == saved[1]  # seed 2, seeds None
    assert json.loads((member / "summary.json").read_text())["best_fid"] == mine[1]["fid"]
    table = json.loads((tmp_path / "seeds" / "seeds.json").read_text())
    expected = [(0, 2, 12, read(tmp_path / "seeds" / "seed_0")[1]["fid"]), (2, 2, 12, mine[1]["fid"])]
    assert [(m["seed"], m["epoch"], m["step"], m["fid"]) for m in table["members"]] == expected
    assert f"| 2 | 2 | 12 | {mine[1]['d_loss']:.4g} |" in (tmp_path / "seeds" / "seeds.md").read_text()
    assert load_script("evaluate").main(["--workdir", str(member), "--n", "100", "--kid-subset-size", "50"]) == 0


def test_ctrl_c_then_resume_continue_every_member_bit_for_bit(tmp_path, monkeypatch, capsys):
    train = load_script("train_jax").main
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    assert train([*FLAGS, "--epochs", "3", "--seeds", "2", "--workdir", str(straight)]) == 0
    real = stacked.Stacked.train_epochs

    def ctrl_c_after_epoch_2(self, k):
        out = real(self, k)
        if self.step() == 12:  # the loop checks Ctrl-C between calls, as for a keyboard's
            os.kill(os.getpid(), signal.SIGINT)
        return out

    monkeypatch.setattr(stacked.Stacked, "train_epochs", ctrl_c_after_epoch_2)
    assert train([*FLAGS, "--epochs", "3", "--seeds", "2", "--workdir", str(stopped)]) == 130
    assert "checkpoint of epoch 2 saved" in capsys.readouterr().err
    monkeypatch.undo()
    assert [len(read(stopped / f"seed_{s}")) for s in (0, 1)] == [2, 2] and not (stopped / "seeds.json").exists()
    lost = stopped / "seed_1" / "samples" / "epoch_0002.png"  # as if killed after the checkpoint, before this grid
    lost.unlink()
    # A single run's flags, or other seeds, do not resume the members; nothing is changed by trying.
    assert train([*FLAGS, "--epochs", "3", "--resume", "--workdir", str(stopped)]) == 2
    assert "has seeds='0,1', this command has None; use the same --seeds" in capsys.readouterr().err
    assert train([*FLAGS, "--epochs", "3", "--resume", "--seeds", "0,2", "--workdir", str(stopped)]) == 2
    assert train([*FLAGS, "--epochs", "3", "--seeds", "2", "--workdir", str(stopped)]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert train([*FLAGS, "--epochs", "3", "--resume", "--seeds", "0,1", "--workdir", str(stopped)]) == 0
    for s in (0, 1):
        assert [{k: r[k] for k in LOSSES} for r in read(stopped / f"seed_{s}")] == [{k: r[k] for k in LOSSES} for r in read(straight / f"seed_{s}")]
        for a, b in zip(leaves(final(stopped / f"seed_{s}")), leaves(final(straight / f"seed_{s}")), strict=True):
            np.testing.assert_array_equal(a, b)
    # The resume redrew the lost grid from the restored member: the picture the straight run drew.
    np.testing.assert_array_equal(matplotlib.image.imread(lost), matplotlib.image.imread(straight / "seed_1" / "samples" / "epoch_0002.png"))
    assert train([*FLAGS, "--epochs", "3", "--resume", "--seeds", "2", "--workdir", str(stopped)]) == 2
    assert "already at epoch 3" in capsys.readouterr().err
    assert json.loads((stopped / "config.json").read_text())["epochs"] == 3 and (stopped / "checkpoints" / "3").is_dir()


def test_a_restored_state_runs_the_program_the_fresh_one_ran(tmp_path):
    """A checkpoint's arrays come back committed to the device: the members' fresh state is placed so too, or each
    resumed run would compile its epoch anew (twice: the epoch's outputs are committed as well), not load the program."""
    gan = build.make_gan(Config(batch_size=100))
    fresh = [init_train_state(gan, s) for s in (0, 2)]
    run = stacked.compile_epoch(stacked.stack(fresh), 100)
    members = stacked.Stacked(fresh, run, jnp.asarray(data.load("train", subset=600).flat_NxD), None, 6)
    members.train_epochs(1)
    with contextlib.closing(Checkpointer(tmp_path)) as checkpointer:
        checkpointer.save(1, members.state, {})
        restored, _ = checkpointer.restore(1, members.state)
    members.load(restored, np.array([True, False]))
    _, alive_ExK = members.train_epochs(2)
    assert run._cache_size() == 1 and alive_ExK.tolist() == [[True, False], [True, False]] and members.step() == 18


def blow_up(seeds_to_break: set[int], monkeypatch) -> None:
    """Seeds whose D starts with every weight 1e20 times too large: their first epoch's losses are not finite."""
    from jaxgan import seeds

    made = []

    def create(gan, seed, prng_impl):
        state = init_train_state(gan, seed, prng_impl)
        made.append(None)
        if len(made) - 1 in seeds_to_break:
            state = state.replace(d_params=jax.tree.map(lambda x: x * 1e20, state.d_params))
        return state

    monkeypatch.setattr(seeds, "init_train_state", create)


# Three members of the article's MLP on 2 steps an epoch: one program for the two tests below.
THREE = ["--batch-size", "100", "--subset", "200", "--seeds", "3"]


def test_a_member_that_diverges_stops_frozen_and_the_others_go_on(tmp_path, monkeypatch, capsys):
    train = load_script("train_jax").main
    blow_up({1}, monkeypatch)
    assert train([*FLAGS, *THREE, "--epochs", "2", "--workdir", str(tmp_path / "one")]) == 0
    out = capsys.readouterr()
    assert "seed 1 diverged in epoch 1 (a loss or a parameter is NaN or Inf); it stops there" in out.out
    assert "stopped: seed 1 diverged in epoch 1; the other seeds trained to epoch 2." in out.out
    assert [len(read(tmp_path / "one" / f"seed_{s}")) for s in (0, 1, 2)] == [2, 0, 2]
    table = json.loads((tmp_path / "one" / "seeds.json").read_text())
    assert [m["diverged_in_epoch"] for m in table["members"]] == [None, 1, None]
    assert "| 1 | 0 | 0 |" in (tmp_path / "one" / "seeds.md").read_text() and "diverged in epoch 1" in (tmp_path / "one" / "seeds.md").read_text()
    assert json.loads((tmp_path / "one" / "seed_1" / "summary.json").read_text())["diverged_in_epoch"] == 1
    # Frozen at its last finite values: the weights it started with.
    gan = build.make_gan(Config(batch_size=100))
    initial = init_train_state(gan, 1)
    assert largest_difference(final(tmp_path / "one" / "seed_1")["d_params"], jax.tree.map(lambda x: x * 1e20, initial.d_params)) == 0
    assert largest_difference(final(tmp_path / "one" / "seed_1")["g_params"], initial.g_params) == 0
    monkeypatch.undo()
    # A resume keeps its record (diverged in epoch 1, no metrics) and its frozen params, and trains the others on.
    assert train([*FLAGS, *THREE, "--epochs", "3", "--resume", "--workdir", str(tmp_path / "one")]) == 0
    assert "stopped: seed 1 diverged in epoch 1; the other seeds trained to epoch 3." in capsys.readouterr().out
    assert [len(read(tmp_path / "one" / f"seed_{s}")) for s in (0, 1, 2)] == [3, 0, 3]
    assert [m["diverged_in_epoch"] for m in json.loads((tmp_path / "one" / "seeds.json").read_text())["members"]] == [None, 1, None]
    assert largest_difference(final(tmp_path / "one" / "seed_1")["g_params"], initial.g_params) == 0
    blow_up({0, 1, 2}, monkeypatch)
    assert train([*FLAGS, *THREE, "--epochs", "2", "--workdir", str(tmp_path / "all")]) == 3
    every = "every seed diverged (seed 0 diverged in epoch 1, seed 1 diverged in epoch 1, seed 2 diverged in epoch 1); no checkpoint was saved yet"
    assert every in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["0", "1,1", "a,b", "-2"])
def test_a_bad_seeds_value_is_refused_in_one_sentence(bad, tmp_path, capsys):
    assert load_script("train_jax").main(["--seeds", bad, "--workdir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err == f"error: --seeds must be a count K of at least 1 or a comma-separated list of distinct seeds in [0, 2**32), such as 0,3,5, got {bad!r}.\n"
    assert not (tmp_path / "run").exists()
    assert Config(seeds="3", seed=5).member_seeds == (5, 6, 7) and Config(seeds="4,").member_seeds == (4,)


def test_the_members_grids_are_written_by_the_writer_thread_and_a_slow_one_does_not_hold_the_training(tmp_path, monkeypatch):
    from gancore import loop
    from jaxgan import fit

    sleep, ends, written = 1.5, [], []  # long beside an epoch of 2 steps, even on a busy machine
    real_write, real_train = loop._write_grid, stacked.Stacked.train_epochs

    def slow_write(*args):
        time.sleep(sleep)
        real_write(*args)
        written.append((time.perf_counter(), threading.current_thread()))

    def timed_train(self, k):
        out = real_train(self, k)
        ends.append(time.perf_counter())
        return out

    monkeypatch.setattr(loop, "_write_grid", slow_write)
    monkeypatch.setattr(stacked.Stacked, "train_epochs", timed_train)
    # THREE's run, the program of the test above.
    config = Config(epochs=2, sample_every=1, checkpoint_every=100, seeds="3", batch_size=100, subset=200, workdir=str(tmp_path / "seeds"))
    fit.fit(config)
    assert len(written) == 6 and ends[-1] < written[0][0]  # both epochs trained before the first grid was written
    assert all(thread is not threading.main_thread() for _, thread in written)
    table = json.loads((tmp_path / "seeds" / "seeds.json").read_text())
    assert table["blocking_writes"]["grids"]["count"] == 2 and table["blocking_writes"]["grids"]["max_s"] < sleep
    assert table["blocking_writes"]["checkpoints"]["count"] == 1 and table["seconds"]["train_s"] < sleep
    for s in (0, 1, 2):
        assert sorted(p.name for p in (tmp_path / "seeds" / f"seed_{s}" / "samples").iterdir()) == ["epoch_0001.png", "epoch_0002.png"]
