"""Data parallelism: 8 devices train like 1, two processes train like one, process 0 alone writes.

Several devices on the CPU need XLA_FLAGS before JAX starts, so those tests run
in subprocesses; the pytest process itself has one CPU device.
"""

import contextlib
import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
from conftest import ROOT, load_script

from gancore import data
from gancore.config import Config, ConfigError
from jaxgan import epochs, parallel
from jaxgan.build import make_gan
from jaxgan.fit import fit, load_final_params
from jaxgan.step import init_train_state

# 8 vs 1 device differ only in the order of the float32 sums over the batch (8
# partial sums and an all-reduce against one sum). Measured after the 8 steps
# below: params at most 1.5e-7 apart, losses 1.2e-7 (a wider model, 20 steps:
# 6.1e-7 and 1.2e-7); 1e-5 leaves room for other CPUs
# while a real sharding mistake (each device drawing the same noise rows, a
# gradient not averaged over devices) moves the losses by 1e-2 or more.
PARALLEL_ATOL = 1e-5

EIGHT_DEVICES = textwrap.dedent("""
    import os, sys
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    import jax, numpy as np
    from gancore import data
    from jaxgan import epochs, parallel
    from jaxgan.build import make_gan
    from gancore.config import Config, ConfigError
    from jaxgan.step import init_train_state

    config = Config(batch_size=64, g_features=(16, 32), d_features=(16, 8), latent_dim=8)
    images_NxD = data.load("train", subset=256).flat_NxD
    out = {}
    for n in (1, 8):
        mesh = parallel.data_mesh(config.batch_size, n)
        # The state as fit draws it: one compiled program (op by op it is dozens of small ones).
        state = parallel.put_replicated(init_train_state(make_gan(config), 0), mesh)
        images = parallel.put_replicated(images_NxD, mesh)
        epoch = epochs.compile(mesh, config.batch_size)
        if n == 8:
            epoch = epoch.lower(state, images).compile()
            hlo = epoch.as_text()
            out["all_reduces"], out["all_gathers"] = hlo.count("all-reduce("), hlo.count("all-gather(")
        losses = []
        for _ in range(2):  # 2 epochs of 4 steps
            state, metrics = epoch(state, images)
            losses.append(np.asarray(metrics["d_loss"]))
            losses.append(np.asarray(metrics["g_loss"]))
        out[f"losses_{n}"] = np.concatenate(losses)
        leaves = jax.tree.leaves(jax.device_get((state.g_params, state.d_params)))
        out.update({f"param{i}_{n}": x for i, x in enumerate(leaves)})
        out[f"sharding_{n}"] = str(state.g_params["hidden_0"]["kernel"].sharding.spec)
    # A conditional GAN with 2 D steps a G step: one call a step on 8 devices (fit's path for
    # convolutions on the CPU) against the scanned epoch on one.
    research = Config(**{**config.to_dict(), "conditional": True, "d_steps": 2})
    labels_N = data.load("train", subset=256).labels_N.astype(np.int32)
    for n, per_step in ((1, False), (8, True)):
        mesh = parallel.data_mesh(research.batch_size, n)
        state = parallel.put_replicated(init_train_state(make_gan(research), 0), mesh)
        epoch = epochs.compile(mesh, research.batch_size, per_step)
        state, metrics = epoch(state, parallel.put_replicated(images_NxD, mesh), parallel.put_replicated(labels_N, mesh))
        out[f"research_{n}"] = np.concatenate([np.asarray(metrics["d_loss"]), np.asarray(metrics["g_loss"])])
    try:
        parallel.data_mesh(100, 8)
    except ConfigError as e:
        out["error"] = str(e)
    np.savez(sys.argv[1], **out)
""")


