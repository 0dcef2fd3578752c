"""Train the article's GAN with jaxgan (CPU, GPU or TPU: whatever JAX finds).

Defaults are the article's full run (2000 epochs at batch 6000); on a CPU pass
smaller flags, e.g. --epochs 20 --batch-size 100.
"""

import sys

from jaxgan.config import ConfigError, build_parser, config_from_args
from jaxgan.data import DataError


def main(argv=None) -> int:
    parser = build_parser(__doc__, default_workdir="runs/jax")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                        help="matrix-product dtype; params and Adam state stay float32")
    parser.add_argument("--prng", choices=("threefry2x32", "philox4x32", "rbg", "unsafe_rbg"), default="threefry2x32",
                        help="JAX random-number implementation for noise, dropout and shuffling")
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
        from jaxgan.fit import fit  # imports JAX: after the flags are known to be good

        workdir = fit(config, dtype=None if args.dtype == "float32" else args.dtype, prng_impl=args.prng)
    except (ConfigError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"done: {workdir}/metrics.jsonl, {workdir}/samples/, {workdir}/losses.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
