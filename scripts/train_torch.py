"""Train the article's GAN with its own PyTorch code, made runnable (torch_baseline).

Same flags and outputs as scripts/train_jax.py; defaults are the article's full
run (2000 epochs at batch 6000 through its per-image DataLoader).
"""

import sys

from jaxgan.config import ConfigError, build_parser, config_from_args
from jaxgan.runs import run_cli


def main(argv=None) -> int:
    parser = build_parser(__doc__, default_workdir="runs/torch")
    parser.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda (default: cuda if available)")
    parser.add_argument("--loader", choices=("article", "device"), default="article",
                        help="article: its per-image transform through a DataLoader; device: data resident on the device")
    args = parser.parse_args(argv)

    def train():
        config = config_from_args(args)
        if config.eval_every:
            # The classifier runs in JAX, which torch_baseline must not import.
            raise ConfigError("--eval-every is for train_jax.py only; measure a torch run's final generator with scripts/evaluate.py.")
        from torch_baseline.train import fit, resolve_device

        device = resolve_device(args.device)
        return fit(config, device=device, loader=args.loader)

    return run_cli(train)


if __name__ == "__main__":
    sys.exit(main())
