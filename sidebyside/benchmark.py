"""scripts/bench.py's insides: the jaxgan rows (compiled epoch, XLA's analysis), the PyTorch rows
(torch_baseline.bench), the warm compile and the --xla-flags rows, each in a fresh process of the script,
and the table. The script parses the flags and calls `run`."""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

from gancore import data, runs
from gancore.config import Config
from gancore.flops import step_flops
from jaxgan import compile_cache, xla_stats
from torch_baseline.bench import TORCH_ROWS, bench_torch

JAX_VARIANTS = ("float32", "bfloat16")

# --xla-flags by name (flag names as in jaxlib 0.10's XLA; GPU flags, accepted and idle on a CPU).
XLA_FLAG_SETS = {
    # XLA:GPU records runs of fusions and library calls into command buffers (CUDA graphs) by default: none.
    "no-command-buffers": "--xla_gpu_enable_command_buffer=",
    # The scan's while loop (and conditionals) recorded too: the whole epoch can become one CUDA graph.
    "command-buffer-while": "--xla_gpu_enable_command_buffer=+WHILE,+CONDITIONAL",
    "command-buffer-while-unrolled": "--xla_gpu_enable_command_buffer=+WHILE,+CONDITIONAL --xla_gpu_command_buffer_unroll_loops=true",
    # Record even the shortest runs of kernels (default: 5 or more).
    "min-graph-size-1": "--xla_gpu_graph_min_graph_size=1",
}


def xla_flag_set(text: str) -> str:
    """A name in XLA_FLAG_SETS, or flags written without their leading dashes."""
    if text not in XLA_FLAG_SETS and not all(f.startswith("xla_") for f in text.split()):
        raise argparse.ArgumentTypeError(f"{text!r} is neither a flag set ({', '.join(XLA_FLAG_SETS)}) nor flags like xla_gpu_graph_min_graph_size=1")
    return text


@dataclasses.dataclass(frozen=True)
class JaxRow:
    """One jaxgan row: the product dtype, the random-number implementation and the speed options."""

    dtype: str = "float32"
    prng: str = "threefry2x32"
    d_passes: str = "two"
    dense: str = "xla"
    dropout_bits: int = 32
    unroll: int = 1

    @property
    def name(self) -> str:
        """ "jaxgan DTYPE PRNG", then the non-default choices: " one-d-pass", " pallas", " 8-bit dropout", " unroll 2"."""
        return (
            f"jaxgan {self.dtype} {self.prng}"
            + " one-d-pass" * (self.d_passes == "one")
            + ("" if self.dense == "xla" else f" {self.dense}")
            + ("" if self.dropout_bits == 32 else f" {self.dropout_bits}-bit dropout")
            + ("" if self.unroll == 1 else f" unroll {self.unroll}")
        )

    def gan(self, batch_size: int):
        from jaxgan.build import make_gan

        config = Config(batch_size=batch_size, one_d_pass=self.d_passes == "one", dropout_bits=self.dropout_bits)
        return make_gan(config, dtype=None if self.dtype == "float32" else self.dtype, dense=self.dense)


