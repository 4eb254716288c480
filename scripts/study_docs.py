"""Regenerate every study table of README.md and docs/results.md from the committed CSVs.

    .venv/bin/python scripts/study_docs.py           # rewrite the blocks (and the CD diagrams)
    .venv/bin/python scripts/study_docs.py --check   # exit 1 and show the drift, write nothing

A block sits between ``<!-- study:NAME -->`` and ``<!-- /study:NAME -->`` in the markdown; its
text is produced here from docs/study/*.csv and docs/study-15ep/*.csv only (the matrix CSVs
are themselves regenerated from the report CSVs by ``study_tables.py --matrix``). A star is a
Holm star (Holm-adjusted p < 0.05 within its family: one loss vs CE, one track, one metric,
one setting). tests/test_study_docs.py fails when a block drifts from its CSVs.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from study_tables import _delta, _once, detector_table, matrix_summary, setting_view

from oodbench.report.families import FAMILY
from oodbench.report.ranks import cd_diagram, rank_tests, slug, summary_table

ROOT = Path(__file__).resolve().parent.parent
STUDY, EARLY = ROOT / "docs" / "study", ROOT / "docs" / "study-15ep"
FAR, NEAR, FAR15 = (STUDY / "far.matrix.csv", STUDY / "near-only.matrix.csv",
                    EARLY / "far.matrix.csv")  # fmt: skip
FILES = (ROOT / "README.md", ROOT / "docs" / "results.md")
LEGEND = ("`*`: significant, Holm-adjusted p < 0.05 within the family (every detector of one "
          "loss vs CE, one track, one metric, one setting); per-seed paired t-tests over 3 "
          "seeds, seed-level only (the committed CSVs hold no per-image scores).")  # fmt: skip
HEADLINE = ["msp", "energy", "mahalanobis", "vim", "react", "rmd"]
NAMES = {"msp": "MSP", "energy": "Energy", "mahalanobis": "Mahalanobis", "vim": "ViM",
         "react": "ReAct", "rmd": "RMD", "mahalanobis-norm": "Mahalanobis++"}  # fmt: skip


def _view(path: Path, tuned: bool = True) -> pd.DataFrame:
    return setting_view(pd.read_csv(path), tuned)


def _row(view: pd.DataFrame, group: str, name: str) -> pd.Series:
    return view[(view.group == group) & (view.name == name)].iloc[0]


def headline(path: Path, names: list[str], metric: str) -> str:
    """Losses (rows) x chosen detectors: the tuned value, and the change against CE."""
    view = _view(path)
    groups = list(dict.fromkeys(view.group))
    arrow = "↓" if metric == "fpr95" else "↑"
    lines = [f"| {metric.upper().replace('FPR95', 'FPR95')} {arrow} | "
             + " | ".join(NAMES.get(n, n) for n in names) + " |",
             "|---|" + "---:|" * len(names)]  # fmt: skip
    for g in groups:
        cells = []
        for n in names:
            r = _row(view, g, n)
            text = f"{r[metric]:.2f}"
            if not pd.isna(r[f"{metric}_delta"]):
                text += f" ({_delta(r, metric, 1)})"
            cells.append(text)
        lines.append(f"| {g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdicts(path: Path, loss: str = "logitnorm") -> str:
    """Per tunable detector: the loss's change against CE at the papers' defaults and tuned,
    AUROC and FPR95, each with its Holm star within its own setting's family."""
    tuned, defaults = _view(path, True), _view(path, False)
    grid = sorted(set(tuned.loc[tuned.detector.str.endswith("[tuned]"), "name"]))
    lines = ["| detector | ΔAUROC defaults | ΔAUROC tuned | ΔFPR95 defaults | ΔFPR95 tuned | "
             "changes |", "|---|---:|---:|---:|---:|---|"]  # fmt: skip
    changed = 0
    for name in grid:
        d = defaults[(defaults.loss == loss) & (defaults.name == name)].iloc[0]
        t = tuned[(tuned.loss == loss) & (tuned.name == name)].iloc[0]
        words = [_word(r, m) for m in ("auroc", "fpr95") for r in (d, t)]
        change = words[0] != words[1] or words[2] != words[3]
        changed += change
        lines.append(f"| {name} | {_delta(d, 'auroc', 1)} | {_delta(t, 'auroc', 1)} | "
                     f"{_delta(d, 'fpr95', 1)} | {_delta(t, 'fpr95', 1)} | "
                     f"{'yes' if change else 'no'} |")  # fmt: skip
    lines += ["", f"{changed} of {len(grid)} tunable detectors change verdict (better, worse or "
              "n.s.) between the papers' defaults and tuned, in AUROC or FPR95."]  # fmt: skip
    return "\n".join(lines)