def test_eight_devices_train_the_same_steps_as_one(tmp_path):
    out = tmp_path / "out.npz"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", EIGHT_DEVICES, out], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    r = np.load(out)
    # The batch really is split: gradients all-reduced, no image or activation gathered.
    assert int(r["all_reduces"]) > 0 and int(r["all_gathers"]) == 0
    assert str(r["sharding_8"]) == "P()"  # the state stays replicated
    np.testing.assert_allclose(r["losses_8"], r["losses_1"], rtol=0, atol=PARALLEL_ATOL)
    assert r["research_1"].shape == (4,)  # 2 steps of 2 D updates: D and G losses
    np.testing.assert_allclose(r["research_8"], r["research_1"], rtol=0, atol=PARALLEL_ATOL)
    assert r["losses_1"].shape == (16,)  # per epoch: 4 D losses, 4 G losses
    assert not np.allclose(r["losses_1"][:8], r["losses_1"][8:])  # the losses move from epoch 1 to 2
    n_params = len([k for k in r.files if k.startswith("param") and k.endswith("_1")])
    assert n_params == 12
    for i in range(n_params):
        np.testing.assert_allclose(r[f"param{i}_8"], r[f"param{i}_1"], rtol=0, atol=PARALLEL_ATOL)
    assert str(r["error"]) == "--batch-size 100 does not split evenly over 8 devices; choose a multiple of 8 such as 96 or 104."


def free_ports(n: int) -> list[int]:
    """n distinct free ports (their sockets are open together, so none is given twice)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in sockets:
            s.bind(("localhost", 0))
        return [s.getsockname()[1] for s in sockets]


# 2 steps an epoch, as few as show the split; every fit here trains it, so their programs compile once.
SMALL = Config(
    epochs=1,
    batch_size=100,
    subset=200,
    g_features=(64, 128),
    d_features=(64, 32),
    latent_dim=16,
    sample_every=1,
    checkpoint_every=1,
)

# One process of a two-process run: what scripts/train_jax.py does after its flags, on a small model.
PROCESS = textwrap.dedent("""
    import sys
    from jaxgan import compile_cache, parallel
    from gancore.config import Config
    from jaxgan.fit import fit

    address, process_id, config = sys.argv[1], int(sys.argv[2]), Config.from_dict(eval(sys.argv[3]))
    compile_cache.enable()  # as train_jax.py does: process 0 loads what the first launch compiled
    assert parallel.initialize(address, 2, process_id)
    fit(config)
