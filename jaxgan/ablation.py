"""The ablation: research variants of the article's GAN trained for the same budget, evaluated and tabulated.

Each variant (VARIANTS) is the article's configuration with a few research options changed; all train on the
same data for the same epochs and seed (with --seeds K, the K seeds as one compiled program), their final
generators are measured with jaxgan.evaluate, and the figures (mean ± sd over the seeds) go to results.json
and table.md beside the real-data floor at the same N. scripts/ablate.py is its command line.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from gancore.config import Config, ConfigError, read_recipe


def recipe_of(name: str) -> dict:
    """A recipe's settings (gancore/recipes/NAME.toml, the one definition) but its budget, which --epochs
    and --batch-size give; config.json records the recipe's name."""
    return {k: v for k, v in read_recipe(name).items() if k not in ("epochs", "batch_size")} | {"recipe": name}


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
    # Each ingredient of the recipe alone on the DCGAN, then together (issue 15).
    "dcgan-ema": ({"arch": "dcgan", "ema_decay": 0.999}, "the DCGAN, sampled from G's EMA (decay 0.999)"),
    # The two recipes (docs/research.md).
    "dcgan-conditional-ema": (recipe_of("conditional"), "the conditional recipe: the conditional DCGAN, sampled from G's EMA"),
    "dcgan-sn": ({"arch": "dcgan", "spectral_norm": True}, "the DCGAN with spectral norm on D"),
    "dcgan-r1": ({"arch": "dcgan", "r1_weight": 1.0}, "the DCGAN with the R1 penalty (gamma 1)"),
    "dcgan-lazy-r1": ({"arch": "dcgan", "r1_weight": 1.0, "r1_every": 16}, "the DCGAN with lazy R1 (gamma 1 on every 16th step, 16 times as heavy)"),
    "dcgan-ema-lazy-r1": (recipe_of("unconditional"), "the unconditional recipe: the DCGAN with lazy R1, sampled from G's EMA"),
    "dcgan-ttur": ({"arch": "dcgan", "g_lr": 1e-4, "d_lr": 4e-4}, "the DCGAN with two time-scale learning rates (G 1e-4, D 4e-4)"),
    "recipe": (
        {"arch": "dcgan", "ema_decay": 0.999, "spectral_norm": True, "g_lr": 1e-4, "d_lr": 4e-4},
        "the DCGAN with EMA, spectral norm and two time-scale learning rates",
    ),
    "recipe-conditional": (
        {"arch": "dcgan", "conditional": True, "ema_decay": 0.999, "spectral_norm": True, "g_lr": 1e-4, "d_lr": 4e-4},
        "the recipe given one-hot labels",
    ),
}
COLUMNS = ("fid", "kid", "precision", "recall", "modes", "class_accuracy", "intra_fid", "nn_features_close")
HEADINGS = ("FID ↓", "KID ↓", "precision", "recall", "modes", "class acc.", "intra-FID ↓", "near-copies")


def variant_configs(variants: str, base: Config, seeds: int, workdir: Path) -> dict[str, Config]:
    """Each of the comma-separated `variants` as `base` with its changes, in its own folder of `workdir`;
    `seeds` > 1 trains it with seeds base.seed .. base.seed + seeds - 1 as one program. ConfigError names a bad value."""
    names = [n.strip() for n in variants.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or not names:
        raise ConfigError(f"--variants: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(VARIANTS)}.")
    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}.")
    members = None if seeds == 1 else str(seeds)
    return {n: dataclasses.replace(base, seeds=members, workdir=str(workdir / n), **VARIANTS[n][0]).validate() for n in names}


def ablate(configs: dict[str, Config], workdir: Path) -> Path:
    """Trains and evaluates each variant (with `seeds`, its seeds as one program); returns `workdir`."""
    from gancore import data
    from jaxgan import evaluate

    first = next(iter(configs.values()))
    seeds = list(first.member_seeds or (first.seed,))
    reference = evaluate.test_reference(first.eval_n, first.seed)
    if not first.overwrite:  # refuse an existing variant run before training any
        for config in configs.values():
            if (Path(config.workdir) / ("config.json" if config.seeds else "metrics.jsonl")).exists():
                raise ConfigError(f"{config.workdir} already holds a run; pass --overwrite or choose another --workdir.")
    # Results of other variants measured earlier at the same N stay in the table; these replace their own.
    workdir.mkdir(parents=True, exist_ok=True)
    saved = json.loads((workdir / "results.json").read_text()) if (workdir / "results.json").exists() else {}
    budget = lambda r: (r.get("epochs"), r.get("batch_size"), r.get("subset"), r.get("seeds", [r.get("seed")]))
    same = (first.epochs, first.batch_size, first.subset, seeds)
    results = {n: r for n, r in saved.get("variants", {}).items() if saved.get("eval_n") == first.eval_n and budget(r) == same}
    # The floor: N training images (their labels as the asked-for classes) through the same evaluation.
    train = data.load("train")
    chosen = evaluate.choose(len(train), first.eval_n, first.seed)
    floor = evaluate.evaluate_samples(train.flat_NxD[chosen], reference, train.labels_N[chosen])
    floor = {k: floor.get(k) for k in COLUMNS}
    for name, config in configs.items():
        results[name] = _variant(name, config, reference)
        _write(workdir, first.eval_n, floor, results)
    print(table(json.loads((workdir / "results.json").read_text())))
    return workdir


