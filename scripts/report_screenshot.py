"""Open an HTML report in Debian's Chromium through Playwright and save a screenshot.

    python scripts/report_screenshot.py report.html shot.png [--width 1000 --height 1300]
                                        [--colors 64]   # a palette PNG: a smaller file

No browser is downloaded: Playwright drives the system's ``/usr/bin/chromium`` (``apt-get
install -y chromium``), headless, offline, with a fresh profile. ``tests/test_browser.py``
opens reports with the same ``browser_page``.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update",
        "--disable-sync"]  # fmt: skip


@contextlib.contextmanager
def browser_page(width: int = 1000, height: int = 1300) -> Iterator[Any]:
    """A Playwright page in a fresh, throw-away Chromium profile."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw, tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        context = pw.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=ARGS,
            viewport={"width": width, "height": height},
        )  # fmt: skip
        try:
            yield context.new_page()
        finally:
            context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", type=Path)
    parser.add_argument("png", type=Path)
    parser.add_argument("--width", type=int, default=1000)
    parser.add_argument("--height", type=int, default=1300)
    parser.add_argument("--colors", type=int, default=0, help="quantize to this many colours")
    args = parser.parse_args()
    with browser_page(args.width, args.height) as page:
        page.goto(args.html.resolve().as_uri())
        page.screenshot(path=str(args.png))
    if args.colors:
        from PIL import Image

        Image.open(args.png).convert("RGB").quantize(args.colors).save(args.png, optimize=True)
    print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
