"""``report --format html``: one self-contained file with the Markdown report's sections."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from test_columns import _two_runs

from oodbench.report import render


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.links: list[str] = []
        self.headings: list[str] = []
        self.scripts: list[dict[str, str | None]] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.links += [v or "" for k, v in attrs if k in ("src", "href")]
        if tag == "script":
            self.scripts.append(dict(attrs))
        self._in = tag if tag in ("h2", "h3") else None

    def handle_data(self, data: str) -> None:
        if self._in:
            self.headings.append(data.strip())


@pytest.fixture()
def page(tmp_path: Path) -> tuple[str, Page]:
    runs = _two_runs(tmp_path)
    text = render(runs, "html", protocol="paper", plots=tmp_path / "plots")
    parsed = Page()
    parsed.feed(text)
    return text, parsed


def test_html_has_the_markdown_sections(page: tuple[str, Page], tmp_path: Path) -> None:
    text, parsed = page
    md = render(_two_runs(tmp_path / "again"), "markdown", protocol="paper")
    sections = [line[3:] for line in md.splitlines() if line.startswith("## ")]
    assert sections and all(s in parsed.headings for s in sections), (sections, parsed.headings)
    assert parsed.tags.count("table") >= len(sections) - 1
    assert 'class="sortable"' in text and "<th>" in text


def test_html_is_self_contained(page: tuple[str, Page]) -> None:
    text, parsed = page
    assert "img" in parsed.tags  # the plots are there ...
    assert all(link.startswith("data:image/png;base64,") for link in parsed.links)  # ... inline
    assert parsed.scripts and all("src" not in s for s in parsed.scripts)  # no external script
    assert "http://" not in text.split("<body>")[0] and "<link" not in text


@pytest.mark.slow
def test_html_renders_in_headless_chromium(tmp_path: Path) -> None:
    """Needs Debian's chromium (apt-get install -y chromium): the screenshot is not blank."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed")
    from PIL import Image, ImageStat

    out = tmp_path / "report.html"
    render(_two_runs(tmp_path), "html", out=out, protocol="paper")
    shot = tmp_path / "shot.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                    f"--screenshot={shot}", "--window-size=1200,1600", out.as_uri()],
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    stat = ImageStat.Stat(Image.open(shot).convert("L"))
    assert stat.stddev[0] > 10, "the screenshot is blank"