def compile_jax(images_NxD: np.ndarray, batch_size: int, precision: str, variant: JaxRow) -> dict:
    """The jaxgan row's compiled epoch, state and images on the device, and what XLA says of the program."""
    import jax

    from jaxgan.epochs import run as train_epoch
    from jaxgan.step import init_train_state

    with jax.default_matmul_precision("highest" if precision == "highest" else None):
        # The state drawn as one compiled program (op by op it is dozens of small ones to compile).
        state = init_train_state(variant.gan(batch_size), 0, variant.prng)
        images = jax.device_put(images_NxD)
        hits = compile_cache.cache_hits()
        start = time.perf_counter()
        compiled = train_epoch.lower(state, images, batch_size, unroll=variant.unroll).compile()
        compile_s = time.perf_counter() - start
        hits = compile_cache.cache_hits() - hits
    # The loop's body holds `unroll` steps: XLA's counts of an iteration, per step.
    per_step = xla_stats.per_step_cost(compiled, len(images_NxD) // batch_size // variant.unroll)
    ops = xla_stats.hlo_ops(compiled.as_text())
    return {
        "row": variant.name,
        "precision": variant.dtype,
        "compile_s": compile_s,
        "cache_hits": hits,
        "xla_flops_per_step": per_step["flops"] / variant.unroll,
        "xla_bytes_per_step": per_step["bytes_accessed"] / variant.unroll,
        **ops,
        "step_fusions": ops["step_fusions"] / variant.unroll,
        "step_kernels": ops["step_kernels"] / variant.unroll,
        "_run": (compiled, state, images),
    }


def bench_jax(images_NxD: np.ndarray, batch_size: int, steps: int, precision: str, variant: JaxRow) -> dict:
    import jax

    row = compile_jax(images_NxD, batch_size, precision, variant)
    compiled, state, images = row.pop("_run")
    epochs = math.ceil(steps / (len(images_NxD) // batch_size))
    state, _ = jax.block_until_ready(compiled(state, images))  # warm-up epoch
    start = time.perf_counter()
    for _ in range(epochs):
        state, metrics = compiled(state, images)
    jax.block_until_ready((state, metrics))
    return {
        **row,
        "steps": epochs * len(images_NxD) // batch_size,
        "seconds": time.perf_counter() - start,
        "final_d_loss": float(metrics["d_loss"][-1]),
        "peak_mem_gb": (jax.devices()[0].memory_stats() or {}).get("peak_bytes_in_use", 0) / 1e9 or None,
    }


def warm_compile(argv: list[str], cache: str, script: str) -> dict:
    """Compile times of the jaxgan rows in a fresh process of `script` that finds them in the cache."""
    command = [sys.executable, script, *argv, "--compile-only", "--cache-dir", cache]
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    return {r["row"]: r for r in json.loads(out.stdout.strip().splitlines()[-1])}


def with_xla_flags(args: argparse.Namespace, flags: str, variants: list[JaxRow], script: str) -> list[dict]:
    """The jaxgan rows timed in a fresh process of `script` with `flags` added to XLA_FLAGS, each named "ROW [flags]";
    rows saying why when that process fails (an unknown flag aborts it)."""
    env_flags = XLA_FLAG_SETS.get(flags) or " ".join(f"--{f}" for f in flags.split())
    env = {**os.environ, "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} {env_flags}".strip()}
    with tempfile.TemporaryDirectory(prefix="jaxgan_bench_flags_") as tmp:
        # A compilation cache of its own: compile times cold (XLA:GPU keeps its autotuning results there too).
        command = [
            sys.executable,
            script,
            "--batch-size",
            str(args.batch_size),
            "--images",
            str(args.images),
            "--steps",
            str(args.steps),
            "--precision",
            args.precision,
            "--jax",
            *args.jax,
            "--prng",
            *args.prng,
            "--d-passes",
            *args.d_passes,
            "--dense",
            *args.dense,
            "--dropout-bits",
            *map(str, args.dropout_bits),
            "--unroll",
            *map(str, args.unroll),
            "--torch",
            "--no-warm",
            "--cache-dir",
            f"{tmp}/xla",
            "--json",
            f"{tmp}/rows.json",
        ]
        out = subprocess.run(command, capture_output=True, text=True, env=env)
        if out.returncode:
            lines = out.stderr.strip().splitlines() or [f"exit status {out.returncode}"]
            why = next((line for line in lines if "XLA_FLAGS" in line), lines[-1]).split("] ")[-1]  # XLA's own words, without its log prefix
            return [{"row": f"{v.name} [{flags}]", "precision": v.dtype, "skipped": f"failed here ({why[:200]})"} for v in variants]
        with open(f"{tmp}/rows.json") as f:
            rows = json.load(f)["rows"]
    return [{**r, "row": f"{r['row']} [{flags}]", "xla_flags": env["XLA_FLAGS"]} for r in rows]


def device_names(torch_rows: bool = True) -> dict:
    """The host, jax's device and, for a run with PyTorch rows, torch's (without them torch is never imported)."""
    out = {"host": platform.node(), "cpu": platform.processor() or platform.machine()}
    try:
        import jax

        out["jax"] = f"{jax.__version__} on {jax.devices()[0].device_kind}"
    except Exception as e:  # noqa: BLE001 - report, don't fail the benchmark
        out["jax"] = f"unavailable ({e})"
    if not torch_rows:
        out["torch"] = "not run (no --torch rows)"
        return out
    try:
        import torch

        out["torch"] = f"{torch.__version__} on " + (torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu")
    except Exception as e:  # noqa: BLE001 - report, don't fail the benchmark
        out["torch"] = f"unavailable ({e})"
    return out


def finish(rows: list[dict], batch_size: int) -> list[dict]:
    """Adds speeds, × eager, and jaxgan's lead over each PyTorch row at the same precision."""
    flops = step_flops(batch_size)
    ran = [r for r in rows if "skipped" not in r]
    for r in ran:
        r["steps_per_s"] = r["steps"] / r["seconds"]
        r["images_per_s"] = r["steps_per_s"] * batch_size
        r["tflops"] = r["steps_per_s"] * flops / 1e12
    eager = next((r for r in ran if r["row"] == "torch eager"), None)
    for r in ran:
        r["x_eager"] = r["steps_per_s"] / eager["steps_per_s"] if eager else None
        jax_row = next((j for j in ran if j["row"].startswith("jaxgan") and j["precision"] == r["precision"]), None)
        if r["row"].startswith("torch") and jax_row:
            r["jaxgan_lead"], r["jaxgan_row"] = jax_row["steps_per_s"] / r["steps_per_s"], jax_row["row"]
    return rows


def table(rows: list[dict]) -> str:
    fmt = lambda r, key, spec: "-" if r.get(key) is None else format(r[key], spec)
    lines = [
        "| row | steps/s | images/s | TFLOP/s | x eager | jaxgan lead | compile s | warm compile s | peak mem GB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['row']} | not run: {r['skipped']} |" + " |" * 7)
            continue
        lines.append(
            f"| {r['row']} | {r['steps_per_s']:.1f} | {r['images_per_s']:,.0f} | {r['tflops']:.3f} | {fmt(r, 'x_eager', '.2f')} | "
            f"{fmt(r, 'jaxgan_lead', '.2f')} | {fmt(r, 'compile_s', '.1f')} | {fmt(r, 'warm_compile_s', '.1f')} | {fmt(r, 'peak_mem_gb', '.2f')} |"
        )
    if jax_rows := [r for r in rows if "xla_flops_per_step" in r]:
        lines += [
            "",
            "XLA's analysis of the compiled epoch (per step; fusions and kernels: in the program, and launched per step):",
            "",
            "| row | XLA GFLOP/step | XLA GB accessed/step | fusions | kernels | fusions/step | kernels/step |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['row']} | {r['xla_flops_per_step'] / 1e9:.2f} | {r['xla_bytes_per_step'] / 1e9:.3f} | {r['fusions']} | "
            f"{r['kernels']} | {r['step_fusions']:g} | {r['step_kernels']:g} |"
            for r in jax_rows
        ]
    return "\n".join(lines)


def run(args: argparse.Namespace, argv: list[str], script: str) -> int:
    """The benchmark of scripts/bench.py's parsed `args` (`argv`, which `script` runs again for the warm compile
    and each --xla-flags set); 2 after one sentence on stderr for sizes that cannot run."""
    try:
        if args.batch_size > args.images:
            raise data.DataError(f"--batch-size {args.batch_size} is larger than --images {args.images}; choose at most {args.images}.")
        if odd := [u for u in args.unroll if (args.images // args.batch_size) % u]:
            raise data.DataError(f"--unroll {odd[0]} does not divide an epoch's {args.images // args.batch_size} steps; choose a divisor.")
        images_NxD = data.load("train", subset=args.images).flat_NxD
    except data.DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="jaxgan_bench_xla_") as fresh:
        compile_cache.enable(args.cache_dir or fresh)
        try:
            return run_rows(args, argv, images_NxD, args.cache_dir or fresh, script)
        finally:
            compile_cache.disable()


def or_failed(name: str, precision: str, run, *args) -> dict:
    """run(*args), or a row saying in one line why it failed."""
    try:
        return run(*args)
    except Exception as e:  # noqa: BLE001 - report and go on
        return {"row": name, "precision": precision, "skipped": f"failed here ({runs.first_line(e)})"}


def jax_row(run, *args) -> dict:
    """A jaxgan row (`args` end with its JaxRow); a --dense pallas row that this device cannot lower fails alone."""
    variant = args[-1]
    return run(*args) if variant.dense == "xla" else or_failed(variant.name, variant.dtype, run, *args)


def run_rows(args: argparse.Namespace, argv: list[str], images_NxD: np.ndarray, cache: str, script: str) -> int:
    variants = [JaxRow(*choice) for choice in itertools.product(args.jax, args.prng, args.d_passes, args.dense, args.dropout_bits, args.unroll)]
    if args.compile_only:
        rows = [jax_row(compile_jax, images_NxD, args.batch_size, args.precision, v) for v in variants]
        print(json.dumps([{k: v for k, v in r.items() if k != "_run"} for r in rows]))
        return 0
    rows = []
    if args.torch:  # torch loads in seconds: a run of jaxgan rows alone never imports it
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    for row in args.torch:
        if row == "article":
            rows.append(bench_torch(images_NxD, args.batch_size, args.article_steps, row, args.precision, device))
            continue
        # torch.compile needs a working toolchain: report and go on.
        rows.append(or_failed(*TORCH_ROWS[row][:2], bench_torch, images_NxD, args.batch_size, args.steps, row, args.precision, device))
    rows += [jax_row(bench_jax, images_NxD, args.batch_size, args.steps, args.precision, v) for v in variants]
    rows += [r for flags in args.xla_flags for r in with_xla_flags(args, flags, variants, script)]
    if variants and not args.no_warm:
        warm = warm_compile([a for a in argv if a != "--compile-only"], cache, script)
        for r in rows:
            if "compile_s" in warm.get(r["row"], {}):
                r["warm_compile_s"], r["warm_cache_hits"] = warm[r["row"]]["compile_s"], warm[r["row"]]["cache_hits"]
    rows = finish(rows, args.batch_size)
    result = {
        "devices": device_names(torch_rows=bool(args.torch)),
        "batch_size": args.batch_size,
        "precision": args.precision,
        "prng": args.prng,
        "d_passes": args.d_passes,
        "dense": args.dense,
        "dropout_bits": args.dropout_bits,
        "unroll": args.unroll,
        "xla_flags": {f: XLA_FLAG_SETS.get(f, f) for f in args.xla_flags},
        "flops_per_step": step_flops(args.batch_size),
        "compile_cache": args.cache_dir or "a new temporary folder",
        "rows": rows,
    }
    print(
        f"devices: {result['devices']}; batch {args.batch_size}; precision {args.precision}; "
        f"{result['flops_per_step'] / 1e9:.2f} GFLOP a step (analytic, matrix products)"
    )
    print(table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0
