import argparse
import functools
import json

import jax
import pytest
from conftest import ROOT, load_script

from gancore import data, flops
from gancore.config import Config
from jaxgan.build import make_gan
from jaxgan.step import init_train_state, train_step
from sidebyside import benchmark


def test_flop_count_by_hand_for_a_tiny_model():
    # G: 1 -> 2 -> 3 (MACs 2 + 6 = 8); D: 3 -> 2 -> 1 (MACs 6 + 2 = 8); batch 1.
    # D step: G fwd 8, D fwd x2 16, D bwd x2: weights 16 + inputs above layer 0 (2) x2 = 20 -> 44
    # G step: G fwd 8, D fwd 8, D input grads 8, G bwd: weights 8 + inputs above layer 0 (6) -> 38
    assert flops.step_flops(1, latent_dim=1, g_features=(2,), data_dim=3, d_features=(2,)) == 2 * (44 + 38)
    assert flops.step_flops(7, latent_dim=1, g_features=(2,), data_dim=3, d_features=(2,)) == 7 * 2 * (44 + 38)


def test_flop_count_agrees_with_xla_cost_analysis():
    config = Config(batch_size=600)
    state = init_train_state(make_gan(config), 0)
    compiled = train_step.lower(state, jax.numpy.zeros((600, 784))).compile()
    cost = compiled.cost_analysis()
    xla_flops = (cost[0] if isinstance(cost, list) else cost)["flops"]
    # XLA also counts the element-wise work (activations, random bits, Adam) that the
    # analytic count leaves out: about 1% at this batch.
    assert flops.step_flops(600) == pytest.approx(xla_flops, rel=0.02)
    assert flops.step_flops(600) < xla_flops
    assert flops.step_flops(6000) == pytest.approx(88.78e9, rel=1e-3)


