"""Measure the sample quality of a finished run (jaxgan or torch_baseline) against MNIST test images.

N generated samples (noise: gancore.reporting.fixed_noise(N, latent_dim, --seed))
against N test images (all 10,000 by default): FID on the project classifier's
features, Fréchet distance on its logits, classifier score, precision/recall
(k = 3), mode coverage, KID (mean ± std over subsets), and a memorisation check:
each sample's distance to its nearest training image (classifier features and
pixels) against the same for the test images. For a conditional run also the
class accuracy and the FID within each class, averaged (intra-FID). --real
measures N training images instead (their true labels as the asked-for
classes): the floor any generator's figures should be read against, at the same
N. The memorisation check reads 100% copies there, as it should: those images
are in the training set; its yardstick is the test images' distances.
A jaxgan run trained with --ema-decay is scored with its EMA generator unless
--generator says raw (G itself) or both.
"""

import argparse
import json
import sys
import time
from pathlib import Path

from gancore import stops  # the standard library only

if __name__ == "__main__":  # first: Ctrl-C or SIGTERM at any moment ends in one line (nothing is half-written)
    stops.install()

from gancore import files
from gancore.config import UserError
from sidebyside.samples import final_samples

GRID = 60
GENERATORS = ("ema", "raw", "both")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", help="a finished run of train_jax.py or train_torch.py")
    parser.add_argument("--real", action="store_true", help="evaluate N MNIST training images instead of a generator: the floor")
    parser.add_argument("--n", type=int, default=10_000, help="samples, and test images to compare them with (at most 10000; default 10000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise and of the image subsets")
    parser.add_argument("--kid-subsets", type=int, default=100, help="KID: the number of random subsets (default 100)")
    parser.add_argument("--kid-subset-size", type=int, default=1000, help="KID: images per subset and set, at most N (default 1000; min(1000, N))")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument("--generator", choices=GENERATORS, help="ema: G's EMA; raw: G; both: each in turn (default: ema when the run kept one, else raw)")
    parser.add_argument("--grid", help=f"where the {GRID} labelled samples go (default: WORKDIR/eval_samples.png; none for --real)")
    args = parser.parse_args(argv)
    if args.real == bool(args.workdir):
        print("error: pass either --workdir DIR (a finished run) or --real.", file=sys.stderr)
        return 2
    if args.real and args.generator:
        print("error: --generator chooses a run's generator; --real has none, so leave it out.", file=sys.stderr)
        return 2
    if not 10 <= args.n <= 10_000:
        print(f"error: --n must be in [10, 10000] (the test set has 10,000 images), got {args.n}.", file=sys.stderr)
        return 2
    if not 0 <= args.seed < 2**32:
        print(f"error: --seed must be in [0, 2**32), got {args.seed}.", file=sys.stderr)
        return 2
    if args.kid_subsets < 1 or args.kid_subset_size < 2:
        print(f"error: --kid-subsets must be at least 1 and --kid-subset-size at least 2, got {args.kid_subsets} and {args.kid_subset_size}.", file=sys.stderr)
        return 2
    for flag, path, suffix in (("--json", args.json, None), ("--grid", args.grid, ".png")):
        if path and (problem := files.output_problem(flag, path, suffix)):
            print(f"error: {problem}", file=sys.stderr)
            return 2

    import jax

    from gancore import data
    from jaxgan import compile_cache, evaluate

    results, grid_samples = {}, None
    try:
        compile_cache.enable()  # a second evaluation loads the classifier's, G's and the figures' programs
        if args.real:
            train = data.load("train")
            chosen = evaluate.choose(len(train), args.n, args.seed)
            labels, generators = train.labels_N[chosen], (None,)
            source = {"source": "real", "what": f"{args.n} MNIST training images"}
        else:
            workdir = Path(args.workdir)
            config = evaluate.finished_run_config(workdir)
            labels, generators = evaluate.sample_labels(config.get("num_classes", 0), args.n), _generators(args.generator, config, workdir)
            source = {"source": str(workdir), "framework": config["framework"], "epochs": config.get("epochs")}
        for generator in generators:
            start = time.perf_counter()
            samples = train.flat_NxD[chosen] if args.real else final_samples(workdir, config, args.n, args.seed, generator)
            figures = evaluate.evaluate_samples(
                samples,
                evaluate.test_reference(args.n, args.seed),
                labels,
                kid_subsets=args.kid_subsets,
                kid_subset_size=args.kid_subset_size,
                nn_spaces=evaluate.NN_SPACES,
            )
            which = {} if generator is None else {"generator": generator}
            results[generator] = {**source, **which, **figures, "seconds": round(time.perf_counter() - start, 1), "device": str(jax.devices()[0])}
            grid_samples = samples if grid_samples is None else grid_samples
    except (UserError, evaluate.RunError) as e:  # UserError covers DataError (the classifier's weights too)
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:
        print(f"error: evaluating this run needs {e.name}, which is not installed (pip install -e '.[torch]').", file=sys.stderr)
        return 2

    grid = args.grid or (None if args.real else str(Path(args.workdir) / "eval_samples.png"))
    if grid:  # of the first generator scored (the EMA's, when there is one)
        with files.atomic_path(grid) as tmp:
            evaluate.save_labelled_grid(grid_samples[:GRID], evaluate.predict(grid_samples[:GRID]), tmp)
    for generator, result in results.items():
        _print(result, args.n, generator)
    if args.json:
        both = {"generator": "both", **results} if len(results) > 1 else next(iter(results.values()))
        files.write_text(args.json, json.dumps(both, indent=2) + "\n")
    return 0


def _generators(asked: str | None, config: dict, workdir: Path) -> tuple[str, ...]:
    """The run's generators to score: --generator's, or the EMA when the run kept one, else G."""
    has_ema = bool(config.get("ema_decay"))
    if asked in ("ema", "both") and not has_ema:
        raise UserError(f"--generator {asked}: {workdir} kept no EMA of G (it was trained without --ema-decay); use --generator raw.")
    asked = asked or ("ema" if has_ema else "raw")
    return ("ema", "raw") if asked == "both" else (asked,)


def _print(result: dict, n: int, generator: str | None) -> None:
    from jaxgan import evaluate

    if generator:
        print(f"{'generator':>16}: {generator} ({'the EMA of G' if generator == 'ema' else 'G itself'})")
    for key in ("fid", "fd_logits", "classifier_score", "precision", "recall", "mode_kl"):
        print(f"{key:>16}: {result[key]:.4f}")
    print(f"{'modes':>16}: {result['modes']} of 10")
    print(f"{'kid':>16}: {result['kid']:.5f} ± {result['kid_std']:.5f} ({result['kid_subsets']} subsets of {result['kid_subset_size']})")
    if "class_accuracy" in result:
        intra = "n/a (a class has fewer than 2 images)" if result["intra_fid"] is None else f"{result['intra_fid']:.4f}"
        print(f"{'class_accuracy':>16}: {result['class_accuracy']:.4f}")
        print(f"{'intra_fid':>16}: {intra}")
    for space in evaluate.NN_SPACES:
        print(
            f"{'nn_' + space:>16}: median {result[f'nn_{space}_median']:.3f} (test images: {result[f'nn_{space}_median_test']:.3f}); "
            f"{result[f'nn_{space}_close']:.4f} of samples closer than the test images' 1st percentile"
        )
    print(f"{'n':>16}: {result['n']} vs {n} test images, nearest of {result['nn_train_n']} training images ({result['seconds']} s)")


if __name__ == "__main__":
    stops.end(main())
