"""Train research variants for the same budget and tabulate their sample quality.

Each variant is the article's configuration with a few research options changed
(see VARIANTS); all train on the same data for the same number of epochs and
seed, then their final generators are measured with the project's evaluation
(jaxgan.evaluate: FID and the rest at --eval-n samples). Writes, in --workdir:
one run folder per variant, results.json and table.md (README's research table).

    python scripts/ablate.py --epochs 10 --batch-size 100 --workdir runs/ablate
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from jaxgan.config import Config, ConfigError
from jaxgan.runs import run_cli

# name -> (Config changes, what it is). WGAN-GP and DCGAN use their papers' Adam betas; WGAN-GP's
# critic has no dropout (its penalty is on the gradient of one deterministic function).
VARIANTS = {
    "article": ({}, "the article: MLP, BCE, non-saturating G"),
    "lsgan": ({"d_loss": "least_squares", "g_loss": "least_squares"}, "least-squares losses (LSGAN)"),
    "hinge": ({"d_loss": "hinge", "g_loss": "hinge"}, "hinge losses"),
    "wgan-gp": (
        {"d_loss": "wasserstein", "g_loss": "wasserstein", "gp_weight": 10.0, "d_steps": 5, "beta1": 0.5, "beta2": 0.9, "dropout": 0.0},
        "Wasserstein + gradient penalty 10, 5 D steps a G step, Adam(0.5, 0.9), no dropout",
    ),
    "conditional": ({"conditional": True}, "the article's GAN given one-hot labels"),
    "wgan-gp-conditional": (
        {"conditional": True, "d_loss": "wasserstein", "g_loss": "wasserstein", "gp_weight": 10.0, "d_steps": 5, "beta1": 0.5, "beta2": 0.9, "dropout": 0.0},
        "WGAN-GP given one-hot labels",
    ),
    "dcgan": ({"arch": "dcgan"}, "DCGAN-style convolutional G and D, Adam(0.5, 0.999)"),
    "dcgan-conditional": ({"arch": "dcgan", "conditional": True}, "the DCGAN given one-hot labels"),
}
COLUMNS = ("fid", "precision", "recall", "modes", "class_accuracy")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, from: {', '.join(VARIANTS)}")
    p.add_argument("--epochs", type=int, default=10, help="the budget every variant gets")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--subset", type=int, default=None, help="train on the first N images only")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-n", type=int, default=10_000, help="samples and test images per FID")
    p.add_argument("--workdir", default="runs/ablate")
    p.add_argument("--overwrite", action="store_true", help="replace the variants' runs if --workdir holds them")
    args = p.parse_args(argv)

    def run():
        names = [n.strip() for n in args.variants.split(",") if n.strip()]
        unknown = [n for n in names if n not in VARIANTS]
        if unknown or not names:
            raise ConfigError(f"--variants: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(VARIANTS)}.")
        base = Config(
            epochs=args.epochs, batch_size=args.batch_size, subset=args.subset, seed=args.seed, eval_n=args.eval_n,
            sample_every=args.epochs, checkpoint_every=args.epochs, overwrite=args.overwrite,
        )
        configs = {n: dataclasses.replace(base, workdir=str(Path(args.workdir) / n), **VARIANTS[n][0]).validate() for n in names}
        return ablate(configs, Path(args.workdir))

    return run_cli(run, done="{workdir}/table.md, {workdir}/results.json")


def ablate(configs: dict[str, Config], workdir: Path) -> Path:
    from jaxgan import evaluate, runs
    from jaxgan.fit import fit, load_final_params
    from jaxgan.build import gan_of_run

    first = next(iter(configs.values()))
    reference = evaluate.test_reference(first.eval_n, first.seed)
    if not first.overwrite:  # refuse an existing variant run before training any
        for config in configs.values():
            if (Path(config.workdir) / "metrics.jsonl").exists():
                raise ConfigError(f"{config.workdir} already holds a run; pass --overwrite or choose another --workdir.")
    # Results of other variants measured earlier at the same N stay in the table; these replace their own.
    workdir.mkdir(parents=True, exist_ok=True)
    saved = json.loads((workdir / "results.json").read_text()) if (workdir / "results.json").exists() else {}
    budget = lambda r: (r.get("epochs"), r.get("batch_size"), r.get("subset"), r.get("seed"))  # noqa: E731
    same = (first.epochs, first.batch_size, first.subset, first.seed)
    results = {n: r for n, r in saved.get("variants", {}).items() if saved.get("eval_n") == first.eval_n and budget(r) == same}
    for name, config in configs.items():
        start = time.perf_counter()
        try:
            run_dir = fit(config)
        except runs.Diverged as e:  # a variant that blows up is a result too
            results[name] = {
                "what": VARIANTS[name][1], "changes": VARIANTS[name][0], "epochs": config.epochs, "batch_size": config.batch_size,
                "subset": config.subset, "seed": config.seed, "diverged": str(e),
            }
            print(f"{name}: diverged: {e}")
            _write(workdir, first.eval_n, results)
            continue
        seconds = time.perf_counter() - start
        gan = gan_of_run(json.loads((run_dir / "config.json").read_text()))
        samples = evaluate.generate_jax(gan, load_final_params(run_dir)["g_params"], config.eval_n, config.seed)
        figures = evaluate.evaluate_samples(samples, reference, evaluate.sample_labels(gan.num_classes, config.eval_n))
        last = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
        results[name] = {
            "what": VARIANTS[name][1], "changes": VARIANTS[name][0], "epochs": config.epochs, "batch_size": config.batch_size,
            "subset": config.subset, "seed": config.seed, "steps": last["step"],
            "train_seconds": round(seconds, 1), **{k: figures.get(k) for k in COLUMNS},
        }
        print(f"{name}: FID {figures['fid']:.1f} after {config.epochs} epochs ({seconds:.0f} s)")
        _write(workdir, first.eval_n, results)
    print(table(json.loads((workdir / "results.json").read_text())))
    return workdir


def _write(workdir: Path, eval_n: int, results: dict) -> None:
    """results.json and table.md as they stand, after each variant (a later failure loses nothing)."""
    import jax

    info = {"device": str(jax.devices()[0]), "eval_n": eval_n, "variants": dict(sorted(results.items(), key=lambda kv: list(VARIANTS).index(kv[0])))}
    (workdir / "results.json").write_text(json.dumps(info, indent=2))
    (workdir / "table.md").write_text(table(info))


def table(info: dict) -> str:
    lines = [
        f"FID etc. at N={info['eval_n']} after the same epochs, on {info['device']}",
        "",
        "| variant | what | G steps | train s | FID ↓ | precision | recall | modes | class acc. |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in info["variants"].items():
        if "diverged" in r:
            lines.append(f"| {name} | {r['what']} | | | diverged | | | | |")
            continue
        acc = "" if r["class_accuracy"] is None else f"{r['class_accuracy']:.3f}"
        lines.append(
            f"| {name} | {r['what']} | {r['steps']} | {r['train_seconds']:.0f} | {r['fid']:.1f} | "
            f"{r['precision']:.3f} | {r['recall']:.3f} | {r['modes']} | {acc} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
