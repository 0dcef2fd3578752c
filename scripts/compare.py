"""Train the article's GAN with jaxgan and with torch_baseline from the same initial weights; report both side by side.

Takes the trainers' flags. Writes WORKDIR/jax/ and WORKDIR/torch/ (each run's own
files) and WORKDIR/report.md, report.json, losses.png (both curves) and
samples.png (both final grids from the same fixed noise).
"""

import sys

from jaxgan.config import build_parser, config_from_args
from jaxgan.runs import run_cli


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(__doc__, default_workdir="runs/compare")
    parser.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda (default: cuda if available)")
    parser.add_argument("--loader", choices=("article", "device"), default="article",
                        help="torch's data path: article: its per-image transform through a DataLoader; "
                        "device: data resident on the device")
    args = parser.parse_args(argv)

    def run():
        from sidebyside.compare import compare

        return compare(config_from_args(args), device=args.device, loader=args.loader, argv=argv)

    return run_cli(run, done="{workdir}/report.md")


if __name__ == "__main__":
    sys.exit(main())
