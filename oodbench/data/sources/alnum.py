"""``alnum-fonts``: 59 classes of digits and Latin letters rendered from many installed fonts.

Like EMNIST ByClass (digits, upper and lower case), minus ``I``, ``O`` and ``l``, which many
fonts draw the same as ``1`` and ``0``. Unlike notMNIST's per-glyph box, a font's characters
share one frame: the font's union box over all 59 characters is scaled to ``BOX_PX`` and each
character keeps its place in it, so ``o`` stays smaller than ``O`` and ``p`` hangs below the
line. A font is dropped when it lacks a character, draws two the same (a symbol or all-caps
font), or duplicates or nearly duplicates a font already taken (root-mean-square pixel difference
of the 59 renderings below ``NEAR_RMS``: metric clones such as Liberation Sans and Nimbus Sans).

Split rule (group-disjoint): a font's group is its design family, the first word of its full
name (``font_group``: "Nimbus Sans Bold" and "NimbusRoman-Italic" -> ``nimbus``, "CMU Serif" ->
``cmu``); a group is *test* when ``sha256(TEST_SALT + group)`` is 0 mod 4, else *train*.
Near-duplicates are removed over all fonts before the split, so clones filed under two
families (FreeSerif of Nimbus Roman) are on one side only.

Near-OOD track: ``alnum-fonts-known50`` trains without the nine characters of ``UNKNOWN``, each
of which has a look-alike among the known ones (5~S, 8~B, E~F, Q~0, V~U, b~6, n~h, q~g, y~v).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from oodbench.data.cache import cached, file_identity
from oodbench.data.imageset import ImageSet
from oodbench.data.sources import classsplit, glyphs
from oodbench.data.sources.common import make_set
from oodbench.errors import UserError

NAME = "alnum-fonts"
CLASSES = tuple("0123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz")
UNKNOWN = tuple(CLASSES.index(c) for c in "58EQVbnqy")
BOX_PX, OUT_PX = 24, 28
NEAR_RMS = 25.0  # root-mean-square difference over the 59 renderings, 0-255 scale
TEST_SALT, TEST_MODULUS = "oodbench-id-test:", 4
RECIPE = 1  # bump when the rendering or the font filter changes
FONT_ROOT = Path("/usr/share/fonts")
# Debian font packages with many Latin design families (scripts/install-data.sh installs them).
PACKAGES = (
    "fonts-adf-accanthis fonts-adf-baskervald fonts-adf-berenis fonts-adf-gillius "
    "fonts-adf-ikarius fonts-adf-irianis fonts-adf-libris fonts-adf-mekanus fonts-adf-oldania "
    "fonts-adf-romande fonts-adf-solothurn fonts-adf-switzera fonts-adf-tribun "
    "fonts-adf-universalis fonts-adf-verana fonts-averia-gwf fonts-averia-sans-gwf "
    "fonts-averia-serif-gwf fonts-cabin fonts-cabinsketch fonts-comic-neue fonts-dosis "
    "fonts-dustin fonts-ebgaramond fonts-femkeklaver fonts-fanwood fonts-goudybookletter "
    "fonts-humor-sans fonts-isabella fonts-jura fonts-kristi fonts-league-spartan "
    "fonts-lobster fonts-lobstertwo fonts-oflb-euterpe fonts-prociono fonts-quicksand "
    "fonts-radisnoir fonts-sora fonts-beteckna fonts-blankenburg fonts-breip "
    "fonts-dkg-handwriting fonts-hermit fonts-inconsolata fonts-agave fonts-anonymous-pro "
    "fonts-go fonts-cantarell fonts-crosextra-caladea fonts-oldstandard fonts-sil-gentium "
    "fonts-manrope fonts-roboto-slab fonts-tlwg-garuda-ttf fonts-tlwg-kinnari-ttf "
    "fonts-tlwg-laksaman-ttf fonts-tlwg-loma-ttf fonts-cardo fonts-linuxlibertine "
    "fonts-freefont-ttf fonts-cmu fonts-liberation"
).split()
# The folders under /usr/share/fonts these and fonts-urw-base35, fonts-bwht, fonts-dejavu-core
# and fonts-noto-core (also in scripts/install-data.sh) put fonts in (dpkg -L).
DIRS = (
    "fonts-go opentype/bwht opentype/cabin opentype/cantarell opentype/comic-neue opentype/dosis "
    "opentype/ebgaramond opentype/fonts-prociono opentype/jura opentype/league-spartan "
    "opentype/linux-libertine opentype/lobster opentype/lobstertwo opentype/radisnoir "
    "opentype/roboto/slab opentype/sora opentype/sortsmill opentype/urw-base35 truetype/adf "
    "truetype/agave truetype/anonymous-pro truetype/averia-gwf truetype/beteckna "
    "truetype/blankenburg truetype/breip truetype/cabinsketch truetype/cardo truetype/cmu "
    "truetype/crosextra truetype/dejavu truetype/dustin truetype/euterpe truetype/fanwood "
    "truetype/femkeklaver truetype/fifthhorseman truetype/fonts-oldstandard truetype/freefont "
    "truetype/gentium truetype/hermit truetype/humor-sans truetype/inconsolata "
    "truetype/isabella truetype/kristi truetype/liberation truetype/manrope truetype/noto "
    "truetype/quicksand truetype/tlwg"
).split()
# One folder each of a few of them: present means `make data` ran (the set needs them all).
MARKERS = ("truetype/adf", "truetype/freefont", "truetype/dustin", "truetype/cmu", "truetype/tlwg")
INSTALL = f"run 'make data' (apt-get install {' '.join(PACKAGES)})"


def font_root(root: Path | None) -> Path:
    return root / "fonts" if root is not None and (root / "fonts").is_dir() else FONT_ROOT


def font_group(full_name: str) -> str:
    """The design family: the first word of the full name, cut at a lower-to-upper case step."""
    word = re.split(r"[\s_-]", full_name.strip())[0]
    return re.match(r"[A-Z]*[a-z0-9]+|[A-Z0-9]+|.*", word).group(0).lower()  # type: ignore[union-attr]


def is_test(group: str) -> bool:
    digest = hashlib.sha256(f"{TEST_SALT}{group}".encode()).hexdigest()
    return int(digest, 16) % TEST_MODULUS == 0


def render_font(path: Path) -> np.ndarray | None:
    """59 x 28 x 28 uint8, white on black, or None when the font lacks or merges characters."""
    font = glyphs.load_font(path)
    boxes = [font.getbbox(c) for c in CLASSES]
    if any(r <= lft or b <= t for lft, t, r, b in boxes):
        return None
    top, bottom = min(b[1] for b in boxes), max(b[3] for b in boxes)
    scale = BOX_PX / max(bottom - top, max(r - lft for lft, _, r, _ in boxes))
    out = np.zeros((len(CLASSES), OUT_PX, OUT_PX), dtype=np.uint8)
    height = max(1, round((bottom - top) * scale))
    for i, (char, (left, _, right, _)) in enumerate(zip(CLASSES, boxes, strict=True)):
        canvas = Image.new("L", (right - left, bottom - top), 0)
        ImageDraw.Draw(canvas).text((-left, -top), char, font=font, fill=255)
        size = (max(1, round((right - left) * scale)), height)
        glyph = canvas.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
        frame = Image.new("L", (OUT_PX, OUT_PX), 0)
        frame.paste(glyph, ((OUT_PX - size[0]) // 2, (OUT_PX - height) // 2))
        out[i] = np.asarray(frame)
    blank = out.reshape(len(out), -1).max(1).min() == 0
    return None if blank or len({g.tobytes() for g in out}) < len(CLASSES) else out


def _read(path: Path) -> tuple[str, np.ndarray | None]:
    """(group, renderings) of a usable font, else (why it is not used, None)."""
    try:
        cmap, full_name = glyphs.read_cmap(path)
        if any(ord(c) not in cmap for c in CLASSES):
            return "lacks a character", None
        rendered = render_font(path)
    except Exception as exc:  # fontTools/FreeType raise many types for a damaged file
        return f"unreadable font: {type(exc).__name__}", None
    if rendered is None:
        return "characters missing or identical", None
    return font_group(full_name), rendered


def near_duplicate_of(stacks: list[np.ndarray]) -> list[int | None]:
    """For each font, the earlier *kept* font it nearly duplicates (RMS < ``NEAR_RMS``), or None."""
    if not stacks:
        return []
    flat = torch.from_numpy(np.stack(stacks).reshape(len(stacks), -1)).float()
    rms = torch.cdist(flat, flat).div_(flat.shape[1] ** 0.5)
    out: list[int | None] = []
    kept: list[int] = []
    for i in range(len(stacks)):
        close = [j for j in kept if rms[i, j] < NEAR_RMS]
        out.append(min(close, key=lambda j: float(rms[i, j])) if close else None)
        if not close:
            kept.append(i)
    return out


def build(files: list[Path]) -> ImageSet:
    """Every kept font, both splits; ``meta["font_test"]`` says which side each font is on."""
    fonts: list[Path] = []
    stacks: list[np.ndarray] = []
    groups: list[str] = []
    skipped: dict[str, str] = {}
    for path in files:
        what, rendered = _read(path)
        if rendered is None:
            skipped[path.name] = what
        else:
            fonts.append(path)
            stacks.append(rendered)
            groups.append(what)
    keep: list[int] = []
    for i, j in enumerate(near_duplicate_of(stacks)):
        if j is None:
            keep.append(i)
        else:
            skipped[fonts[i].name] = f"near-duplicate of {fonts[j].name}"
    stacks = [stacks[i] for i in keep]
    kept = [fonts[i] for i in keep]
    groups = [groups[i] for i in keep]
    if not kept:
        raise UserError(f"{NAME}: no usable fonts found; {INSTALL}")
    meta = {
        "source": "installed fonts",
        "classes": list(CLASSES),
        "fonts": [p.name for p in kept],
        "groups": groups,
        "font_test": [is_test(g) for g in groups],
        "counts": {"fonts": len(files), "kept": len(kept),
                   "near_duplicates": sum("near-dup" in r for r in skipped.values())},
        "skipped": skipped,
    }  # fmt: skip
    labels = np.tile(np.arange(len(CLASSES)), len(kept))
    return make_set(NAME, np.concatenate(stacks), labels, len(CLASSES), meta)


def split_of(full: ImageSet, split: str) -> ImageSet:
    per_font = np.repeat(np.array(full.meta["font_test"], dtype=bool), len(CLASSES))
    keep = per_font if split == "test" else ~per_font
    out = full.subset(torch.from_numpy(keep))
    fonts = [f for f, t in zip(full.meta["fonts"], full.meta["font_test"], strict=True)
             if t == (split == "test")]  # fmt: skip
    meta = {k: v for k, v in full.meta.items()
            if k not in ("font_test", "fonts", "groups", "skipped")}  # fmt: skip
    split_set = ImageSet(out.images, out.labels, NAME, full.num_classes, full.mean, full.std,
                         {**meta, "split": split, "split_fonts": fonts})  # fmt: skip
    return classsplit.stored_order(split_set, split)


def font_files(root: Path | None) -> list[Path]:
    """``--root/fonts``, else the font folders of the packages (other fonts installed here must
    not change the set)."""
    folder = font_root(root)
    return glyphs.font_files([folder] if folder != FONT_ROOT else [FONT_ROOT / d for d in DIRS])


def _available(root: Path | None) -> bool:
    folder = font_root(root)
    return folder != FONT_ROOT or all((FONT_ROOT / m).is_dir() for m in MARKERS)


def load_full(root: Path | None) -> ImageSet:
    if not _available(root):
        raise UserError(f"{NAME} needs the font packages of scripts/install-data.sh: {INSTALL}")
    files = font_files(root)
    identity = [file_identity(files), RECIPE, BOX_PX, OUT_PX, NEAR_RMS, TEST_SALT, TEST_MODULUS]
    return cached(NAME, "all", identity, lambda: build(files))


classsplit.register_grouped_id_set(
    NAME,
    geometry="1x28x28",
    classes=CLASSES,
    unknown=UNKNOWN,
    source="digits and letters (59 classes) rendered from the Debian font packages of "
    "scripts/install-data.sh; test split = the font families hashed to test",
    size="17,228 train, 6,195 test",
    split=lambda root, split: split_of(load_full(root), split),
    available=_available,
    install=INSTALL,
)
