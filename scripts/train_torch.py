"""Train the article's GAN with its own PyTorch code, made runnable (torch_baseline).

train_jax.py's flags but the research options, which it refuses, and the same
outputs; defaults are the article's full
run (2000 epochs at batch 6000 through its per-image DataLoader).
"""

from gancore import stops  # the standard library only

if __name__ == "__main__":  # first: a signal during the imports and start-up ends in one line
    stops.install()

from gancore.flags import build_parser, from_flags
from gancore.runs import run_cli
from gancore.settings import TORCH


def main(argv=None) -> int:
    args = build_parser(TORCH, __doc__, default_workdir="runs/torch").parse_args(argv)
    stops.watch(args.workdir)

    def train():
        config, o = from_flags(TORCH, args)
        from torch_baseline.train import fit, resolve_device

        return fit(config, device=resolve_device(o["device"]), loader=o["loader"])

    return run_cli(train)


if __name__ == "__main__":
    stops.end(main())
