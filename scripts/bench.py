"""Benchmark one training step of the article's GAN: jaxgan against PyTorch, in one run.

Rows (each times the same step: one D update and one G update at --batch-size):
  jaxgan                 a whole epoch per compiled call (lax.scan), data on the device as uint8 (+ --one-d-pass;
                         --dense pallas: hidden layers as Pallas kernels, jaxgan.pallas_dense; --dropout-bits;
                         --unroll: steps per iteration of the scan; --xla-flags: XLA flags such as command
                         buffers (CUDA graphs), each set in a process of its own, as XLA reads them at start-up)
  torch eager            the article's step, data resident on the device, one sync per epoch
  torch compile          the same with torch.compile on both modules
  torch reduce-overhead  torch.compile(mode="reduce-overhead"): CUDA graph trees (CUDA only)
  torch CUDA graph       the whole step captured as one CUDA graph, replayed each step (CUDA only)
  torch eager/compile bf16 autocast   bfloat16 products, float32 weights, loss and Adam
  torch article loader   the article's per-image DataLoader (a few steps)
(the PyTorch rows: torch_baseline.bench)

Reports steps/s, images/s, TFLOP/s (analytic count of the matrix products,
gancore.flops), compile s, peak device memory, speed relative to torch eager, and
jaxgan's lead over each PyTorch row at the same precision (the first jaxgan row
of float32 or bfloat16 products). jaxgan rows: XLA's cost analysis of the
compiled epoch per step, its fusions and kernels (jaxgan.xla_stats), and the
compile time in a fresh process that finds the program in JAX's persistent
compilation cache (warm). A row that cannot run here says why. Timings on a
shared machine are noisy: compare ratios within one run.
"""

from __future__ import annotations

import argparse
import sys

from gancore.config import DROPOUT_BITS
from gancore.framework_settings import DENSE, PRNG_IMPLS
from sidebyside import benchmark
from sidebyside.benchmark import JAX_VARIANTS, XLA_FLAG_SETS, xla_flag_set
from torch_baseline.bench import TORCH_ROWS


def positive_int(text: str) -> int:
    if (value := int(text)) < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch-size", type=positive_int, default=6000, help="images per step (the article: 6000)")
    p.add_argument("--images", type=positive_int, default=60_000, help="training images used (an epoch is images // batch-size steps)")
    p.add_argument("--steps", type=positive_int, default=500, help="timed steps per row (rounded up to whole epochs for jaxgan)")
    p.add_argument("--article-steps", type=positive_int, default=5, help="timed steps of the article's DataLoader loop (slow)")
    p.add_argument(
        "--precision",
        choices=("highest", "default"),
        default="highest",
        help="highest: full float32 products in both frameworks; default: each framework's GPU default "
        "(TF32-like in JAX; TF32 switched on in PyTorch to match)",
    )
    p.add_argument("--jax", nargs="*", choices=JAX_VARIANTS, default=list(JAX_VARIANTS), help="jaxgan rows: matrix-product dtypes")
    p.add_argument(
        "--prng",
        nargs="+",
        default=["threefry2x32"],
        choices=PRNG_IMPLS,
        help="JAX random-number implementations for noise, dropout and shuffling (one jaxgan row each)",
    )
    p.add_argument(
        "--d-passes",
        nargs="+",
        choices=("two", "one"),
        default=["two"],
        help="D passes in D's update: two (the article's) or one over both batches stacked (--one-d-pass); a jaxgan row each",
    )
    p.add_argument(
        "--dense", nargs="+", default=["xla"], choices=DENSE, help="how jaxgan's hidden layers run (one jaxgan row each; pallas: interpret mode on a CPU, slow)"
    )
    p.add_argument(
        "--dropout-bits",
        nargs="+",
        type=int,
        default=[32],
        choices=DROPOUT_BITS,
        help="random bits per dropout decision in D (--dropout-bits of train_jax.py); a jaxgan row each",
    )
    p.add_argument("--unroll", nargs="+", type=positive_int, default=[1], help="steps per iteration of the epoch's lax.scan; a jaxgan row each")
    p.add_argument(
        "--xla-flags",
        nargs="+",
        type=xla_flag_set,
        default=[],
        help=f"XLA flag sets, each a name ({', '.join(XLA_FLAG_SETS)}) or flags without their dashes "
        "('xla_gpu_graph_min_graph_size=2 ...'): every jaxgan row again in a process with these XLA_FLAGS",
    )
    p.add_argument("--torch", nargs="*", choices=list(TORCH_ROWS), default=list(TORCH_ROWS), help="PyTorch rows")
    p.add_argument("--cache-dir", default=None, help="JAX's compilation cache for the cold and warm compile times (default: a new empty folder)")
    p.add_argument("--no-warm", action="store_true", help="skip the warm compile (a second process using the cache)")
    p.add_argument("--compile-only", action="store_true", help="only compile the jaxgan rows and print their compile times and XLA's analysis as JSON")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    return p.parse_args(argv)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # The script's own path: the warm compile and each --xla-flags set run it again in a fresh process.
    return benchmark.run(parse_args(argv), argv, __file__)


if __name__ == "__main__":
    sys.exit(main())
