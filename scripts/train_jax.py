"""Train the article's GAN with jaxgan (CPU, GPU or TPU: whatever JAX finds).

Defaults are the article's full run (2000 epochs at batch 6000); on a CPU pass
smaller flags, e.g. --epochs 30 --batch-size 100.

Trains data-parallel on every local device; on several hosts start one process
per host with --coordinator-address, --num-processes and --process-id (or the
JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID variables).
"""

import os
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
    parser.add_argument("--devices", type=int, default=None,
                        help="train on the first N devices of this process (default: every device of every process)")
    env = os.environ.get
    parser.add_argument("--coordinator-address", default=env("JAX_COORDINATOR_ADDRESS"),
                        help="host:port of process 0, for a run of several processes ($JAX_COORDINATOR_ADDRESS)")
    parser.add_argument("--num-processes", type=int, default=_int_env("JAX_NUM_PROCESSES"),
                        help="how many processes take part, one per host ($JAX_NUM_PROCESSES)")
    parser.add_argument("--process-id", type=int, default=_int_env("JAX_PROCESS_ID"),
                        help="this process's rank, 0 to --num-processes - 1; process 0 writes the files ($JAX_PROCESS_ID)")
    args = parser.parse_args(argv)

    def train():
        config = config_from_args(args)
        from jaxgan import parallel  # imports JAX: after the flags are known to be good
        from jaxgan.fit import fit

        parallel.initialize(args.coordinator_address, args.num_processes, args.process_id)
        dtype = None if args.dtype == "float32" else args.dtype
        return fit(config, dtype=dtype, prng_impl=args.prng, devices=args.devices)

    return run_cli(train)


def _int_env(name: str) -> int | None:
    value = os.environ.get(name)
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        print(f"error: ${name} must be a whole number, got {value!r}; fix or unset it.", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    sys.exit(main())
