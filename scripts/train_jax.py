"""Train the article's GAN with jaxgan (CPU, GPU or TPU: whatever JAX finds).

Defaults are the article's full run (2000 epochs at batch 6000); on a CPU pass
smaller flags, e.g. --epochs 30 --batch-size 100.

Trains data-parallel on every local device; on several hosts start one process
per host with --coordinator-address, --num-processes and --process-id (or the
JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID variables).
"""

from gancore import stops  # the standard library only

if __name__ == "__main__":  # first: a signal during the imports and start-up ends in one line
    stops.install()

from gancore.flags import build_parser, from_flags
from gancore.runs import run_cli
from gancore.settings import JAX


def main(argv=None) -> int:
    args = build_parser(JAX, __doc__, default_workdir="runs/jax").parse_args(argv)
    stops.watch(args.workdir)

    def train():
        config, o = from_flags(JAX, args)
        from jaxgan import compile_cache, parallel  # imports JAX: after the flags are known to be good
        from jaxgan.fit import fit

        if not o["no_compile_cache"]:
            compile_cache.enable()
        parallel.initialize(o["coordinator_address"], o["num_processes"], o["process_id"])
        dtype = None if o["dtype"] == "float32" else o["dtype"]
        return fit(config, dtype=dtype, prng_impl=o["prng"], devices=o["devices"], dense=o["dense"])

    seeds = "{workdir}/seeds.md, and a run folder a seed: {workdir}/seed_S/metrics.jsonl, samples/, losses.png"
    return run_cli(train, *[seeds] if args.seeds else [])


if __name__ == "__main__":
    stops.end(main())
