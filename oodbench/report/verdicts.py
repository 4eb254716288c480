"""Does a verdict survive the choice of detector hyperparameters? (issue 12, "honest numbers")

Reads the same CE and LogitNorm runs (one per seed) scored under several *settings*: the papers'
defaults (untuned metrics rows, e.g. ``react``) and tuned on validation data (``react[tuned]``
rows) with one validation choice per folder (noise, real images, or both). Per detector and
setting, the verdict is the paired-by-seed change of LogitNorm against CE in the test AUROC
averaged over the test OOD sets: "better" or "worse" only when its paired t-test's p,
Holm-adjusted over the setting's family (every detector the setting scored: the tunable ones
as set, the others as they are), is below 0.05, else "n.s.". A detector's verdict *flips*
when two settings give opposite significant verdicts, and *changes* when they differ at all.

The proxy table asks which validation data tunes best: the mean test AUROC each setting reaches
over the tunable detectors and every run (test data judges; it chose nothing).

    python -m oodbench.report.verdicts OUT.md defaults=untuned:DIR noise=tuned:DIR ...

Each DIR holds ``seed<N>/ce`` and ``seed<N>/logitnorm`` run dirs (a bench --seeds layout).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from oodbench.detectors.base import TUNED
from oodbench.errors import UserError
from oodbench.metrics import paired_interval
from oodbench.report.stats import adjust, paired_p, significant
from oodbench.runs import RunDir, ood_means


@dataclass(frozen=True)
class Setting:
    name: str  # e.g. "defaults", "noise"
    tuned: bool  # read the [tuned] rows (else the untuned rows of tunable detectors)
    folder: Path


def parse_setting(text: str) -> Setting:
    """``noise=tuned:runs/proxy-noise`` -> Setting("noise", True, Path(...))."""
    name, sep, rest = text.partition("=")
    kind, sep2, folder = rest.partition(":")
    if not (sep and sep2 and name and folder) or kind not in ("tuned", "untuned"):
        raise UserError(f"a setting is NAME=tuned:DIR or NAME=untuned:DIR, got {text!r}")
    return Setting(name, kind == "tuned", Path(folder))


def setting_rows(setting: Setting, detectors: list[str] | None = None) -> pd.DataFrame:
    """One row per (seed, loss, detector): the test AUROC and FPR95 averaged over the test OOD
    sets, for the tunable detectors as this setting scored them (base names, no suffix) and
    the other detectors (``tunable`` False: they complete the family Holm corrects over)."""
    rows = []
    for run_dir in sorted(setting.folder.glob("seed*/*")):
        run = RunDir(run_dir)
        if not run.metrics.is_file():
            continue
        config = run.read_config()
        means = ood_means(run.read_metrics()).reset_index()
        tuned = means["detector"].str.endswith(TUNED)
        base = means["detector"].str.removesuffix(TUNED)
        # untuned rows of the detectors this folder tuned (an untuned folder: ``detectors``)
        tunable = set(base[tuned]) or set(detectors or [])
        pick = tuned if setting.tuned else ~tuned & base.isin(tunable)
        pick |= ~tuned & ~base.isin(tunable)
        for det, auroc, fpr in zip(base[pick], means["auroc"][pick], means["fpr95"][pick],
                                   strict=True):  # fmt: skip
            rows.append({"setting": setting.name, "seed": int(config.get("seed", 0)),
                         "loss": str(config.get("loss")), "detector": det,
                         "tunable": det in tunable, "auroc": float(auroc),
                         "fpr95": float(fpr)})  # fmt: skip
    if not rows:
        raise UserError(f"no scored run under {setting.folder}/seed*/: check the folder")
    return pd.DataFrame(rows)


def tunable_names(folder: Path) -> list[str]:
    """The detectors a tuned folder tuned (the base names of its [tuned] rows)."""
    names: set[str] = set()
    for run_dir in folder.glob("seed*/*"):
        if RunDir(run_dir).metrics.is_file():
            dets = RunDir(run_dir).read_metrics()["detector"].astype(str)
            names |= {d.removesuffix(TUNED) for d in dets if d.endswith(TUNED)}
    return sorted(names)


def verdict(diffs: list[float], p_holm: float | None = None) -> tuple[float, str]:
    """Mean paired change (LogitNorm - CE, AUROC points) and better / worse / n.s.: significant
    when ``p_holm`` (the family's Holm-adjusted p) is below 0.05; without it, a family of one
    (the paired t-test's own p)."""
    mean = float(np.mean(diffs))
    p = paired_p(diffs) if p_holm is None else p_holm
    if not significant(p):
        return mean, "n.s."
    return mean, "better" if mean > 0 else "worse"


def _family(frame: pd.DataFrame, name: str) -> dict[str, tuple[list[float], float]]:
    """One setting's family: detector -> (per-seed AUROC changes, Holm-adjusted p)."""
    wide = frame[frame["setting"] == name].pivot_table(
        index=["detector", "seed"], columns="loss", values="auroc"
    )
    if not {"ce", "logitnorm"} <= set(wide.columns):
        return {}
    diffs = (wide["logitnorm"] - wide["ce"]).dropna()
    dets = list(dict.fromkeys(diffs.index.get_level_values("detector")))
    found = [list(diffs.loc[d]) for d in dets]
    holm, _ = adjust([paired_p(d) for d in found])
    return {d: (f, float(h)) for d, f, h in zip(dets, found, holm, strict=True)}


def verdict_table(frame: pd.DataFrame, settings: list[str]) -> pd.DataFrame:
    """Per tunable detector: the change and verdict under each setting, and whether it flips."""
    if "tunable" not in frame.columns:
        frame = frame.assign(tunable=True)
    families = {name: _family(frame, name) for name in settings}
    out = []
    for det in sorted(set(frame.loc[frame["tunable"].astype(bool), "detector"])):
        rec: dict[str, object] = {"detector": det}
        seen = []
        for name in settings:
            if det not in families[name]:
                rec[name] = ""
                continue
            change, word = verdict(*families[name][det])
            rec[name] = f"{change:+.1f} {word}"
            seen.append(word)
        significant_words = {w for w in seen if w != "n.s."}
        rec["flips"] = "yes" if len(significant_words) == 2 else "no"
        rec["changes"] = "yes" if len(set(seen)) > 1 else "no"
        out.append(rec)
    return pd.DataFrame(out)


def proxy_table(frame: pd.DataFrame, settings: list[str]) -> pd.DataFrame:
    """Per setting and loss: mean test AUROC and FPR95 over seeds and the tunable detectors
    that every setting scored for that loss (so the settings are compared on the same rows)."""
    if "tunable" in frame.columns:
        frame = frame[frame["tunable"].astype(bool)]
    keys = frame.groupby(["loss", "seed", "detector"])["setting"].nunique()
    common = keys[keys == frame["setting"].nunique()].reset_index()[["loss", "seed", "detector"]]
    frame = frame.merge(common, on=["loss", "seed", "detector"])
    table = frame.groupby(["setting", "loss"])[["auroc", "fpr95"]].mean().reset_index()
    table["setting"] = pd.Categorical(table["setting"], settings, ordered=True)
    return table.sort_values(["setting", "loss"]).reset_index(drop=True)


def setting_pairs(frame: pd.DataFrame, settings: list[str]) -> pd.DataFrame:
    """Each pair of settings compared cell by cell (loss x seed x detector, the cells both
    scored): mean test AUROC difference, its t-interval, and how many cells went up or down.
    The cells share runs, so the interval is indicative, not exact."""
    if "tunable" in frame.columns:
        frame = frame[frame["tunable"].astype(bool)]
    wide = frame.pivot_table(index=["loss", "seed", "detector"], columns="setting",
                             values="auroc")  # fmt: skip
    out = []
    for i, a in enumerate(settings):
        for b in settings[i + 1 :]:
            if a not in wide or b not in wide:
                continue
            diff = (wide[a] - wide[b]).dropna()
            interval = paired_interval(list(diff)) or (float("nan"), float("nan"))
            out.append({
                "comparison": f"{a} - {b}", "cells": len(diff),
                "mean AUROC change": float(diff.mean()),
                "95% interval": f"[{interval[0]:+.2f}, {interval[1]:+.2f}]",
                "higher": int((diff > 0).sum()), "lower": int((diff < 0).sum()),
            })  # fmt: skip
    return pd.DataFrame(out)


def _markdown(table: pd.DataFrame) -> str:
    from oodbench.report.formats import markdown_table
    from oodbench.report.spec import Cell, TableSpec

    rows = [[Cell(f"{v:.2f}" if isinstance(v, float) else str(v)) for v in row]
            for row in table.itertuples(index=False)]  # fmt: skip
    return markdown_table(TableSpec("", [str(c) for c in table.columns], rows), heading=False)


def render(settings: list[Setting]) -> str:
    tunable = next((tunable_names(s.folder) for s in settings if s.tuned), [])
    frame = pd.concat([setting_rows(s, tunable) for s in settings], ignore_index=True)
    names = [s.name for s in settings]
    verdicts = verdict_table(frame, names)
    flips, changes = (verdicts["flips"] == "yes").sum(), (verdicts["changes"] == "yes").sum()
    return "\n\n".join([
        "LogitNorm - CE, test AUROC averaged over the test OOD sets, paired by seed "
        "(better/worse: the paired t-test's p, Holm-adjusted over the setting's family of "
        "every detector it scored, is below 0.05)",
        _markdown(verdicts),
        f"{flips} of {len(verdicts)} tunable detectors flip between significant verdicts; "
        f"{changes} change verdict between at least two settings.",
        "Mean test AUROC / FPR95 per setting and loss, over seeds and the tunable detectors "
        "every setting scored",
        _markdown(proxy_table(frame, names)),
        "Settings compared cell by cell (loss x seed x detector), test AUROC",
        _markdown(setting_pairs(frame, names)),
    ]) + "\n"  # fmt: skip


def main(argv: list[str]) -> int:
    from oodbench.io import atomic_write_text

    if len(argv) < 2:
        print(__doc__.split("\n\n")[-2].strip(), file=sys.stderr)
        return 2
    try:
        text = render([parse_setting(a) for a in argv[1:]])
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    atomic_write_text(Path(argv[0]), text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
