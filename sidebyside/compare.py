"""Both trainers from the same initial weights, side by side: one report with numbers, curves and samples.

`compare(config)` trains the article's GAN with jaxgan and with torch_baseline from
torch's initial weights (converted), replays a few steps of both in lock-step
(`sidebyside.lockstep`) and writes WORKDIR/jax/ and WORKDIR/torch/ (each run's own
files) and WORKDIR/report.md, report.json, losses.png (both curves) and samples.png
(both final grids from the same fixed noise). scripts/compare.py is its command line.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gancore.config import Config, ConfigError

# With dropout on and their own random numbers, long runs drift apart like two
# seeds: the per-epoch seed std of the losses measured 0.06-0.10 at the sizes of
# tests/test_parity.py. The two runs' means over the epochs must differ by less than this.
CURVE_TOL = 0.2


def steady_steps_per_s(records: list[dict]) -> float:
    """Steps per second over the epochs after the first (which holds JAX's compilation), or the only one."""
    steady = records[1:] or records
    steps = steady[-1]["step"] - (records[0]["step"] if len(records) > 1 else 0)
    return steps / sum(r["seconds"] for r in steady)


def plot_both(jax_records, torch_records, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_d) = plt.subplots(1, 2, figsize=(11, 3.8))
    for records, name, style in ((jax_records, "jaxgan", "-"), (torch_records, "torch", "--")):
        epochs = [r["epoch"] for r in records]
        ax_loss.plot(epochs, [r["d_loss"] for r in records], style, color="tab:red", label=f"D loss, {name}")
        ax_loss.plot(epochs, [r["g_loss"] for r in records], style, color="tab:green", label=f"G loss, {name}")
        ax_d.plot(epochs, [r["d_real"] for r in records], style, color="tab:blue", label=f"D(x), {name}")
        ax_d.plot(epochs, [r["d_fake"] for r in records], style, color="tab:orange", label=f"D(G(z)), {name}")
    ax_loss.set_ylabel("loss")
    ax_d.set_ylim(0, 1)
    for ax in (ax_loss, ax_d):
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
    fig.suptitle("jaxgan (solid) and torch_baseline (dashed), same initial weights")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def samples_side_by_side(jax_png: Path, torch_png: Path, path: Path, epoch: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.image
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 4.8))
    for ax, png, name in zip(axes, (jax_png, torch_png), ("jaxgan", "torch_baseline")):
        ax.imshow(matplotlib.image.imread(png))
        ax.set_title(f"{name}, epoch {epoch}")
        ax.axis("off")
    fig.suptitle("the same fixed noise through both generators")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def compare(config: Config, *, device: str | None = None, loader: str = "article", argv: Sequence[str] = ()) -> Path:
    """Trains both, checks them against each other and writes the report; returns the workdir.

    `device`: torch's (default: cuda if available); `loader`: torch's data path (article or device);
    `argv`: the command line, for the report. Raises ConfigError or DataError before anything is written.
    """
    # --eval-n sets how many samples of each final generator the report measures.
    research = [flag for flag in config.non_article_options() if not flag.startswith("--eval-n")]
    if research:
        raise ConfigError(
            f"compare.py runs the article's GAN in both frameworks; {', '.join(research)} is a jaxgan option: compare variants with scripts/ablate.py."
        )
    import jax
    import torch

    from gancore import data, reporting
    from jaxgan.fit import fit as fit_jax
    from sidebyside import lockstep
    from torch_baseline import convert
    from torch_baseline.train import build, resolve_device
    from torch_baseline.train import fit as fit_torch

    device = resolve_device(device)
    train_set = data.load("train", dataset=config.dataset, data_dir=config.data_dir, digit=config.digit, subset=config.subset)
    config.check_data_size(len(train_set))
    workdir = Path(config.workdir)

    torch.manual_seed(config.seed)
    G, D, _, _ = build(config, train_set.flat_NxD.shape[1], "cpu")
    init_state_dicts = {"generator": G.state_dict(), "discriminator": D.state_dict()}
    init_params = {"g_params": convert.params_from_state_dict(G.state_dict()), "d_params": convert.params_from_state_dict(D.state_dict())}

    wall = {}
    # Both frameworks in full float32: on a GPU JAX's default matmul precision is TF32-like, torch's is not.
    with jax.default_matmul_precision("highest"):
        start = time.perf_counter()
        fit_jax(dataclasses.replace(config, workdir=str(workdir / "jax")), init_params=init_params)
        wall["jax"] = time.perf_counter() - start
        start = time.perf_counter()
        # --eval-n is the report's; torch_baseline itself evaluates nothing.
        torch_config = dataclasses.replace(config, workdir=str(workdir / "torch"), eval_n=Config().eval_n)
        fit_torch(torch_config, device=device, loader=loader, init_state_dicts=init_state_dicts)
        wall["torch"] = time.perf_counter() - start
        check = lockstep.check(config, init_params, init_state_dicts, train_set.flat_NxD, device)

    records = {fw: reporting.read_metrics(workdir / fw / "metrics.jsonl") for fw in ("jax", "torch")}
    mean_diff = {k: abs(np.mean([r[k] for r in records["jax"]]) - np.mean([r[k] for r in records["torch"]])) for k in ("d_loss", "g_loss")}
    curves_agree = all(v < CURVE_TOL for v in mean_diff.values())
    jax_device = jax.devices()[0]
    jax_name = jax_device.platform + ("" if jax_device.device_kind == jax_device.platform else f" ({jax_device.device_kind})")
    devices = {"jax": jax_name, "torch": device if device != "cuda" else f"cuda ({torch.cuda.get_device_name()})"}
    host = f"{os.cpu_count()}-core CPU"
    report = {
        "command": " ".join(["python scripts/compare.py", *argv]),
        "config": config.to_dict(),
        "loader": loader,
        "host": host,
        "device": devices,
        "precision": "float32 (highest)",
        "wall_s": {**{k: round(v, 2) for k, v in wall.items()}, "total": round(sum(wall.values()), 2)},
        "steps_per_s": {fw: round(steady_steps_per_s(records[fw]), 2) for fw in records},
        "epochs": {fw: [{k: r[k] for k in ("epoch", "step", *reporting.METRIC_KEYS, "seconds")} for r in records[fw]] for fw in records},
        "lockstep": check,
        "mean_loss_diff": {k: round(v, 4) for k, v in mean_diff.items()},
        "curve_tol": CURVE_TOL,
        "agree": check["agree"] and curves_agree,
    }
    if config.data_dir is None and config.dataset == "mnist":  # the classifier knows MNIST digits only
        from jaxgan import evaluate
        from sidebyside.samples import final_samples

        ref = evaluate.test_reference(config.eval_n, config.seed)
        report["quality"] = {
            fw: evaluate.evaluate_samples(final_samples(workdir / fw, evaluate.finished_run_config(workdir / fw), config.eval_n, config.seed), ref)
            for fw in ("jax", "torch")
        }
        report["quality_n"] = config.eval_n
    (workdir / "report.json").write_text(json.dumps(report, indent=2))
    plot_both(records["jax"], records["torch"], workdir / "losses.png")
    grids = [workdir / fw / "samples" / f"epoch_{config.epochs:04d}.png" for fw in ("jax", "torch")]
    samples_side_by_side(*grids, workdir / "samples.png", config.epochs)
    (workdir / "report.md").write_text(report_markdown(report))
    return workdir