def test_bench_runs_at_a_tiny_size_and_reports_every_row(tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = [
        "--batch-size",
        "50",
        "--images",
        "500",
        "--steps",
        "3",
        "--article-steps",
        "1",
        "--torch",
        "eager",
        "cudagraphs",
        "graph",
        "eager-bf16",
        "article",
        "--jax",
        "float32",
        "--json",
        str(out),
    ]
    assert load_script("bench").main(argv) == 0
    result = json.loads(out.read_text())
    rows = {r["row"]: r for r in result["rows"]}
    assert set(rows) == {
        "torch eager",
        "torch reduce-overhead (CUDA graphs)",
        "torch CUDA graph of the whole step",
        "torch eager bf16 autocast",
        "torch article loader",
        "jaxgan float32 threefry2x32",
    }
    for graphs in ("torch reduce-overhead (CUDA graphs)", "torch CUDA graph of the whole step"):
        assert rows[graphs]["skipped"].startswith("needs CUDA")  # this CPU: one line, no failure
    ran = {name: r for name, r in rows.items() if "skipped" not in r}
    assert rows["torch eager"]["x_eager"] == 1.0
    assert rows["jaxgan float32 threefry2x32"]["steps"] == 10  # 3 steps round up to one whole epoch of 500 / 50
    for r in ran.values():
        assert r["steps_per_s"] > 0
        assert r["images_per_s"] == pytest.approx(50 * r["steps_per_s"])
        assert r["tflops"] == pytest.approx(r["steps_per_s"] * flops.step_flops(50) / 1e12)
    jax_row = "jaxgan float32 threefry2x32"
    assert ran["torch eager"]["jaxgan_row"] == jax_row
    assert ran["torch eager"]["jaxgan_lead"] == pytest.approx(ran[jax_row]["steps_per_s"] / ran["torch eager"]["steps_per_s"])
    assert "jaxgan_lead" not in ran["torch eager bf16 autocast"]  # no jaxgan row at its precision in this run
    r = ran[jax_row]
    assert r["compile_s"] > 0 and r["cache_hits"] == 0  # cold: a new empty cache
    assert r["warm_compile_s"] > 0 and r["warm_cache_hits"] == 1  # the fresh process loaded the epoch from the cache
    # XLA's count of one step: the matrix products (analytic) plus the element-wise work and the shuffle's share.
    assert flops.step_flops(50) < r["xla_flops_per_step"] < 1.1 * flops.step_flops(50)
    assert r["xla_bytes_per_step"] > 4 * 50 * 784  # at least a batch of float32 images
    assert 0 < r["fusions"] <= r["kernels"] and 0 < r["step_fusions"] <= r["step_kernels"]
    printed = capsys.readouterr().out
    assert "| jaxgan float32 threefry2x32 | 0.7" in printed and "| torch reduce-overhead (CUDA graphs) | not run: needs CUDA" in printed


def test_finish_gives_each_torch_row_jaxgan_s_lead_at_its_precision():
    rows = [
        {"row": "torch eager", "precision": "float32", "steps": 10, "seconds": 5.0},
        {"row": "torch compile bf16 autocast", "precision": "bfloat16", "steps": 10, "seconds": 2.0},
        {"row": "torch reduce-overhead (CUDA graphs)", "precision": "float32", "skipped": "needs CUDA"},
        {"row": "jaxgan float32 rbg", "precision": "float32", "steps": 30, "seconds": 1.0},
        {"row": "jaxgan bfloat16 rbg", "precision": "bfloat16", "steps": 40, "seconds": 1.0},
    ]
    done = {r["row"]: r for r in benchmark.finish(rows, 100)}
    assert done["torch eager"]["jaxgan_lead"] == 15.0  # 30 steps/s over 2
    assert done["torch compile bf16 autocast"]["jaxgan_lead"] == 8.0  # 40 over 5
    assert done["torch compile bf16 autocast"]["x_eager"] == 2.5
    assert done["jaxgan bfloat16 rbg"]["x_eager"] == 20.0 and "jaxgan_lead" not in done["jaxgan bfloat16 rbg"]
    assert set(done["torch reduce-overhead (CUDA graphs)"]) == {"row", "precision", "skipped"}


@functools.cache
def compiled_row(**choice) -> dict:
    """compile_jax's row of a JaxRow(**choice), its epoch of 2 steps compiled once for the tests that read it.

    Precision "default": the program scripts/profile_epoch.py compiles at the same size (a cache hit there)."""
    row = benchmark.compile_jax(data.load("train", subset=100).flat_NxD, 50, "default", benchmark.JaxRow(**choice))
    return {k: v for k, v in row.items() if k != "_run"}


@pytest.mark.parametrize(
    "choice, option_row, saving",
    [
        ({"d_passes": "one"}, "jaxgan float32 threefry2x32 one-d-pass", "step_kernels"),
        ({"dropout_bits": 8}, "jaxgan float32 threefry2x32 8-bit dropout", "xla_bytes_per_step"),
    ],
    ids=["one-d-pass: fewer kernels", "8-bit dropout: fewer bytes"],
)
def test_bench_gives_a_jaxgan_row_for_each_choice_of_a_speed_option_with_what_it_saves(choice, option_row, saving):
    article, option = compiled_row(), compiled_row(**choice)
    assert (article["row"], option["row"]) == ("jaxgan float32 threefry2x32", option_row)
    assert option[saving] < article[saving]
    # The same products over the same rows: XLA's FLOPs per step agree (the dropout draws differ in size only).
    assert option["xla_flops_per_step"] == pytest.approx(article["xla_flops_per_step"], rel=0.02)


def test_bench_names_a_row_for_each_d_pass_count_and_dense_and_a_pallas_row_fails_alone(monkeypatch, capsys):
    assert benchmark.JaxRow("float32", "rbg").name == "jaxgan float32 rbg"  # the defaults: the names as before
    assert benchmark.JaxRow("bfloat16", "rbg", "one", "pallas", 8).name == "jaxgan bfloat16 rbg one-d-pass pallas 8-bit dropout"

    def compile_jax(images_NxD, batch_size, precision, variant):
        if variant.dense == "pallas" and variant.d_passes == "one":
            raise RuntimeError("cannot lower\nmore")
        return {"row": variant.name, "precision": variant.dtype}

    monkeypatch.setattr(benchmark, "compile_jax", compile_jax)
    # --compile-only's flags (the script's defaults for the rest): it never runs the script again.
    args = argparse.Namespace(
        batch_size=50,
        images=100,
        precision="highest",
        jax=["float32"],
        prng=["threefry2x32"],
        d_passes=["two", "one"],
        dense=["xla", "pallas"],
        dropout_bits=[32],
        unroll=[1],
        cache_dir=None,
        compile_only=True,
    )
    assert benchmark.run(args, [], str(ROOT / "scripts" / "bench.py")) == 0
    rows = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [r["row"] for r in rows] == [
        "jaxgan float32 threefry2x32",
        "jaxgan float32 threefry2x32 pallas",
        "jaxgan float32 threefry2x32 one-d-pass",
        "jaxgan float32 threefry2x32 one-d-pass pallas",
    ]
    assert rows[-1]["skipped"] == "failed here (RuntimeError: cannot lower)" and "skipped" not in rows[1]


@functools.cache
def rolled_epoch():
    """A small GAN, 4 steps of its images, its rolled epoch (run once for both unrolls below) and that program's text."""
    from jaxgan import epochs

    # One hidden layer each: every unrolled step is another copy of the step for XLA to compile.
    gan = make_gan(Config(batch_size=32, g_features=(32,), d_features=(32,), latent_dim=8))
    images = jax.numpy.asarray(data.load("train", subset=4 * 32).flat_NxD)
    # One GAN for every state: one entry in jit's cache for the rolled epoch, one for each unroll;
    # the state drawn as one compiled program (op by op it is dozens of small ones).
    fresh = lambda: init_train_state(gan, 0)
    return fresh, images, epochs.run(fresh(), images, 32), epochs.run.lower(fresh(), images, 32).as_text()


# 4 steps: unroll 2 is a loop of 2 iterations of 2 steps; unroll 3 one iteration of 3 steps and a remainder of 1.
@pytest.mark.parametrize("unroll", [2, 3], ids=["2 divides 4 steps", "3 leaves a remainder"])
def test_an_unrolled_epoch_trains_like_the_rolled_one(unroll):
    import numpy as np

    from jaxgan import epochs

    fresh, images, rolled, rolled_text = rolled_epoch()
    unrolled = epochs.run(fresh(), images, 32, unroll=unroll)
    assert unrolled[1]["d_loss"].shape == (4,)
    for a, b in zip(
        jax.tree.leaves((rolled[0].g_params, rolled[0].d_params, rolled[0].step, rolled[1])),
        jax.tree.leaves((unrolled[0].g_params, unrolled[0].d_params, unrolled[0].step, unrolled[1])),
        strict=True,
    ):
        # The same operations in the same order; XLA may fuse across the unrolled steps: float32 round-off at most.
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    # The option reaches the program: the loop's body holds `unroll` steps.
    assert epochs.run.lower(fresh(), images, 32, unroll=unroll).as_text() != rolled_text


def test_bench_times_each_xla_flag_set_in_a_process_of_its_own_and_each_unroll():
    # The flags --xla-flags passes on to scripts/bench.py in the other process.
    args = argparse.Namespace(
        batch_size=50,
        images=200,
        steps=2,
        precision="highest",
        jax=["float32"],
        prng=["threefry2x32"],
        d_passes=["two"],
        dense=["xla"],
        dropout_bits=[32],
        unroll=[1, 2],
    )
    variants = [benchmark.JaxRow(unroll=u) for u in args.unroll]
    images_NxD = data.load("train", subset=200).flat_NxD
    rows = [benchmark.bench_jax(images_NxD, 50, 2, "highest", v) for v in variants]
    for flags in ("min-graph-size-1", "xla_no_such_flag=1"):
        rows += benchmark.with_xla_flags(args, flags, variants, str(ROOT / "scripts" / "bench.py"))
    rows = {r["row"]: r for r in benchmark.finish(rows, 50)}
    base = "jaxgan float32 threefry2x32"
    assert list(rows) == [
        base,
        f"{base} unroll 2",
        f"{base} [min-graph-size-1]",
        f"{base} unroll 2 [min-graph-size-1]",
        f"{base} [xla_no_such_flag=1]",
        f"{base} unroll 2 [xla_no_such_flag=1]",
    ]
    flagged = rows[f"{base} [min-graph-size-1]"]
    assert flagged["xla_flags"].endswith("--xla_gpu_graph_min_graph_size=1") and flagged["steps"] == 4 and flagged["steps_per_s"] > 0
    # A GPU flag leaves the CPU's program alone: the other process trained the same epoch of 4 steps to the same loss.
    assert flagged["final_d_loss"] == rows[base]["final_d_loss"]
    unrolled = rows[f"{base} unroll 2"]
    assert unrolled["final_d_loss"] == pytest.approx(rows[base]["final_d_loss"], rel=1e-5)
    # Two steps in each of the loop's 2 iterations, XLA's counts per step: the same step's work (fusions may merge across the two).
    assert unrolled["xla_flops_per_step"] == pytest.approx(rows[base]["xla_flops_per_step"], rel=0.01)
    assert 0.8 * rows[base]["step_kernels"] <= unrolled["step_kernels"] <= rows[base]["step_kernels"]
    assert rows[f"{base} [xla_no_such_flag=1]"]["skipped"] == "failed here (Unknown flag in XLA_FLAGS: --xla_no_such_flag=1)"


def test_bench_refuses_an_xla_flag_set_it_does_not_know_and_an_unroll_that_splits_a_step_in_one_sentence(capsys):
    with pytest.raises(argparse.ArgumentTypeError, match="'command-buffers-please' is neither a flag set \\(no-command-buffers, "):
        benchmark.xla_flag_set("command-buffers-please")
    args = argparse.Namespace(batch_size=50, images=150, unroll=[1, 2])
    assert benchmark.run(args, [], str(ROOT / "scripts" / "bench.py")) == 2
    assert capsys.readouterr().err == "error: --unroll 2 does not divide an epoch's 3 steps; choose a divisor.\n"


def test_profile_epoch_writes_the_program_a_trace_and_the_busiest_operations(tmp_path):
    import tarfile

    argv = ["--out", str(tmp_path), "--dtype", "float32", "--batch-size", "50", "--images", "100", "--epochs", "2", "--top", "5"]
    assert load_script("profile_epoch").main(argv) == 0
    hlo = (tmp_path / "epoch_hlo.txt").read_text()
    assert hlo.startswith("HloModule jit_run") and "while" in hlo  # the scanned epoch, optimised
    with tarfile.open(tmp_path / "trace.tar.gz") as tar:
        assert any(name.endswith(".xplane.pb") for name in tar.getnames())
    table = (tmp_path / "kernels.md").read_text().splitlines()
    assert "4 steps traced" in table[0] and table[2] == "| operation | ms a step | calls a step | share |"
    ops = [line.split(" | ") for line in table[4:]]
    assert len(ops) == 5 and all(float(ms) > 0 for _, ms, _, _ in ops)
    shares = [float(share.rstrip("% |")) for *_, share in ops]
    assert shares == sorted(shares, reverse=True) and sum(shares) <= 100 + 0.05 * len(shares)  # of all operations, rounded
    all_ms = float(table[0].split("ms a step in all")[0].split(": ")[-1])
    assert sum(float(ms) for _, ms, _, _ in ops) <= all_ms * 1.001
    assert "ThunkExecutor" not in "".join(table) and "end: " not in "".join(table)


def test_profile_epoch_refuses_a_batch_larger_than_the_images(tmp_path, capsys):
    assert load_script("profile_epoch").main(["--out", str(tmp_path / "p"), "--batch-size", "200", "--images", "100"]) == 2
    assert capsys.readouterr().err == "error: need 1 <= --batch-size (200) <= --images (100) and --epochs >= 1.\n"
    assert not (tmp_path / "p").exists()
