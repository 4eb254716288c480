"""``report --format html``: one self-contained file with the Markdown report's sections."""

from __future__ import annotations

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


# The page in a real browser (images load, tables drawn, no console error, markup shown as
# text): tests/test_browser.py.