def _variant(name: str, config: Config, reference) -> dict:
    """One variant's figures: the mean over its seeds, their sd, and each seed's own."""
    import numpy as np

    from gancore import runs
    from jaxgan import evaluate
    from jaxgan.build import gan_of_run
    from jaxgan.fit import fit, load_final_params

    seeds = list(config.member_seeds or (config.seed,))
    record = {
        "what": VARIANTS[name][1],
        "changes": VARIANTS[name][0],
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "subset": config.subset,
        "seed": config.seed,
        "seeds": seeds,
    }
    per_seed, diverged, start = [], {}, time.perf_counter()
    try:
        workdir = fit(config)
    except runs.Diverged as e:  # a variant that blows up is a result too
        print(f"{name}: diverged: {e}")
        return record | {"diverged": str(e)}
    seconds = time.perf_counter() - start
    for seed in seeds:
        run_dir = workdir / f"seed_{seed}" if config.seeds else workdir
        stopped = json.loads((run_dir / "summary.json").read_text()).get("diverged_in_epoch")
        if stopped:
            diverged[seed] = f"diverged in epoch {stopped}"
            print(f"{name}, seed {seed}: diverged in epoch {stopped}")
            continue
        gan = gan_of_run(json.loads((run_dir / "config.json").read_text()))
        final = load_final_params(run_dir)  # the EMA of G where the run kept one
        samples = evaluate.generate_jax(gan, final.get("g_ema_params", final["g_params"]), config.eval_n, seed)
        figures = evaluate.evaluate_samples(samples, reference, evaluate.sample_labels(gan.num_classes, config.eval_n))
        last = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
        per_seed.append({"seed": seed, "steps": last["step"], "train_seconds": round(seconds, 1), **{k: figures.get(k) for k in COLUMNS}})
        print(f"{name}, seed {seed}: FID {figures['fid']:.1f} after {config.epochs} epochs ({len(seeds)} seeds in {seconds:.0f} s)")
    if diverged:
        record["diverged"] = "; ".join(f"seed {s}: {e}" for s, e in diverged.items())
    if not per_seed:
        return record
    mean = lambda k: None if per_seed[0][k] is None else float(np.mean([r[k] for r in per_seed]))
    sd = lambda k: None if per_seed[0][k] is None else float(np.std([r[k] for r in per_seed], ddof=1)) if len(per_seed) > 1 else 0.0
    return {
        **record,
        "steps": per_seed[0]["steps"],
        "train_seconds": round(mean("train_seconds"), 1),
        **{k: mean(k) for k in COLUMNS},
        "sd": {k: sd(k) for k in COLUMNS},
        "per_seed": per_seed,
    }


def _write(workdir: Path, eval_n: int, floor: dict, results: dict) -> None:
    """results.json and table.md as they stand, after each variant (a later failure loses nothing)."""
    import jax

    info = {
        "device": str(jax.devices()[0]),
        "eval_n": eval_n,
        "floor": floor,
        "variants": dict(sorted(results.items(), key=lambda kv: list(VARIANTS).index(kv[0]))),
    }
    (workdir / "results.json").write_text(json.dumps(info, indent=2))
    (workdir / "table.md").write_text(table(info))


def _cell(value, sd=None, digits=3) -> str:
    if value is None:
        return ""
    text = f"{value:.{digits}f}"
    return text if not sd else f"{text} ± {sd:.{digits}f}"


def table(info: dict) -> str:
    digits = {"fid": 1, "kid": 2, "intra_fid": 1, "modes": 1}
    seeds = {len(r.get("seeds", [0])) for r in info["variants"].values()}
    spread = f"mean ± sd over {max(seeds)} seeds" if max(seeds, default=1) > 1 else "one seed"
    floor = info.get("floor", {})
    lines = [
        f"FID etc. at N = {info['eval_n']} samples against {info['eval_n']} test images, {spread}, after the same epochs, on {info['device']}. "
        f"The floor row is {info['eval_n']} training images through the same evaluation (its near-copies are 1: they are training images). "
        "near-copies: the share of samples closer (classifier features) to a training image than 99% of test images are.",
        "",
        "| variant | what | G steps | train s | " + " | ".join(HEADINGS) + " |",
        "|---|---|---|---|" + "---|" * len(HEADINGS),
    ]
    if floor:
        lines.append(f"| floor | {info['eval_n']} MNIST training images | | | " + " | ".join(_cell(floor[k], None, digits.get(k, 3)) for k in COLUMNS) + " |")
    for name, r in info["variants"].items():
        if "fid" not in r:
            lines.append(f"| {name} | {r['what']} | | | diverged |" + " |" * (len(COLUMNS) - 1))
            continue
        what = r["what"] + (f" ({r['diverged']})" if "diverged" in r else "")
        sds = r.get("sd", {})
        cells = " | ".join(_cell(r.get(k), sds.get(k), digits.get(k, 3)) for k in COLUMNS)
        lines.append(f"| {name} | {what} | {r['steps']} | {r['train_seconds']:.0f} | {cells} |")
    return "\n".join(lines) + "\n"