""")


def launch_two_processes(config: dict, port: int) -> list[subprocess.Popen]:
    """Processes 0 and 1 of a two-process run of `config` (a Config's dict), 2 CPU devices each."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    argv = lambda i: [sys.executable, "-c", PROCESS, f"localhost:{port}", str(i), repr(config)]
    return [subprocess.Popen(argv(i), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for i in (0, 1)]


def test_two_processes_train_the_same_steps_as_one(tmp_path):
    two = dataclasses.replace(SMALL, workdir=str(tmp_path / "two")).to_dict()
    first, refusal, resume = free_ports(3)
    procs = launch_two_processes(two, first)
    fit(dataclasses.replace(SMALL, workdir=str(tmp_path / "one")))  # here: one process, one device
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    assert "epoch/s" in outs[0][1] and "epoch/s" not in outs[1][1]  # only process 0 shows progress
    config = json.loads((tmp_path / "two" / "config.json").read_text())
    assert (config["devices"], config["processes"]) == (4, 2)
    two_records = [json.loads(line) for line in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    one_records = [json.loads(line) for line in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in two_records] == [r["step"] for r in one_records] == [2]
    for a, b in zip(two_records, one_records):
        for k in ("d_loss", "g_loss", "d_real", "d_fake"):
            assert a[k] == pytest.approx(b[k], abs=PARALLEL_ATOL)
    for a, b in zip(jax.tree.leaves(load_final_params(tmp_path / "two")), jax.tree.leaves(load_final_params(tmp_path / "one"))):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=PARALLEL_ATOL)
    # TensorBoard names its event file after the host, the time and the process id.
    names = lambda d: sorted("events.out.tfevents" if p.name.startswith("events.out") else p.name for p in d.iterdir())
    assert names(tmp_path / "two") == names(tmp_path / "one")
    assert names(tmp_path / "two" / "samples") == ["epoch_0001.png"]
    assert names(tmp_path / "two" / "checkpoints") == ["1"]

    # Process 0 refusing the workdir stops both processes with its sentence (none waits for it):
    # on a copy of the run, at the same time as the resume below.
    shutil.copytree(tmp_path / "two", tmp_path / "held")
    refused = launch_two_processes({**two, "workdir": str(tmp_path / "held")}, refusal)
    # Both processes resume; process 0 alone replays metrics.jsonl, and the result matches a one-process resume.
    procs = launch_two_processes({**two, "epochs": 2, "resume": True}, resume)
    fit(dataclasses.replace(SMALL, epochs=2, resume=True, workdir=str(tmp_path / "one")))
    for p in refused:
        _, err = p.communicate(timeout=120)
        assert p.returncode != 0 and "already holds a run" in err
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
    two_records = [json.loads(line) for line in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    one_records = [json.loads(line) for line in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in two_records] == [r["epoch"] for r in one_records] == [1, 2]
    for k in ("d_loss", "g_loss"):
        assert two_records[-1][k] == pytest.approx(one_records[-1][k], abs=PARALLEL_ATOL)
    assert names(tmp_path / "two") == names(tmp_path / "one")
    assert names(tmp_path / "two" / "samples") == ["epoch_0001.png", "epoch_0002.png"]
    assert names(tmp_path / "two" / "checkpoints") == ["1", "2"]


def test_a_process_other_than_0_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(jax, "process_index", lambda *args: 1)
    fit(dataclasses.replace(SMALL, workdir=str(tmp_path / "run")))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--devices", "2"], "--devices 2 does not fit this machine, which has 1 cpu device(s); choose from 1 to 1."),
        (
            ["--num-processes", "2", "--process-id", "0"],
            "a multi-process run needs --coordinator-address, --num-processes, --process-id together; --coordinator-address is missing.",
        ),
        (["--coordinator-address", "localhost:1", "--num-processes", "2", "--process-id", "2"], "--process-id must be in [0, --num-processes=2), got 2."),
    ],
)
@pytest.mark.filterwarnings("error")
def test_devices_and_processes_that_do_not_fit_get_one_sentence(tmp_path, capfd, flags, message):
    # In this process (one CPU device, as the script's own process would have): no interpreter to start.
    # capfd: all of file descriptor 2 (absl's and XLA's lines too), and a Python warning fails the test.
    argv = ["--subset", "200", "--batch-size", "100", "--workdir", str(tmp_path / "run"), *flags]
    assert load_script("train_jax").main(argv) == 2
    assert capfd.readouterr().err.strip() == f"error: {message}"
    assert not (tmp_path / "run").exists()


def test_one_device_is_a_mesh_of_one_and_trains_bit_for_bit_like_epochs_run():
    mesh = parallel.data_mesh(batch_size=SMALL.batch_size)
    assert mesh.shape == {"data": 1}
    # SMALL's 2 steps: the one-device epoch fit compiled for the runs above (the same program, from the cache).
    images_NxD = data.load("train", subset=SMALL.subset).flat_NxD
    # The state as fit draws it (one compiled program, fit's own: from the cache) rather than op by op.
    fresh = lambda: init_train_state(make_gan(SMALL), 0)
    sharded, sharded_metrics = epochs.compile(mesh, SMALL.batch_size)(parallel.put_replicated(fresh(), mesh), parallel.put_replicated(images_NxD, mesh))
    plain, plain_metrics = epochs.run(fresh(), jax.numpy.asarray(images_NxD), SMALL.batch_size)
    for a, b in zip(
        jax.tree.leaves((sharded.g_params, sharded.d_params, sharded_metrics)), jax.tree.leaves((plain.g_params, plain.d_params, plain_metrics)), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(ConfigError, match="--devices 0 does not fit"):
        parallel.data_mesh(batch_size=7, num_devices=0)
