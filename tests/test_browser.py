"""The HTML report in a real browser: Debian's Chromium (``apt-get install -y chromium``, which
``.ci/run`` installs) driven by Playwright, offline, no browser download.

The report is the fabricated CE + LogitNorm pair of tests/test_report_fixtures.py (two
detectors, plots from their scores and caches), with one detector renamed to a name holding
markup and a script: it must show as text, never be parsed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest
from test_report_fixtures import make_pair

from oodbench.report import render

SCRIPT = Path(__file__).parent.parent / "scripts" / "report_screenshot.py"
EVIL = '<img src=x onerror="window.pwned=1"><b>energy</b>'


def _screenshot_module():  # noqa: ANN202  (the script, imported by path: it is no package)
    spec = importlib.util.spec_from_file_location("report_screenshot", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def report_html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("browser")
    runs = make_pair(root / "runs")
    for run in runs:
        table = pd.read_csv(run / "metrics.csv")
        table["detector"] = table["detector"].replace({"energy": EVIL})
        table.to_csv(run / "metrics.csv", index=False)
    out = root / "report.html"
    render(list(runs), "html", out=out)
    return out


@pytest.mark.slow
def test_html_report_in_chromium(report_html: Path) -> None:
    if not Path(_screenshot_module().CHROMIUM).is_file():
        pytest.fail("Debian's chromium is missing: apt-get install -y chromium (.ci/run does)")
    errors: list[str] = []
    with _screenshot_module().browser_page() as page:
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(report_html.as_uri(), wait_until="load")
        images = page.evaluate(
            "Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])"
        )
        tables = page.evaluate(
            """Array.from(document.querySelectorAll('table')).map(t => [
                 t.rows.length, t.rows[0].cells.length, t.getBoundingClientRect().height])"""
        )
        cells = page.evaluate(
            "Array.from(document.querySelectorAll('td')).map(td => td.textContent.trim())"
        )
        pwned = page.evaluate("window.pwned === undefined ? null : window.pwned")
        bold_energy = page.evaluate(
            "Array.from(document.querySelectorAll('b')).filter(b => b.textContent === 'energy')"
            ".length"
        )
        # the inline sorting script runs: a click on a header marks it ascending
        page.click("table.sortable th >> nth=0")
        sorted_class = page.get_attribute("table.sortable th >> nth=0", "class")
    assert errors == [], errors
    assert len(images) >= 4, images  # histograms, ROC, logit norm, reliability
    broken = [alt for alt, done, width in images if not done or width == 0]
    assert broken == [], f"images that did not load: {broken}"
    assert len(tables) >= 6
    empty = [t for t in tables if not (t[0] >= 2 and t[1] >= 2 and t[2] > 0)]
    assert empty == [], f"tables without rows or not drawn: {empty} of {tables}"
    assert EVIL in cells  # the name as text, in a table cell
    assert pwned is None and bold_energy == 0  # never parsed: no handler ran, no <b> made
    assert sorted_class == "asc"
