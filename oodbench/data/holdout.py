"""The held-out validation part of the offline real-image OOD sets, by construction.

``notmnist-fonts``, ``world-scripts`` and ``textures-openarena`` are each split in two by the
*group* their items come from: a font's design family (``nimbus``, ``dejavu``: the first four
letters and digits of the file name, all Computer Modern fonts as ``cm``), a script's ISO 15924
code, a texture's folder inside the pk3 (``textures/gothic_wall``). A group goes to the
validation set (``<name>-val``) when ``sha256(SALT + group) mod MODULUS == 0``, else to the test
set. The rule reads only names, never pixels or scores, so it cannot favour any model, and a
group (every weight and style of a font family, every texture of a folder) is never on both
sides. Fonts are also deduplicated across the two sides (see ``sources/fonts.py``).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

SALT = "oodbench-val:"
MODULUS = 4  # about a quarter of the groups are validation
RULE = [SALT, MODULUS, 1]  # in cache identities: bump the last number when the rule changes
PARTS = ("test", "validation")


def part_of(group: str) -> str:
    """ "validation" or "test" for one group name."""
    digest = hashlib.sha256(f"{SALT}{group}".encode()).hexdigest()
    return "validation" if int(digest, 16) % MODULUS == 0 else "test"


def font_group(path: Path) -> str:
    """A font file's design family: ``NimbusSans-Bold.otf`` -> ``nimb``, ``cmr10.ttf`` -> ``cm``."""
    stem = re.sub(r"[^a-z0-9]", "", path.stem.lower())
    return "cm" if stem.startswith("cm") else stem[:4]


def texture_group(member: str) -> str:
    """A pk3 member's folder: ``textures/gothic_wall/blocks15.jpg`` -> ``textures/gothic_wall``."""
    return str(Path(member).parent)
