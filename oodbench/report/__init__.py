"""``oodbench report``: tables (rich / markdown / csv / json) and plots from scored run dirs.

Reads only run directories (metrics.csv, summary.json, history.csv, scores/, cache/, through
oodbench.runs), so a report can be made anywhere the run folders are copied to. ``load`` reads
runs, ``tables`` aggregates, ``build`` assembles a ``spec.Report``, ``formats`` and ``plots``
render it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from oodbench.errors import UserError
from oodbench.io import atomic_write_text
from oodbench.report.build import IMAGE_BOOT, Report, build
from oodbench.report.formats import (
    FORMATS,
    check_format,
    confidence_tables,
    matrix_csv,
    rich_renderable,
    to_csv,
    to_json,
    to_markdown,
    to_plain_text,
)
from oodbench.runs import REPORT

__all__ = ["FORMATS", "Report", "build", "render"]


def render(
    run_dirs: list[Path],
    fmt: str = "rich",
    *,
    out: Path | None = None,
    plots: Path | None = None,
    reference: Path | None = None,
    detectors: list[str] | None = None,
    oods: list[str] | None = None,
    runs_dir: Path = Path("runs"),
    convention: str | None = None,
    protocol: str | None = None,
    plot_detector: str = "msp",
    image_bootstrap: int = IMAGE_BOOT,
) -> str:
    """Build the report and return its text; write it to ``out`` (atomically) when given.

    With ``fmt="rich"`` and no ``out`` the report is printed in colour and the plain text is
    returned. ``plots`` is a folder for the PNGs, which the markdown links relative to ``out``.
    """
    check_format(fmt)
    if fmt == "openood":
        return _openood(run_dirs, out, runs_dir, detectors, oods, reference, convention, protocol)
    _check_paths(out, plots)  # before anything is written
    report = build(run_dirs, runs_dir, detectors, oods, reference, convention, protocol,
                   image_bootstrap)  # fmt: skip
    if plots is not None:
        report.plots = _plots(report, plots, plot_detector)
    if fmt == "html" and plots is None:  # one self-contained file: plots drawn, then embedded
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            report.plots = _plots(report, Path(tmp), plot_detector)
            text = _text(report, fmt, out)
    else:
        text = _text(report, fmt, out)
    if out is not None:
        atomic_write_text(out, text)
        matrix = matrix_csv(report)
        if fmt == "csv" and matrix is not None:  # a second table, its own file: X.matrix.csv
            atomic_write_text(out.with_suffix(".matrix.csv"), matrix)
        if fmt == "csv" and report.ranks:  # mean ranks, and the post-hoc p of every pair
            _write_ranks(report, out)
        if fmt == "csv":  # the overconfidence tables: X.overconfidence.csv, X.failure.csv, ...
            for name, frame in confidence_tables(report).items():
                if len(frame):
                    text = frame.to_csv(index=False, float_format="%.4f", lineterminator="\n")
                    atomic_write_text(out.with_suffix(f".{name}.csv"), text)
    elif fmt == "rich":
        from oodbench.console import stdout

        stdout.print(rich_renderable(report))
    return text


def _openood(run_dirs: list[Path], out: Path | None, runs_dir: Path, *args: Any) -> str:
    """Write the OpenOOD CSVs under the folder ``out``; return the list of files written."""
    from oodbench.report.openood import write_openood

    if out is None or (out.exists() and not out.is_dir()):
        raise UserError("--format openood writes a folder of CSVs (<setting>/ood/<detector>.csv): "
                        "pass --out FOLDER")  # fmt: skip
    written = write_openood(build(run_dirs, runs_dir, *args), out)
    return "".join(f"{path}\n" for path in written)


def _check_paths(out: Path | None, plots: Path | None) -> None:
    for flag, path in (("--out", out), ("--plots", plots)):
        blocked = next((p for p in (path.parents if path else ()) if p.is_file()), None)
        if blocked is not None:
            raise UserError(f"{flag} {path}: {blocked} is a file, not a folder; pick another path")
    if out is not None and out.is_dir():
        raise UserError(f"--out {out} is a folder; give a file name such as {out}/{REPORT}")
    if plots is not None and plots.exists() and not plots.is_dir():
        raise UserError(f"--plots {plots} is a file; give a folder for the PNG plots")
    if out is not None and plots is not None and out.absolute() == plots.absolute():
        raise UserError("--out and --plots name the same path; --plots is a folder, --out a file")


def _plots(report: Report, folder: Path, detector: str) -> list[tuple[str, Path]]:
    from oodbench.detectors import DETECTORS
    from oodbench.report.plots import write_plots

    if detector.split("[")[0] not in DETECTORS:  # labels such as knn[k=7] name detector knn
        raise UserError(f"--plot-detector: {DETECTORS.unknown_message(detector)}")
    if detector not in report.detectors:
        detector = report.detectors[0]  # the asked-for detector was filtered out: use the first
    oods = list(dict.fromkeys(report.tidy.loc[report.tidy["detector"] == detector, "ood_dataset"]))
    made = write_plots(report.groups, oods, detector, folder)
    if report.matrix is not None:
        from oodbench.report.plots import loss_heatmap

        heatmap = loss_heatmap(report.matrix, folder / "loss_detector_heatmap.png")
        made += [("Loss × detector: change vs CE", heatmap)] if heatmap else []
    from oodbench.report.ranks import cd_diagram, slug

    for test in report.ranks or []:
        path = cd_diagram(test, folder / f"cd_{slug(test.name)}.png")
        made.append((f"Critical-difference diagram: {test.name}", path))
    if report.matrix is not None and report.matrix.failure_metrics:
        from oodbench.report.plots import FAILURE_HEATMAP, loss_heatmap

        failure = loss_heatmap(report.matrix, folder / "failure_heatmap.png", FAILURE_HEATMAP)
        made += [("Loss × detector: failure detection, change vs CE", failure)] if failure else []
    return made


def _write_ranks(report: Report, out: Path) -> None:
    from oodbench.report.ranks import posthoc_frame, to_frame

    for suffix, frame in ((".ranks.csv", to_frame(report.ranks)),
                          (".ranks-posthoc.csv", posthoc_frame(report.ranks))):  # fmt: skip
        text = frame.to_csv(index=False, float_format="%.6g", lineterminator="\n")
        atomic_write_text(out.with_suffix(suffix), text)


def _text(report: Report, fmt: str, out: Path | None) -> str:
    if fmt == "markdown":
        return to_markdown(report, (out.parent if out else Path.cwd()).absolute())
    if fmt == "csv":
        return to_csv(report)
    if fmt == "json":
        return to_json(report)
    if fmt == "html":
        from oodbench.report.html import to_html

        return to_html(report)
    return to_plain_text(report)