def _word(r: pd.Series, m: str) -> str:
    if not r[f"{m}_significant"]:
        return "n.s."
    return "better" if (r[f"{m}_delta"] < 0) == (m == "fpr95") else "worse"


def families(path: Path) -> str:
    """Per family: how many comparisons, how many significant by Holm, by BH q < 0.05, and by
    the uncorrected p < 0.05 (a coinciding detector counted once)."""
    frame = pd.read_csv(path).fillna({"coincides_with": ""})
    frame = frame[frame.group != frame.loc[frame.loss == "ce", "group"].iloc[0]]
    lines = ["| track | setting | loss | metric | comparisons | p < 0.05 | BH q < 0.05 | "
             "Holm p < 0.05 |", "|---|---|---|---|---:|---:|---:|---:|"]  # fmt: skip
    for key, part in frame.groupby(FAMILY, sort=False):
        part = part.assign(name=part.detector)
        for m in ("fpr95", "auroc"):
            counts = [_once(part[part[c] < 0.05]) for c in (f"{m}_p", f"{m}_q_bh", f"{m}_p_holm")]
            lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {m.upper()} | {_once(part)} | "
                         + " | ".join(map(str, counts)) + " |")  # fmt: skip
    return "\n".join(lines)


def per_seed(report_csv: Path, detector: str, metric: str) -> dict[str, list[float]]:
    """Per loss label: the per-seed change against CE of ``detector``'s ``metric`` averaged
    over the OOD sets (as the matrix averages them), seeds in order."""
    from oodbench.report.matrix import per_run_averages

    rows = pd.read_csv(report_csv)
    ce = str(rows.loc[rows.loss == "ce", "label"].iloc[0])
    rows = rows[rows.detector == detector]
    avg = per_run_averages(rows, dict(zip(rows.run, rows.label, strict=False)))
    wide = avg.pivot_table(index="seed", columns="group", values=metric)
    return {str(g): [float(v) for v in wide[g] - wide[ce]] for g in wide.columns if g != ce}


def _seeds(values: list[float]) -> str:
    return ", ".join(f"{v:+.1f}" for v in values)


def _count(part: pd.DataFrame, metric: str, worse: bool, sig: bool) -> int:
    delta = part[f"{metric}_delta"]
    hit = (delta > 0) if (metric == "fpr95") == worse else (delta < 0)
    if sig:
        hit &= part[f"{metric}_significant"].astype(bool)
    return _once(part[hit])


def claims(matrix: Path, report_csv: Path, track: str) -> str:
    """The study's verdicts as sentences, every number computed here from the CSVs; each says
    no more than the tables above it (Holm stars, AUROC beside FPR95)."""
    view = _view(matrix)
    out = []
    msp = {m: per_seed(report_csv, "msp", m) for m in ("fpr95", "auroc")}
    for g in [g for g in dict.fromkeys(view.group) if g in msp["fpr95"]]:
        r = _row(view, g, "msp")
        part = view[view.group == g]
        out.append(
            f"- **{g}** vs CE on the {track} track: MSP {_delta(r, 'fpr95', 2)} FPR95 (per seed "
            f"{_seeds(msp['fpr95'][g])}) and {_delta(r, 'auroc', 2)} AUROC (per seed "
            f"{_seeds(msp['auroc'][g])}). Over the {_once(part)} distinct detectors, FPR95 is "
            f"worse for {_count(part, 'fpr95', True, False)} "
            f"({_count(part, 'fpr95', True, True)} significantly) and better for "
            f"{_count(part, 'fpr95', False, False)} ({_count(part, 'fpr95', False, True)} "
            f"significantly); AUROC is worse for {_count(part, 'auroc', True, False)} "
            f"({_count(part, 'auroc', True, True)} significantly) and better for "
            f"{_count(part, 'auroc', False, False)} ({_count(part, 'auroc', False, True)} "
            f"significantly). Significant: {_sig_names(part)}."
        )
    return "\n".join(out)


def _sig_names(part: pd.DataFrame) -> str:
    found = []
    for m in ("fpr95", "auroc"):
        sig = part[part[f"{m}_significant"].astype(bool)]
        sig = sig[~sig.coincides_with.astype(bool)]
        found += [f"{r['name']} {m.upper()} {_delta(r, m, 1)}" for _, r in sig.iterrows()]
    return ", ".join(found) or "none"


