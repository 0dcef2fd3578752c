"""Profile jaxgan's compiled epoch (the article's step under lax.scan): where a step's time goes.

Writes to --out: epoch_hlo.txt (the optimised program, `jit(...).lower(...).compile().as_text()`),
trace.tar.gz (a JAX profiler trace of --epochs calls after a warm-up call; open its .xplane.pb in
TensorBoard's profile plugin or XProf) and kernels.md (the trace's operations on the device, busiest
first: time, calls, share). XLA:GPU leaves its command buffers (CUDA graphs) off while profiling
(--xla_enable_command_buffers_during_profiling), so the trace shows each kernel on its own.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tarfile
import tempfile
from pathlib import Path


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="folder for epoch_hlo.txt, trace.tar.gz and kernels.md")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="bfloat16", help="matrix-product dtype (train_jax.py's --dtype)")
    p.add_argument("--one-d-pass", action="store_true", help="one D pass over both batches stacked (train_jax.py's --one-d-pass)")
    p.add_argument("--batch-size", type=int, default=6000, help="images per step (the article: 6000)")
    p.add_argument("--images", type=int, default=60_000, help="training images (an epoch is images // batch-size steps)")
    p.add_argument("--epochs", type=int, default=3, help="epoch calls traced")
    p.add_argument("--top", type=int, default=25, help="operations listed in kernels.md")
    return p.parse_args(argv)


def busiest(xplane: Path, top: int) -> tuple[str, float, list[tuple[str, float, int]]]:
    """(plane, seconds of all operations, [(operation, seconds, calls)] of the `top` busiest): the device's
    "XLA Ops" line of the trace (each operation of the program as it ran), or on a CPU the host threads
    that ran XLA's kernels."""
    from jax.profiler import ProfileData

    planes = list(ProfileData.from_file(str(xplane)).planes)
    device = [p for p in planes if p.name.startswith("/device:") and any(True for _ in p.lines)]
    if device:
        plane, lines = device[0], [line for line in device[0].lines if line.name == "XLA Ops"] or list(device[0].lines)
    else:
        plane = next(p for p in planes if p.name == "/host:CPU")
        lines = [line for line in plane.lines if line.name.startswith("tf_XLA")]
    seconds, calls = collections.Counter(), collections.Counter()
    for line in lines:
        for event in line.events:
            # A CPU's bookkeeping around the kernels, and the closing halves of its asynchronous ones.
            if not event.name.startswith(("ThreadpoolListener", "ThunkExecutor", "end: ")):
                seconds[event.name] += event.duration_ns / 1e9
                calls[event.name] += 1
    return plane.name, sum(seconds.values()), [(name, s, calls[name]) for name, s in seconds.most_common(top)]


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.batch_size < 1 or args.batch_size > args.images or args.epochs < 1:
        print(f"error: need 1 <= --batch-size ({args.batch_size}) <= --images ({args.images}) and --epochs >= 1.", file=sys.stderr)
        return 2
    import jax

    from gancore import data
    from gancore.config import Config
    from jaxgan import xla_stats
    from jaxgan.build import make_gan
    from jaxgan.epochs import run as train_epoch
    from jaxgan.step import init_train_state

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config = Config(batch_size=args.batch_size, one_d_pass=args.one_d_pass)
    state = init_train_state(make_gan(config, dtype=None if args.dtype == "float32" else args.dtype), 0)  # one program, not dozens
    images = jax.device_put(data.load("train", subset=args.images).flat_NxD)
    compiled = train_epoch.lower(state, images, args.batch_size).compile()
    (out / "epoch_hlo.txt").write_text(compiled.as_text())
    state, _ = jax.block_until_ready(compiled(state, images))  # warm-up
    with tempfile.TemporaryDirectory(prefix="jaxgan_trace_") as trace:
        with jax.profiler.trace(trace):
            for _ in range(args.epochs):
                state, metrics = compiled(state, images)
            jax.block_until_ready((state, metrics))
        with tarfile.open(out / "trace.tar.gz", "w:gz") as tar:
            tar.add(trace, arcname="trace")
        plane, total, ops = busiest(next(Path(trace).rglob("*.xplane.pb")), args.top)
    steps = args.epochs * (args.images // args.batch_size)
    stats = xla_stats.hlo_ops(compiled.as_text())
    lines = [
        f"{jax.devices()[0].device_kind}, {args.dtype}{' --one-d-pass' * args.one_d_pass}, batch {args.batch_size}, {steps} steps traced; "
        f"the program: {stats['fusions']} fusions, {stats['step_kernels']} kernels a step. Operations on {plane}: "
        f"{total / steps * 1e3:.3f} ms a step in all; the {len(ops)} busiest:",
        "",
        "| operation | ms a step | calls a step | share |",
        "|---|---|---|---|",
    ]
    lines += [f"| {name} | {s / steps * 1e3:.4f} | {n / steps:.1f} | {s / total:.1%} |" for name, s, n in ops]
    (out / "kernels.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
