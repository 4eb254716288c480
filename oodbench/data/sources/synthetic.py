"""``gaussian`` and ``uniform``: seeded noise images, generated directly at the ID geometry.

The recipe follows Hendrycks et al. (Outlier Exposure, ICLR 2019), also used by the Energy and
LogitNorm code: Gaussian noise N(0, 0.5) clipped to [-1, 1] and uniform noise U(-1, 1) in
[-1, 1] pixel units. In [0, 1] units that is N(0.5, 0.25) clipped to [0, 1], and U(0, 1).

Both are validation sets (as Gaussian noise is in the LogitNorm paper): the defaults never
average them into a test result. ``--ood gaussian`` still scores on them when asked.
"""

from __future__ import annotations

import numpy as np

from oodbench.data.imageset import ImageSet
from oodbench.data.registry import DatasetSpec, LoadRequest, check_split, register
from oodbench.data.sources.common import make_set
from oodbench.errors import UserError

NUM_SAMPLES = 10_000
DEFAULT_GEOMETRY = (1, 28, 28)
SEEDS = {"gaussian": 20_220_001, "uniform": 20_220_002}


def generate(name: str, geometry: tuple[int, int, int], n: int = NUM_SAMPLES) -> ImageSet:
    """Noise images of shape n x C x H x W; the same (name, geometry, n) gives the same pixels."""
    c, h, w = geometry
    if c not in (1, 3) or h < 1 or w < 1 or n < 1:
        raise UserError(f"{name}: geometry must be (1 or 3, H, W) with H, W >= 1, got {geometry}")
    rng = np.random.default_rng(SEEDS[name])
    shape = (n, c, h, w)
    if name == "gaussian":  # float32 and in-place ops: 30M samples in well under a second
        x = rng.standard_normal(size=shape, dtype=np.float32)
        x *= 0.25 * 255
        x += 0.5 * 255
        images = np.clip(np.rint(x, out=x), 0, 255, out=x).astype(np.uint8)
    else:  # U(0, 1) quantised to the 256 pixel levels
        images = rng.integers(0, 256, size=shape, dtype=np.uint8)
    meta = {
        "source": "synthetic",
        "synthetic": name,
        "seed": SEEDS[name],
        "geometry": list(geometry),
        "split": "test",
    }
    return make_set(name, images, None, 0, meta)


def _loader(name: str):
    def load(req: LoadRequest) -> ImageSet:
        check_split(name, req.split, ("test",))
        return generate(name, tuple(req.geometry or DEFAULT_GEOMETRY))

    return load


for _name, _src in (
    ("gaussian", "synthetic N(0.5, 0.25) clipped to [0, 1], 10,000 seeded images"),
    ("uniform", "synthetic U(0, 1), 10,000 seeded images"),
):
    register(
        DatasetSpec(
            name=_name,
            kind="synthetic",
            geometry="ID geometry (default 1x28x28)",
            num_classes=0,
            source=_src,
            splits=("test",),
            loader=_loader(_name),
            available=lambda root: True,
            ood_role="validation",
        )
    )