def rank_block(write_png: bool) -> str:
    """Friedman / Conover-Holm over the committed far and near-only rows (tuned family)."""
    rows = pd.concat([pd.read_csv(STUDY / "far.csv"), pd.read_csv(STUDY / "near-only.csv")])
    rows = rows.assign(group=rows["label"])
    order = list(dict.fromkeys(pd.read_csv(FAR).group))
    tests = rank_tests(rows, order)
    lines = ["| test | blocks | Friedman χ² | p | best mean ranks (1 = best) |",
             "|---|---:|---:|---:|---|"]  # fmt: skip
    lines += ["| " + " | ".join(r) + " |" for r in summary_table(tests)]
    lines.append("")
    for t in tests:
        name = f"ranks/cd_{slug(t.name)}.png"
        if write_png:
            cd_diagram(t, STUDY / name)
        lines.append(f"![Critical-difference diagram, {t.name}](study/{name})")
    return "\n".join(lines)


def heatmap(matrix_csv: Path, png: Path) -> None:
    """The loss x detector heatmap of a committed matrix CSV (outlined: Holm-significant)."""
    from oodbench.report.matrix import Matrix
    from oodbench.report.plots import loss_heatmap
    from oodbench.report.tables import Group

    frame = pd.read_csv(matrix_csv).fillna({"coincides_with": ""})
    first = frame.drop_duplicates("group")
    groups = [Group(str(g), str(loss), "", "") for g, loss in zip(first.group, first.loss,
                                                                  strict=True)]  # fmt: skip
    baseline = str(first.loc[first.loss == "ce", "group"].iloc[0])
    loss_heatmap(Matrix(frame, groups, baseline, sorted(set(frame.detector))), png)


def blocks(write_png: bool = False) -> dict[str, Callable[[], str]]:
    return {
        "readme-fpr95": lambda: headline(FAR, HEADLINE, "fpr95"),
        "readme-auroc": lambda: headline(FAR, HEADLINE, "auroc"),
        "far-claims": lambda: claims(FAR, STUDY / "far.csv", "far-OOD"),
        "near-claims": lambda: claims(NEAR, STUDY / "near-only.csv", "near-OOD"),
        "15ep-claims": lambda: claims(FAR15, EARLY / "far.csv", "far-OOD (15 epochs)"),
        "legend": lambda: LEGEND,
        "far-headline": lambda: "\n\n".join(
            headline(FAR, ["msp", "mahalanobis-norm"], m) for m in ("fpr95", "auroc")
        ),  # fmt: skip
        "far-fpr95": lambda: detector_table(FAR, True, "fpr95"),
        "far-auroc": lambda: detector_table(FAR, True, "auroc"),
        "far-summary": lambda: matrix_summary(FAR, True),
        "far-summary-defaults": lambda: matrix_summary(FAR, False),
        "far-families": lambda: families(FAR),
        "near-summary": lambda: matrix_summary(NEAR, True),
        "near-summary-defaults": lambda: matrix_summary(NEAR, False),
        "near-auroc": lambda: detector_table(NEAR, True, "auroc"),
        "near-fpr95": lambda: detector_table(NEAR, True, "fpr95"),
        "near-families": lambda: families(NEAR),
        "far-verdicts": lambda: verdicts(FAR),
        "ranks": lambda: rank_block(write_png),
        "15ep-summary": lambda: matrix_summary(FAR15, True),
        "15ep-summary-defaults": lambda: matrix_summary(FAR15, False),
        "15ep-verdicts": lambda: verdicts(FAR15),
        "15ep-families": lambda: families(FAR15),
    }


PATTERN = re.compile(
    r"(<!-- study:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(\n?<!-- /study:(?P=name) -->)", re.S
)


def regenerate(text: str, made: dict[str, str]) -> tuple[str, list[str]]:
    """``text`` with every block replaced by its regenerated body; the names that changed."""
    changed = []

    def fill(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in made:
            raise KeyError(f"unknown study block {name!r}")
        if match["body"].strip("\n") != made[name]:
            changed.append(name)
        return f"{match[1]}{made[name]}\n<!-- /study:{name} -->"

    return PATTERN.sub(fill, text), changed


def used_blocks() -> set[str]:
    return {m["name"] for f in FILES for m in PATTERN.finditer(f.read_text())}


def main(check: bool) -> int:
    wanted = used_blocks()
    made = {k: f() for k, f in blocks(write_png=not check).items() if k in wanted}
    if not check:
        heatmap(FAR, STUDY / "far-plots" / "loss_detector_heatmap.png")
        heatmap(FAR15, EARLY / "far-plots" / "loss_detector_heatmap.png")
    drift = []
    for path in FILES:
        text, changed = regenerate(path.read_text(), made)
        drift += [f"{path.relative_to(ROOT)}: {name}" for name in changed]
        if changed and not check:
            path.write_text(text)
    for line in drift:
        print(("drift: " if check else "rewrote: ") + line)
    return 1 if drift and check else 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    raise SystemExit(main("--check" in sys.argv[1:]))
