"""Long-horizon check: are two groups of runs (e.g. jaxgan and the article's code) one distribution?

A run is its per-epoch records (metrics.jsonl: epoch, d_real, d_fake, d_loss, g_loss).
The score of a run is its *share outside*: of its figures (4 per epoch, over the
epochs compared), the fraction outside the band of the reference runs at that epoch
and figure, the band being min..max of the reference runs' values.

Leave-one-out, for both groups alike: a reference run is scored against the band of
the other R - 1 reference runs; a candidate run is scored against each of those R
leave-one-out bands and its R shares are averaged. Then every run is held against
bands of R - 1 runs, and if the two groups are one distribution (exchangeable runs)
both groups' shares have the same expectation: 2 / R per figure for a single epoch.
A one-sided Mann-Whitney U test asks whether the candidate's shares are larger.

The band test sees any difference, but weakly. A difference of one kind, such as one
trainer's D winning less over some stretch of epochs, is tested more directly by
naming the stretch before the runs are trained: `window_test` compares the runs'
means of each figure over those epochs (two-sided Mann-Whitney, Bonferroni over the
four figures). Pure NumPy (scipy for the test); no JAX, no torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gancore import reporting
from gancore.config import UserError

FIGURES = ("d_real", "d_fake", "d_loss", "g_loss")


def read_group(path: Path | str) -> dict[str, list[dict]]:
    """The runs under `path`: a metrics .jsonl file, a workdir holding metrics.jsonl, or a folder
    of either ({name: records}, sorted by name)."""
    path = Path(path)
    if path.is_file():
        return {path.stem: reporting.read_metrics(path)}
    if (path / "metrics.jsonl").is_file():
        return {path.name: reporting.read_metrics(path / "metrics.jsonl")}
    found = {p.stem: p for p in path.glob("*.jsonl")} | {p.parent.name: p for p in path.glob("*/metrics.jsonl")}
    if not found:
        raise UserError(f"{path} holds no runs: give a metrics .jsonl, a workdir with metrics.jsonl, or a folder of them.")
    return {name: reporting.read_metrics(found[name]) for name in sorted(found)}


def figures(runs: dict[str, list[dict]], epochs: int) -> np.ndarray:
    """values_RxExF: each run's figures for epochs 1..`epochs` (UserError when a run has fewer)."""
    out = np.empty((len(runs), epochs, len(FIGURES)))
    for r, (name, records) in enumerate(runs.items()):
        by_epoch = {rec["epoch"]: rec for rec in records}
        missing = [e for e in range(1, epochs + 1) if e not in by_epoch]
        if missing:
            raise UserError(f"run {name} has no record of epoch {missing[0]} (it holds {len(by_epoch)}); compare fewer epochs or finish the run.")
        out[r] = [[by_epoch[e][f] for f in FIGURES] for e in range(1, epochs + 1)]
    return out


def _outside(values_ExF: np.ndarray, band_RxExF: np.ndarray) -> np.ndarray:
    """outside_ExF: where `values` lie outside min..max of the band runs (NaN counts as outside)."""
    inside = (values_ExF >= band_RxExF.min(axis=0)) & (values_ExF <= band_RxExF.max(axis=0))
    return ~inside


