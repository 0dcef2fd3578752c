"""Benchmark one training step of the article's GAN: jaxgan against PyTorch, in one run.

Rows (each times the same step: one D update and one G update at --batch-size):
  jaxgan            a whole epoch per compiled call (lax.scan), data on the device as uint8
  torch eager       the article's step, data resident on the device, one sync per epoch
  torch compile     the same with torch.compile on both modules (where it works)
  article loader    the article's per-image transforms through a DataLoader (a few steps)

Reports steps/s, images/s, achieved TFLOP/s (analytic count of the matrix
products, jaxgan.flops), compile seconds and peak device memory, and each row's
speed relative to torch eager. Timings on a shared machine are noisy: compare
the ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time

import numpy as np

from jaxgan import data
from jaxgan.config import Config
from jaxgan.flops import step_flops

JAX_VARIANTS = ("float32", "bfloat16")
PRNG_IMPLS = ("threefry2x32", "philox4x32", "rbg", "unsafe_rbg")
TORCH_ROWS = ("eager", "compile", "article")


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch-size", type=positive_int, default=6000, help="images per step (the article: 6000)")
    p.add_argument("--images", type=positive_int, default=60_000, help="training images used (an epoch is images // batch-size steps)")
    p.add_argument("--steps", type=positive_int, default=500, help="timed steps per row (rounded up to whole epochs for jaxgan)")
    p.add_argument("--article-steps", type=positive_int, default=5, help="timed steps of the article's DataLoader loop (slow)")
    p.add_argument("--precision", choices=("highest", "default"), default="highest",
                   help="highest: full float32 products in both frameworks; default: each framework's GPU default "
                        "(TF32-like in JAX; TF32 switched on in PyTorch to match)")
    p.add_argument("--jax", nargs="*", choices=JAX_VARIANTS, default=list(JAX_VARIANTS), help="jaxgan rows: matrix-product dtypes")
    p.add_argument("--prng", nargs="+", default=["threefry2x32"], choices=PRNG_IMPLS,
                   help="JAX random-number implementations for noise, dropout and shuffling (one jaxgan row each)")
    p.add_argument("--torch", nargs="*", choices=TORCH_ROWS, default=list(TORCH_ROWS), help="PyTorch rows")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    return p.parse_args(argv)




def bench_jax(images_NxD: np.ndarray, batch_size: int, steps: int, dtype: str, precision: str, prng: str) -> dict:
    import jax

    from jaxgan.build import make_gan
    from jaxgan.epochs import run as train_epoch
    from jaxgan.step import create_train_state

    config = Config(batch_size=batch_size)
    steps_per_epoch = len(images_NxD) // batch_size
    epochs = math.ceil(steps / steps_per_epoch)
    with jax.default_matmul_precision("highest" if precision == "highest" else None):
        gan = make_gan(config, dtype=None if dtype == "float32" else dtype)
        state = create_train_state(gan, jax.random.key(0, impl=prng))
        images = jax.device_put(images_NxD)
        start = time.perf_counter()
        compiled = train_epoch.lower(state, images, batch_size).compile()
        compile_s = time.perf_counter() - start
        state, metrics = compiled(state, images)  # warm-up epoch
        jax.block_until_ready(metrics)
        start = time.perf_counter()
        for _ in range(epochs):
            state, metrics = compiled(state, images)
        jax.block_until_ready((state, metrics))
        seconds = time.perf_counter() - start
    stats = jax.devices()[0].memory_stats() or {}
    return {
        "row": f"jaxgan {dtype} {prng}",
        "steps": epochs * steps_per_epoch,
        "seconds": seconds,
        "compile_s": compile_s,
        "peak_mem_gb": stats.get("peak_bytes_in_use", 0) / 1e9 or None,
        "final_d_loss": float(metrics["d_loss"][-1]),
    }


def bench_torch(images_NxD: np.ndarray, batch_size: int, steps: int, row: str, precision: str, device: str) -> dict:
    import torch

    from torch_baseline import train as tb

    torch.backends.cuda.matmul.allow_tf32 = precision == "default"
    torch.manual_seed(0)
    config = Config(batch_size=batch_size)
    G, D, g_optim, d_optim = tb.build(config, images_NxD.shape[1], device)
    compile_s = None
    if row == "compile":
        G, D = torch.compile(G), torch.compile(D)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    shuffle = torch.Generator().manual_seed(0)
    if row == "article":
        batches = lambda: tb.article_batches(tb.ArticleDataset(images_NxD.reshape(-1, 28, 28), np.zeros(len(images_NxD))), batch_size, shuffle, device)  # noqa: E731
    else:
        on_device = torch.from_numpy(images_NxD).to(device)
        batches = lambda: tb.device_batches(on_device, batch_size, shuffle)  # noqa: E731

    def run(n: int) -> tuple[int, float]:
        done, last = 0, None
        while done < n:
            for x in batches():
                z_d = torch.randn(len(x), config.latent_dim, device=device)
                z_g = torch.randn(len(x), config.latent_dim, device=device)
                last = tb.train_step(G, D, g_optim, d_optim, x, z_d, z_g)["d_loss"]
                done += 1
                if done == n:
                    break
        sync()
        return done, float(last)

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    run(2)  # warm-up (and compilation)
    if row == "compile":
        compile_s = time.perf_counter() - start
    start = time.perf_counter()
    done, last = run(steps)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 1e9 if device.startswith("cuda") else None
    name = {"eager": "torch eager", "compile": "torch compile", "article": "torch article loader"}[row]
    return {"row": name, "steps": done, "seconds": seconds, "compile_s": compile_s, "peak_mem_gb": peak, "final_d_loss": last}


def device_names() -> dict:
    out = {"host": platform.node(), "cpu": platform.processor() or platform.machine()}
    try:
        import jax

        out["jax"] = f"{jax.__version__} on {jax.devices()[0].device_kind}"
    except Exception as e:  # noqa: BLE001 - report, don't fail the benchmark
        out["jax"] = f"unavailable ({e})"
    try:
        import torch

        out["torch"] = f"{torch.__version__} on " + (torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu")
    except Exception as e:  # noqa: BLE001
        out["torch"] = f"unavailable ({e})"
    return out


def finish(rows: list[dict], batch_size: int) -> list[dict]:
    flops = step_flops(batch_size)
    eager = next((r for r in rows if r["row"] == "torch eager"), None)
    for r in rows:
        r["steps_per_s"] = r["steps"] / r["seconds"]
        r["images_per_s"] = r["steps_per_s"] * batch_size
        r["tflops"] = r["steps_per_s"] * flops / 1e12
        r["x_eager"] = r["steps_per_s"] / (eager["steps"] / eager["seconds"]) if eager else None
    return rows


def table(rows: list[dict]) -> str:
    fmt = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
    lines = ["| row | steps/s | images/s | TFLOP/s | x eager | compile s | peak mem GB |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['row']} | {r['steps_per_s']:.1f} | {r['images_per_s']:,.0f} | {r['tflops']:.3f} | "
            f"{fmt(r['x_eager'], '.2f')} | {fmt(r['compile_s'], '.1f')} | {fmt(r['peak_mem_gb'], '.2f')} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.batch_size > args.images:
        print(f"error: --batch-size {args.batch_size} is larger than --images {args.images}; choose at most {args.images}.", file=sys.stderr)
        return 2
    try:
        images_NxD = data.load("train", subset=args.images).flat_NxD
    except data.DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    rows = []
    for row in args.torch:
        if row == "article":
            rows.append(bench_torch(images_NxD, args.batch_size, args.article_steps, row, args.precision, device))
            continue
        try:
            rows.append(bench_torch(images_NxD, args.batch_size, args.steps, row, args.precision, device))
        except Exception as e:  # noqa: BLE001 - torch.compile needs a working toolchain; report and go on
            print(f"warning: torch {row} failed here ({type(e).__name__}: {str(e).splitlines()[0][:200]}); row left out.", file=sys.stderr)
    for dtype in args.jax:
        for prng in args.prng:
            rows.append(bench_jax(images_NxD, args.batch_size, args.steps, dtype, args.precision, prng))
    rows = finish(rows, args.batch_size)
    result = {
        "devices": device_names(),
        "batch_size": args.batch_size,
        "precision": args.precision,
        "prng": args.prng,
        "flops_per_step": step_flops(args.batch_size),
        "rows": rows,
    }
    print(f"devices: {result['devices']}; batch {args.batch_size}; precision {args.precision}; "
          f"{result['flops_per_step'] / 1e9:.2f} GFLOP a step")
    print(table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
