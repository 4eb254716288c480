"""``--format html``: the report as one self-contained HTML file.

Same sections as the Markdown report (header, Runs, averages, comparisons, the loss x detector
matrix when there is one, per-OOD-set tables, plots, references). Plots, the matrix heatmap
included, are embedded as base64 PNG; the only script is a few inline lines that sort a table
by the clicked column. Nothing is fetched from the network.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from oodbench.report.spec import Cell, Report, TableSpec

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 72rem; padding: 0 1rem; color: #1b1f24; background: #fff; }
h1 { font-size: 1.6rem; } h2 { margin-top: 2rem; border-bottom: 1px solid #d0d7de; }
h3 { font-size: 1.05rem; margin-top: 1.4rem; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: .4rem 0 1rem; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #d0d7de; padding: .25rem .55rem; text-align: right;
         white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
th { background: #f6f8fa; cursor: pointer; user-select: none; }
th.asc::after { content: " ▲"; } th.desc::after { content: " ▼"; }
td.best { font-weight: 700; background: #dafbe1; }
td.good { color: #1a7f37; } td.bad { color: #cf222e; }
p.note { margin: .2rem 0; color: #57606a; }
img { max-width: 100%; border: 1px solid #d0d7de; }
pre { background: #f6f8fa; padding: .6rem; overflow-x: auto; }
"""

# Click a header: sort the rows by that column (numbers by value, text alphabetically); an
# "Average" row stays last. Inline and tiny, so the file works offline and from e-mail.
SCRIPT = """
document.querySelectorAll("table.sortable th").forEach(function (th, col) {
  th.addEventListener("click", function () {
    var table = th.closest("table"), body = table.tBodies[0];
    var asc = !th.classList.contains("asc");
    table.querySelectorAll("th").forEach(function (h) { h.classList.remove("asc", "desc"); });
    th.classList.add(asc ? "asc" : "desc");
    var rows = Array.from(body.rows), pinned = rows.filter(function (r) {
      return r.cells[0].textContent.trim() === "Average"; });
    rows = rows.filter(function (r) { return pinned.indexOf(r) < 0; });
    function key(r) { var t = r.cells[col].textContent.trim(), n = parseFloat(t);
      return isNaN(n) ? t : n; }
    rows.sort(function (a, b) { var x = key(a), y = key(b);
      var both = typeof x === "number" && typeof y === "number";
      var c = both ? x - y : String(x).localeCompare(String(y));
      return asc ? c : -c; });
    rows.concat(pinned).forEach(function (r) { body.appendChild(r); });
  });
});
"""


def _cell(cell: Cell) -> str:
    classes = " ".join(c for c in ("best" if cell.best else "", cell.tone or "") if c)
    attr = f' class="{classes}"' if classes else ""
    return f"<td{attr}>{html.escape(cell.text)}</td>"


def html_table(spec: TableSpec, heading: bool = True) -> str:
    parts = [f"<h3>{html.escape(spec.title)}</h3>"] if heading else []
    parts += [f'<p class="note">{html.escape(note)}</p>' for note in spec.notes]
    head = "".join(f"<th>{html.escape(col)}</th>" for col in spec.columns)
    body = "\n".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in spec.rows)
    parts.append(
        f'<div class="scroll"><table class="sortable"><thead><tr>{head}</tr></thead>'
        f"<tbody>\n{body}\n</tbody></table></div>"
    )
    return "\n".join(parts)


def embedded_png(path: Path, title: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(title)}" src="data:image/png;base64,{data}">'


def _produced(made: Any) -> list[str]:
    from oodbench.report import produced as P

    out = [f"<h2>{P.TITLE}</h2>", *(f"<p>{html.escape(line)}</p>" for line in P.lines(made))]
    out.append("<pre><code>" + html.escape("\n".join(made.commands)) + "</code></pre>")
    return out + [html_table(spec) for spec in P.tables(made)]


def to_html(report: Report) -> str:
    """The whole report as one HTML document (plots must already be written: ``report.plots``)."""
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>OOD detection report</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>OOD detection report</h1>",
        "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in report.header) + "</ul>",
    ]
    for section, specs in report.sections:
        out.append(f"<h2>{html.escape(section)}</h2>")
        out += [html_table(spec, heading=spec.title != section) for spec in specs]
    if report.plots:  # the loss x detector heatmap is one of them when the report has a matrix
        out.append("<h2>Plots</h2>")
        for title, path in report.plots:
            out += [f"<h3>{html.escape(title)}</h3>", embedded_png(path, title)]
    if report.references:
        out.append("<h2>References</h2><ul>")
        out += [
            f"<li><b>{html.escape(src)}</b>: {html.escape(note)}</li>"
            for src, note in report.references
        ]
        out.append("</ul>")
    if report.produced is not None:
        out += _produced(report.produced)
    out += [f"<script>{SCRIPT}</script>", "</body></html>", ""]
    return "\n".join(out)
