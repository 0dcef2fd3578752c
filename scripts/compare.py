"""Train the article's GAN with jaxgan and with torch_baseline from the same initial weights; report both side by side.

Takes the trainers' flags. Writes WORKDIR/jax/ and WORKDIR/torch/ (each run's own
files) and WORKDIR/report.md, report.json, losses.png (both curves) and
samples.png (both final grids from the same fixed noise).
"""

import sys

from gancore.flags import build_parser, from_flags
from gancore.runs import run_cli
from gancore.settings import TORCH


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # The article's flags and torch's framework flags; the research options are parsed, to be refused.
    args = build_parser(TORCH, __doc__, default_workdir="runs/compare").parse_args(argv)

    def run():
        config, options = from_flags(TORCH, args)
        from jaxgan import compile_cache  # imports JAX: after the flags are known to be good
        from sidebyside.compare import compare

        # jaxgan's side compiles at precision highest (41-60 s on a GPU): a rerun, or a compare after
        # train_jax.py at highest, loads those programs from train_jax.py's cache (JAXGAN_NO_CACHE=1: off).
        compile_cache.enable()
        return compare(config, device=options["device"], loader=options["loader"], argv=argv)

    return run_cli(run, done="{workdir}/report.md")


if __name__ == "__main__":
    sys.exit(main())