def quality_lines(r: dict) -> list[str]:
    if "quality" not in r:
        return []
    q = r["quality"]
    rows = [
        f"| {name} | {q[fw]['fid']:.1f} | {q[fw]['classifier_score']:.2f} | {q[fw]['precision']:.3f} | "
        f"{q[fw]['recall']:.3f} | {q[fw]['modes']} | {q[fw]['mode_kl']:.3f} |"
        for fw, name in (("jax", "jaxgan"), ("torch", "torch_baseline"))
    ]
    return [
        f"Sample quality of the final generators ({r['quality_n']} samples against as many test images; "
        "scripts/evaluate.py --real gives the real-vs-real floor at the same N):",
        "",
        "| framework | FID | classifier score | precision | recall | digits covered | mode KL |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]


def report_markdown(r: dict) -> str:
    c = r["config"]
    speed = r["steps_per_s"]
    names = {"jax": "jaxgan", "torch": "torch_baseline"}
    faster = names[max(speed, key=speed.get)]
    rows = []
    for fw, name in names.items():
        first, last = r["epochs"][fw][0], r["epochs"][fw][-1]
        rows.append(
            f"| {name} | {r['device'][fw]} | {r['wall_s'][fw]:.1f} | {speed[fw]:.1f} | {first['seconds']:.2f} "
            f"| {last['d_loss']:.3f} | {last['g_loss']:.3f} | {last['d_real']:.3f} | {last['d_fake']:.3f} |"
        )
    ls = r["lockstep"]
    data_desc = "" if c["subset"] is None else f" on the first {c['subset']} images"
    data_desc += "" if c["digit"] is None else f" of digit {c['digit']}"
    data_desc += "" if c.get("dataset", "mnist") == "mnist" else f" of {c['dataset']}"
    verdict = "**The two frameworks agree.**" if r["agree"] else "**The two frameworks DISAGREE** (see below)."
    return "\n".join(
        [
            "# jaxgan vs torch_baseline",
            "",
            verdict + f" {faster} is {max(speed.values()) / min(speed.values()):.2f}x faster ({max(speed.values()):.1f} vs {min(speed.values()):.1f} steps/s).",
            "",
            f"`{r['command']}` on a {r['host']}: {c['epochs']} epochs at batch {c['batch_size']}{data_desc}, "
            f"Adam {c['lr']}, seed {c['seed']}; both from the same initial weights (torch's, converted), "
            f"each with its own noise, dropout and shuffling; torch's data loader: {r['loader']}; precision {r['precision']}.",
            "",
            "| framework | device | wall s | steps/s | first epoch s | D loss | G loss | D(x) | D(G(z)) |",
            "|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            "Steps/s leave out the first epoch (JAX compiles there); wall time includes it, loading and writing files. "
            "The last four columns are the final epoch's means.",
            "",
            f"- Lock-step check ({'agree' if ls['agree'] else 'DISAGREE'}): {ls['steps']} steps at batch {ls['batch']} from the same "
            f"weights on the same batches and noise, dropout off: the largest relative difference of the D and G losses is "
            f"{max(ls['rel_diff']):.1e} (tolerance {ls['rtol'][0]:.0e} growing {ls['rtol_growth'] - 1:.0%} a step).",
            f"- Curves ({'agree' if max(r['mean_loss_diff'].values()) < r['curve_tol'] else 'DISAGREE'}): the mean over the epochs "
            f"of the D loss differs by {r['mean_loss_diff']['d_loss']:.3f}, of the G loss by {r['mean_loss_diff']['g_loss']:.3f} "
            f"(tolerance {r['curve_tol']}: two single runs differ like two seeds).",
            "",
            *quality_lines(r),
            "![D and G losses of both frameworks](losses.png)",
            "",
            "![final samples of both frameworks from the same fixed noise](samples.png)",
            "",
        ]
    )