def shares_outside(ref_RxExF: np.ndarray, cand_CxExF: np.ndarray, first_epoch: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(ref_R, cand_C): each run's share of figures outside the leave-one-out bands, over epochs
    `first_epoch`..E (see the module's docstring)."""
    if len(ref_RxExF) < 3:
        raise UserError(f"the reference group needs at least 3 runs for a leave-one-out band, got {len(ref_RxExF)}.")
    window = slice(first_epoch - 1, None)
    ref, cand = ref_RxExF[:, window], cand_CxExF[:, window]
    loo = [np.delete(ref, i, axis=0) for i in range(len(ref))]
    ref_shares = np.array([_outside(ref[i], loo[i]).mean() for i in range(len(ref))])
    cand_shares = np.array([np.mean([_outside(c, band).mean() for band in loo]) for c in cand])
    return ref_shares, cand_shares


def rank_test(ref_R: np.ndarray, cand_C: np.ndarray) -> tuple[float, float]:
    """(U, p): Mann-Whitney U of the candidate's shares against the reference's, one-sided
    (the candidate's shares larger), exact where there are no ties."""
    from scipy.stats import mannwhitneyu

    result = mannwhitneyu(cand_C, ref_R, alternative="greater")
    return float(result.statistic), float(result.pvalue)


def window_test(ref_RxExF: np.ndarray, cand_CxExF: np.ndarray, first: int, last: int, alpha: float = 0.05) -> dict:
    """Each figure's per-run mean over epochs `first`..`last`, compared between the groups:
    {figure: {"reference", "candidate" (means over runs of the runs' means), "p" (two-sided
    Mann-Whitney)}, "differ": figures with p < alpha / 4 (Bonferroni over the four)}."""
    from scipy.stats import mannwhitneyu

    if not 1 <= first <= last <= ref_RxExF.shape[1]:
        raise UserError(f"the test epochs must lie within the {ref_RxExF.shape[1]} epochs compared, first <= last; got {first}-{last}.")
    ref_RxF, cand_CxF = ref_RxExF[:, first - 1 : last].mean(axis=1), cand_CxExF[:, first - 1 : last].mean(axis=1)
    out = {"epochs": [first, last], "differ": []}
    for f, name in enumerate(FIGURES):
        p = float(mannwhitneyu(cand_CxF[:, f], ref_RxF[:, f], alternative="two-sided").pvalue)
        out[name] = {"reference": float(ref_RxF[:, f].mean()), "candidate": float(cand_CxF[:, f].mean()), "p": p}
        if p < alpha / len(FIGURES):
            out["differ"].append(name)
    return out


def window_means(values_RxExF: np.ndarray, width: int) -> list[dict]:
    """Per window of `width` epochs: each figure's mean over the window and runs, and the sd
    over runs of the runs' window means."""
    out = []
    for start in range(0, values_RxExF.shape[1], width):
        per_run_RxF = values_RxExF[:, start : start + width].mean(axis=1)
        row = {"epochs": f"{start + 1}-{min(start + width, values_RxExF.shape[1])}"}
        for f, name in enumerate(FIGURES):
            row[name] = {"mean": float(per_run_RxF[:, f].mean()), "sd": float(per_run_RxF[:, f].std(ddof=1)) if len(per_run_RxF) > 1 else 0.0}
        out.append(row)
    return out


def compare(
    reference: dict[str, list[dict]],
    candidate: dict[str, list[dict]],
    epochs: int,
    *,
    names: tuple[str, str] = ("reference", "candidate"),
    alpha: float = 0.05,
    window: int = 5,
    first_epoch: int = 1,
    test_epochs: tuple[int, int] | None = None,
) -> dict:
    """The whole check as a JSON-able dict: shares per run, the rank test, window means, the
    `window_test` over `test_epochs` (first, last) when given, and the verdict."""
    if not 1 <= first_epoch <= epochs:
        raise UserError(f"first_epoch must be between 1 and the {epochs} epochs compared, got {first_epoch}.")
    ref, cand = figures(reference, epochs), figures(candidate, epochs)
    ref_shares, cand_shares = shares_outside(ref, cand, first_epoch)
    u, p = rank_test(ref_shares, cand_shares)
    return {
        "names": list(names),
        "epochs": epochs,
        "first_epoch": first_epoch,
        "figures": list(FIGURES),
        "alpha": alpha,
        "shares": {names[0]: dict(zip(reference, ref_shares.tolist())), names[1]: dict(zip(candidate, cand_shares.tolist()))},
        "median_share": {names[0]: float(np.median(ref_shares)), names[1]: float(np.median(cand_shares))},
        "mann_whitney_u": u,
        "p_value": p,
        "same_distribution": p >= alpha,
        "windows": {names[0]: window_means(ref, window), names[1]: window_means(cand, window)},
        "window_test": None if test_epochs is None else window_test(ref, cand, *test_epochs, alpha=alpha),
    }


def verdict(report: dict) -> str:
    """The report as lines a person reads."""
    ref, cand = report["names"]
    pct = lambda shares: ", ".join(f"{100 * s:.0f}%" for s in sorted(shares.values()))
    lines = [
        f"epochs {report['first_epoch']}-{report['epochs']}, figures {', '.join(report['figures'])}; "
        f"share of each run's figures outside the leave-one-out band of the {len(report['shares'][ref])} {ref} runs:",
        f"  {ref:>16}: {pct(report['shares'][ref])} (median {100 * report['median_share'][ref]:.0f}%)",
        f"  {cand:>16}: {pct(report['shares'][cand])} (median {100 * report['median_share'][cand]:.0f}%)",
        f"Mann-Whitney U = {report['mann_whitney_u']:.1f}, one-sided p = {report['p_value']:.3f}",
        "window means (sd over runs):  " + "  ".join(FIGURES),
    ]
    for name in (ref, cand):
        for row in report["windows"][name]:
            cells = "  ".join(f"{row[f]['mean']:.3f}±{row[f]['sd']:.3f}" for f in FIGURES)
            lines.append(f"  {name:>16} {row['epochs']:>7}: {cells}")
    test = report.get("window_test")
    if test:
        first, last = test["epochs"]
        cells = ", ".join(f"{f} {test[f]['reference']:.3f} vs {test[f]['candidate']:.3f} (p = {test[f]['p']:.3f})" for f in FIGURES)
        lines.append(f"means over epochs {first}-{last}, {ref} vs {cand}: {cells}")
        differ = ", ".join(test["differ"]) or "none"
        lines.append(f"  figures that differ there (p < {report['alpha']} / {len(FIGURES)}): {differ}")
    if report["same_distribution"]:
        lines.append(f"VERDICT: {cand} lies within {ref}'s spread: no evidence they differ (p >= {report['alpha']}).")
    else:
        lines.append(f"VERDICT: {cand} lies outside {ref}'s spread more than {ref}'s own runs do (p < {report['alpha']}).")
    return "\n".join(lines)


def plot(
    reference: dict[str, list[dict]],
    candidate: dict[str, list[dict]],
    epochs: int,
    path: Path | str,
    names: tuple[str, str] = ("reference", "candidate"),
    test_epochs: tuple[int, int] | None = None,
) -> None:
    """A PNG of the four figures per epoch: each run a thin line, each group's median a thick one,
    the test epochs shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(FIGURES), figsize=(4 * len(FIGURES), 3.4), constrained_layout=True)
    epoch_E = np.arange(1, epochs + 1)
    for runs, name, color in ((reference, names[0], "tab:blue"), (candidate, names[1], "tab:orange")):
        values_RxExF = figures(runs, epochs)
        for f, ax in enumerate(axes):
            ax.plot(epoch_E, values_RxExF[:, :, f].T, color=color, lw=0.6, alpha=0.45)
            ax.plot(epoch_E, np.median(values_RxExF[:, :, f], axis=0), color=color, lw=2.2, label=f"{name} ({len(runs)} runs, median)")
    for f, ax in enumerate(axes):
        if test_epochs:
            ax.axvspan(test_epochs[0] - 0.5, test_epochs[1] + 0.5, color="0.9", zorder=0)
        ax.set_title(FIGURES[f].replace("d_real", "D(x)").replace("d_fake", "D(G(z))"))
        ax.set_xlabel("epoch")
    axes[0].legend(fontsize=8)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
