"""--dense pallas against --dense xla: the same training steps of the article's model from the same seed.

Prints, per step, the largest difference of the step's metrics, then the largest difference of the params.
On a CPU the Pallas kernels run in interpret mode (slow: this is a correctness check, not a timing).
"""

import argparse
import sys

import jax
import numpy as np

from gancore import data
from gancore.config import Config
from jaxgan import step
from jaxgan.build import make_gan


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch-size", type=int, default=600)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    args = p.parse_args(argv)
    x_BxD = jax.numpy.asarray(data.load("train", subset=args.batch_size).flat_NxD)
    dtype = None if args.dtype == "float32" else args.dtype
    runs = {}
    for dense in ("xla", "pallas"):
        state = step.create_train_state(make_gan(Config(batch_size=args.batch_size), dtype=dtype, dense=dense), jax.random.key(0))
        metrics = []
        for _ in range(args.steps):
            state, m = step.train_step(state, x_BxD)
            metrics.append(jax.device_get(m))
        runs[dense] = (jax.device_get((state.g_params, state.d_params)), metrics)
    (params, metrics), (xla_params, xla_metrics) = runs["pallas"], runs["xla"]
    for i, (m, x) in enumerate(zip(metrics, xla_metrics), 1):
        print(f"step {i}: " + ", ".join(f"{k} {float(x[k]):.6f} (pallas - xla {float(m[k]) - float(x[k]):+.1e})" for k in sorted(x)))
    diffs = [np.abs(a - b).max() for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(xla_params))]
    print(f"params after {args.steps} steps: largest |pallas - xla| {max(diffs):.2e} (Adam's step is at most lr = 2e-4 per step)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
