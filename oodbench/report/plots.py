"""The pictures the paper argues with: score histograms, ROC curves, logit norm, reliability,
and the loss x detector heatmap.

matplotlib on the Agg backend, PNG at 150 dpi, each file written atomically. Each plot uses the
first run (lowest seed) of a column, and says so in its title when a column has several seeds.
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402

from oodbench.io import atomic_write_with  # noqa: E402
from oodbench.metrics import ece, softmax  # noqa: E402
from oodbench.report.load import Run, read_history, read_scores, read_test_logits  # noqa: E402
from oodbench.report.matrix import Matrix  # noqa: E402
from oodbench.report.tables import Group  # noqa: E402

DPI = 150
ECE_BINS = 15
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def _save(fig: plt.Figure, path: Path) -> Path:
    atomic_write_with(path, lambda tmp: fig.savefig(tmp, dpi=DPI, format="png"))
    plt.close(fig)
    return path


def _first(group: Group) -> Run:
    return sorted(group.runs, key=lambda r: (r.seed is None, r.seed or 0))[0]


def _title(group: Group) -> str:
    run = _first(group)
    return group.label if group.n == 1 else f"{group.label} (seed {run.seed} of {group.n})"


def score_histograms(
    groups: list[Group], oods: list[str], detector: str, path: Path
) -> Path | None:
    """ID vs OOD score distributions: one row per OOD set, one column per loss."""
    data = {}
    for g in groups:
        run = _first(g)
        id_scores = read_scores(run, detector, run.id_dataset)
        if id_scores is None:
            continue
        data[g.label] = (id_scores, {o: read_scores(run, detector, o) for o in oods})
    if not data:
        return None
    fig, axes = plt.subplots(
        len(oods), len(data), figsize=(4.2 * len(data), 2.4 * len(oods) + 0.6), squeeze=False
    )
    for col, (g, (id_scores, ood_scores)) in enumerate(zip(groups, data.values(), strict=False)):
        for row, ood in enumerate(oods):
            ax = axes[row][col]
            values = [id_scores] + ([ood_scores[ood]] if ood_scores[ood] is not None else [])
            bins = np.histogram_bin_edges(np.concatenate(values), bins=50)
            ax.hist(id_scores, bins=bins, density=True, alpha=0.55, color=COLOURS[0], label="ID")
            if ood_scores[ood] is not None:
                ax.hist(ood_scores[ood], bins=bins, density=True, alpha=0.55, color=COLOURS[1],
                        label=f"OOD: {ood}")  # fmt: skip
            ax.set_title(f"{_title(g)} — {ood}", fontsize=9)
            ax.set_ylabel("density", fontsize=8)
            ax.legend(fontsize=7, loc="upper left")
            ax.tick_params(labelsize=7)
        axes[-1][col].set_xlabel(f"{detector} score (higher = more in-distribution)", fontsize=8)
    fig.suptitle(f"{detector} scores: ID test set vs each OOD set", fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def roc_curves(groups: list[Group], oods: list[str], detector: str, path: Path) -> Path | None:
    """ROC per OOD set (ID positive), one curve per loss; dotted line at TPR = 95%."""
    ncols = min(3, len(oods))
    nrows = -(-len(oods) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.8 * ncols, 3.5 * nrows), squeeze=False)
    drawn = False
    for i, ood in enumerate(oods):
        ax = axes[i // ncols][i % ncols]
        for g, colour in zip(groups, COLOURS, strict=False):
            run = _first(g)
            id_s, ood_s = (
                read_scores(run, detector, run.id_dataset),
                read_scores(run, detector, ood),
            )
            if id_s is None or ood_s is None:
                continue
            y = np.r_[np.ones(len(id_s)), np.zeros(len(ood_s))]
            fpr, tpr, _ = roc_curve(y, np.r_[id_s, ood_s])
            ax.plot(fpr, tpr, color=colour, label=_title(g))
            drawn = True
        ax.axhline(0.95, color="grey", ls=":", lw=1)
        ax.plot([0, 1], [0, 1], color="lightgrey", lw=0.8)
        ax.set(title=ood, xlabel="FPR (OOD accepted)", ylabel="TPR (ID accepted)")
        ax.legend(fontsize=7, loc="lower right")
    for j in range(len(oods), nrows * ncols):
        axes[j // ncols][j % ncols].axis("off")
    if not drawn:
        plt.close(fig)
        return None
    fig.suptitle(f"ROC curves, {detector} (ID positive; dotted: TPR = 95%)", fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def logit_norm(groups: list[Group], path: Path) -> Path | None:
    """Mean logit norm per epoch from history.csv: train solid, test dashed."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    drawn = False
    for g, colour in zip(groups, COLOURS, strict=False):
        hist = read_history(_first(g))
        if hist is None or "epoch" not in hist:
            continue
        for col, style in (("train_logit_norm", "-"), ("test_logit_norm", "--")):
            if col in hist:
                split = col.split("_")[0]
                ax.plot(hist["epoch"], hist[col], style, color=colour, marker="o", ms=3,
                        label=f"{_title(g)}, {split}")  # fmt: skip
                drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set(xlabel="epoch", ylabel="mean ‖f(x)‖₂ of the logits", title="Logit norm during training")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def _bin_accuracy(conf: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy and count per bin, with the bins oodbench.metrics.ece uses: (lo, hi], 15 wide."""
    edges = np.linspace(0.0, 1.0, ECE_BINS + 1)
    which = np.clip(np.digitize(conf, edges, right=True), 1, ECE_BINS) - 1
    count = np.bincount(which, minlength=ECE_BINS)
    return np.bincount(which, weights=correct, minlength=ECE_BINS) / np.maximum(count, 1), count


def reliability(groups: list[Group], path: Path) -> Path | None:
    """Reliability diagram per loss, raw logits and logits / T (T from summary.json)."""
    rows = []
    for g in groups:
        run = _first(g)
        cached = read_test_logits(run)
        if cached is not None:
            rows.append((g, cached, float(run.summary.get("temperature") or 1.0)))
    if not rows:
        return None
    fig, axes = plt.subplots(len(rows), 2, figsize=(8, 3.8 * len(rows)), squeeze=False)
    centres = (np.arange(ECE_BINS) + 0.5) / ECE_BINS
    for r, (g, (logits, labels), temp) in enumerate(rows):
        for c, (t, name) in enumerate(((1.0, "raw"), (temp, f"temperature-scaled, T={temp:.3g}"))):
            probs = softmax(logits, temperature=t)
            conf, correct = probs.max(axis=1), (probs.argmax(axis=1) == labels).astype(float)
            acc, count = _bin_accuracy(conf, correct)
            error = ece(probs, labels, bins=ECE_BINS) * 100
            ax = axes[r][c]
            shown = count > 0
            ax.bar(centres[shown], acc[shown], width=1 / ECE_BINS, edgecolor="black",
                   color=COLOURS[r % len(COLOURS)], alpha=0.7, label="accuracy")  # fmt: skip
            ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
            ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (max softmax)", ylabel="accuracy")
            ax.set_title(f"{_title(g)} — {name}\nECE = {error:.2f}% (15 bins)", fontsize=9)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8)
    fig.suptitle("Reliability on the ID test set", fontsize=11)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return _save(fig, path)


def risk_coverage(groups: list[Group], detector: str, path: Path) -> Path | None:
    """Selective risk against coverage on the ID test set, one line per loss: the detector's
    score accepts the most confident first (one point per distinct score)."""
    from oodbench.detectors.selective import risk_coverage_curve

    fig, ax = plt.subplots(figsize=(6, 4.2))
    drawn = False
    for i, g in enumerate(groups):
        run = _first(g)
        cached, scores = read_test_logits(run), read_scores(run, detector, run.id_dataset)
        if cached is None or scores is None or len(scores) != len(cached[1]):
            continue
        logits, labels = cached
        cov, risk = risk_coverage_curve(scores, logits.argmax(axis=1) == labels)
        ax.plot(cov, 100 * risk, color=COLOURS[i % len(COLOURS)], lw=1.4, label=_title(g))
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set(xlabel="coverage (share of test images accepted)", ylabel="selective risk (% wrong)",
           title=f"Risk-coverage on the ID test set ({detector})", xlim=(0, 1))  # fmt: skip
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def write_plots(
    groups: list[Group], oods: list[str], detector: str, out_dir: Path
) -> list[tuple[str, Path]]:
    """Every plot the runs have data for; returns (title, path) pairs for the report."""
    safe = re.sub(r"[^A-Za-z0-9_.=-]", "_", detector)  # labels like knn[k=10]
    hist, roc = out_dir / f"scores_{safe}.png", out_dir / f"roc_{safe}.png"
    made = [
        (f"Score histograms ({detector})", score_histograms(groups, oods, detector, hist)),
        (f"ROC curves ({detector})", roc_curves(groups, oods, detector, roc)),
        ("Logit norm over epochs", logit_norm(groups, out_dir / "logit_norm.png")),
        ("Reliability diagram", reliability(groups, out_dir / "reliability.png")),
        (
            f"Risk-coverage ({detector})",
            risk_coverage(groups, detector, out_dir / f"risk_coverage_{safe}.png"),
        ),
    ]
    return [(title, path) for title, path in made if path is not None]


HEATMAP = (("fpr95", -1.0, "FPR95"), ("auroc", 1.0, "AUROC"))  # (metric, improvement sign, name)
FAILURE_HEATMAP = (("aurc", -1.0, "AURC"), ("augrc", -1.0, "AUGRC"))  # lower is better: sign -1


def loss_heatmap(matrix: Matrix | None, path: Path,
                 metrics: tuple[tuple[str, float, str], ...] = HEATMAP) -> Path | None:  # fmt: skip
    """Losses as rows, detectors as columns, one panel per metric; colour = change vs CE (green
    better, red worse: each metric oriented by its sign, -1 where lower is better), the number
    printed in each cell, significant cells outlined and starred."""
    if matrix is None or matrix.baseline is None:
        return None
    losses = [g for g in matrix.labels if g != matrix.baseline]
    dets = matrix.detectors
    if not losses or not dets:
        return None
    fig, axes = plt.subplots(len(metrics), 1, squeeze=False,
                             figsize=(max(6.0, 0.55 * len(dets) + 2.5),
                                      1.2 + 0.9 * len(losses) * len(metrics) + 1.6))  # fmt: skip
    for ax, (metric, sign, name) in zip(axes[:, 0], metrics, strict=True):
        delta = np.array([[matrix.value(g, d, f"{metric}_delta") for d in dets] for g in losses])
        sig = np.array([[bool(matrix.value(g, d, f"{metric}_significant")) for d in dets]
                        for g in losses])  # fmt: skip
        better = sign * delta  # > 0 is an improvement for both metrics
        limit = float(np.nanmax(np.abs(better))) if np.isfinite(better).any() else 1.0
        image = ax.imshow(better, cmap="RdYlGn", vmin=-limit or -1, vmax=limit or 1,
                          aspect="auto")  # fmt: skip
        for i in range(len(losses)):
            for j in range(len(dets)):
                if np.isfinite(delta[i, j]):
                    star = "*" if sig[i, j] else ""
                    ax.text(j, i, f"{delta[i, j]:+.1f}{star}", ha="center", va="center",
                            fontsize=7, fontweight="bold" if sig[i, j] else "normal")  # fmt: skip
                    if sig[i, j]:
                        ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=1.5))
        ax.set_yticks(range(len(losses)), losses, fontsize=8)
        ax.set_xticks(range(len(dets)), dets, rotation=60, ha="right", fontsize=8)
        ax.set_title(f"Δ{name} vs {matrix.baseline} (points; * outlined = Holm p < 0.05)",
                     fontsize=9)  # fmt: skip
        fig.colorbar(image, ax=ax, label="improvement", shrink=0.8)
    fig.tight_layout()
    return _save(fig, path)
