"""A real malicious pickle payload, shared by the tests that prove it never runs."""

from __future__ import annotations

import os
from pathlib import Path


class Evil:
    """Unpickling this runs ``touch marker``: what a crafted checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)
