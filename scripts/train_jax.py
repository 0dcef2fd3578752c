"""Train the article's GAN with jaxgan (CPU, GPU or TPU: whatever JAX finds).

Defaults are the article's full run (2000 epochs at batch 6000); on a CPU pass
smaller flags, e.g. --epochs 30 --batch-size 100.
"""

import sys

from jaxgan.config import build_parser, config_from_args
from jaxgan.runs import run_cli

PRNG_IMPLS = ("threefry2x32", "philox4x32", "rbg", "unsafe_rbg")


def main(argv=None) -> int:
    parser = build_parser(__doc__, default_workdir="runs/jax")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                        help="matrix-product dtype; params and Adam state stay float32")
    parser.add_argument("--prng", choices=PRNG_IMPLS, default="threefry2x32",
                        help="JAX random-number implementation for noise, dropout and shuffling")
    args = parser.parse_args(argv)

    def train():
        config = config_from_args(args)
        from jaxgan.fit import fit  # imports JAX: after the flags are known to be good

        return fit(config, dtype=None if args.dtype == "float32" else args.dtype, prng_impl=args.prng)

    return run_cli(train)


if __name__ == "__main__":
    sys.exit(main())
