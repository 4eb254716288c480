"""Common corruptions at 5 severities, for the covariate-shifted ID track.

The severity parameters are CIFAR-10-C's (Hendrycks & Dietterich, ICLR 2019), copied from the
reference code that made it: hendrycks/robustness, ImageNet-C/create_c/make_cifar_c.py at
commit ca360085d57889288c4143fddd8a707bbcae01bd. They were chosen for 32 x 32 images and serve
28 x 28 ones too (MNIST-C, Mu & Gilmer 2019, corrupts 28 x 28 digits with the same families,
at one severity each). ``corrupt-tta`` 0.1.7 was checked and not used: its tables are
ImageNet-C's (224 x 224: e.g. Gaussian noise sigma up to 0.38 and a defocus disk of radius 10,
against CIFAR-10-C's 0.10 and 1.5), which wipe out a 28 x 28 image (docs/datasets.md).

Each corruption is the reference formula on top of a library primitive where one does the
same thing (scipy.ndimage's Gaussian filter and correlate, torch's bilinear interpolation,
PIL's JPEG and box resize); ``how`` says which, and why a formula is written here.
Randomness comes from a counter-based stream per image fixed by (``SEED``, corruption,
severity, image index), so an image's corruption does not depend on which other images are
built with it.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

if TYPE_CHECKING:  # scipy and PIL load where used: `score` and `report` start fast
    from PIL import Image

SEED = 20190328  # any fixed number; it is part of every shifted set's cache identity
SEVERITIES = (1, 2, 3, 4, 5)
REFERENCE = (
    "hendrycks/robustness ImageNet-C/create_c/make_cifar_c.py "
    "@ ca360085d57889288c4143fddd8a707bbcae01bd"
)
CHUNK = 1000  # images per step: bounds the float64 working copy

# x: float64 N x C x H x W in [0, 1]; returns the corrupted batch (any range; clipped after)
Apply = Callable[[np.ndarray, Any, Iterable[np.random.Generator]], np.ndarray]


@dataclass(frozen=True)
class Corruption:
    name: str  # make_cifar_c.py's function name
    params: tuple[Any, ...]  # severity 1..5, as in make_cifar_c.py
    apply: Apply
    how: str  # the library that does the work, or why it is written here
    seeded: bool = False  # draws random numbers (a stream per image, ``image_rngs``)


# ------------------------------------------------------------------------ noise


def _per_image(draw: Callable[[np.random.Generator, np.ndarray], np.ndarray]) -> Callable:
    def apply(x: np.ndarray, rngs: Iterable[np.random.Generator]) -> np.ndarray:
        return np.stack([draw(rng, xi) for rng, xi in zip(rngs, x, strict=True)])

    return apply


def gaussian_noise(x: np.ndarray, c: float, rngs: Iterable[np.random.Generator]) -> np.ndarray:
    return x + _per_image(lambda r, xi: r.normal(size=xi.shape, scale=c))(x, rngs)


def shot_noise(x: np.ndarray, c: float, rngs: Iterable[np.random.Generator]) -> np.ndarray:
    return _per_image(lambda r, xi: r.poisson(xi * c))(x, rngs) / c


def impulse_noise(x: np.ndarray, c: float, rngs: Iterable[np.random.Generator]) -> np.ndarray:
    # skimage.util.random_noise(mode="s&p", amount=c): a fraction c of the values, each set to
    # 0 or 1 with even odds
    def draw(r: np.random.Generator, xi: np.ndarray) -> np.ndarray:
        flipped, salted = r.random(xi.shape) < c, r.random(xi.shape) < 0.5
        return np.where(flipped, salted.astype(np.float64), xi)

    return _per_image(draw)(x, rngs)


def speckle_noise(x: np.ndarray, c: float, rngs: Iterable[np.random.Generator]) -> np.ndarray:
    return x + x * _per_image(lambda r, xi: r.normal(size=xi.shape, scale=c))(x, rngs)


# ------------------------------------------------------------------------ blur


def gaussian_blur(x: np.ndarray, c: float, rngs: Iterable[np.random.Generator]) -> np.ndarray:
    # skimage.filters.gaussian(sigma=c, multichannel=True) is this scipy call (mode "nearest")
    from scipy import ndimage

    return ndimage.gaussian_filter(x, sigma=(0, 0, c, c), mode="nearest")


def _disk(radius: float, alias_blur: float) -> np.ndarray:
    """make_cifar_c.py's ``disk`` (radius <= 8): an aliased 17 x 17 disk smoothed by a 3 x 3
    Gaussian (cv2.GaussianBlur's weights for ksize 3)."""
    grid = np.arange(-8, 9)
    xx, yy = np.meshgrid(grid, grid)
    disk = ((xx**2 + yy**2) <= radius**2).astype(np.float64)
    disk /= disk.sum()
    g = np.exp(-np.array([1.0, 0.0, 1.0]) / (2 * alias_blur**2))
    g /= g.sum()
    from scipy import ndimage

    return ndimage.correlate(disk, np.outer(g, g), mode="mirror")


def defocus_blur(x: np.ndarray, c: tuple, rngs: Iterable[np.random.Generator]) -> np.ndarray:
    kernel = _disk(*c)[None, None]
    # cv2.filter2D's default border (BORDER_REFLECT_101) is scipy's "mirror"
    from scipy import ndimage

    return ndimage.correlate(x, kernel, mode="mirror")


def _clipped_zoom(x: torch.Tensor, factor: float) -> torch.Tensor:
    """make_cifar_c.py's ``clipped_zoom`` on a batch: crop the centre, zoom it back up
    (bilinear), trim to size. Height and width are handled apart."""
    h, w = x.shape[-2:]
    ch, cw = int(np.ceil(h / factor)), int(np.ceil(w / factor))
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = x[..., top : top + ch, left : left + cw]
    # scipy.ndimage.zoom(order=1), as the reference, is bilinear with aligned corners and the
    # same output size (Python's round); torch's interpolate gives the same values, faster
    size = (round(ch * factor), round(cw * factor))
    out = F.interpolate(crop, size=size, mode="bilinear", align_corners=True)
    trim_top, trim_left = (out.shape[-2] - h) // 2, (out.shape[-1] - w) // 2
    return out[..., trim_top : trim_top + h, trim_left : trim_left + w]


def zoom_blur(x: np.ndarray, c: np.ndarray, rngs: Iterable[np.random.Generator]) -> np.ndarray:
    images = torch.from_numpy(x).float()  # float32, as the reference's zoom_blur
    out = torch.zeros_like(images)
    for factor in c:
        out += _clipped_zoom(images, float(factor))
    return ((images + out) / (len(c) + 1)).double().numpy()


# ------------------------------------------------------------------------ weather


def _plasma_fractal(size: int, decay: float, u: np.ndarray) -> np.ndarray:
    """make_cifar_c.py's diamond-square height maps (side ``size``, a power of two) in [0, 1],
    for a batch: ``u`` holds each map's uniform [0, 1) draws (``_plasma_draws`` of them)."""
    grid = np.zeros((len(u), size, size))
    step, wibble, used = size, 100.0, 0

    def wibbled(a: np.ndarray) -> np.ndarray:
        nonlocal used
        n = a.shape[1] * a.shape[2]
        noise = u[:, used : used + n].reshape(a.shape) * 2 - 1  # uniform(-1, 1)
        used += n
        return a / 4 + wibble * wibble * noise

    while step >= 2:
        half = step // 2
        corners = grid[:, 0:size:step, 0:size:step]
        squares = corners + np.roll(corners, -1, axis=1)
        squares += np.roll(squares, -1, axis=2)
        grid[:, half:size:step, half:size:step] = wibbled(squares)
        dr = grid[:, half:size:step, half:size:step]
        ul = grid[:, 0:size:step, 0:size:step]
        lt = dr + np.roll(dr, 1, axis=1) + ul + np.roll(ul, -1, axis=2)
        grid[:, 0:size:step, half:size:step] = wibbled(lt)
        tt = dr + np.roll(dr, 1, axis=2) + ul + np.roll(ul, -1, axis=1)
        grid[:, half:size:step, 0:size:step] = wibbled(tt)
        step //= 2
        wibble /= decay
    grid -= grid.min(axis=(1, 2), keepdims=True)
    return grid / grid.max(axis=(1, 2), keepdims=True)


def _plasma_draws(size: int) -> int:
    """How many uniform numbers one height map takes: 3 (size / step)^2 per halving step."""
    return sum(3 * (size // (1 << k)) ** 2 for k in range(size.bit_length() - 1))


def fog(x: np.ndarray, c: tuple, rngs: Iterable[np.random.Generator]) -> np.ndarray:
    h, w = x.shape[-2:]
    size = 1 << max(h - 1, w - 1, 1).bit_length()  # 32 for 28 and 32 px, as the reference
    u = np.stack([r.random(_plasma_draws(size)) for r in rngs])
    haze = c[0] * _plasma_fractal(size, c[1], u)[:, None, :h, :w]
    top = x.max(axis=(1, 2, 3), keepdims=True)
    return (x + haze) * top / (top + c[0])


# ------------------------------------------------------------------------ digital


def contrast(x: np.ndarray, c: float, rngs: Iterable[np.random.Generator]) -> np.ndarray:
    # per-channel mean, as the reference (torchvision's adjust_contrast uses the grey mean)
    means = x.mean(axis=(2, 3), keepdims=True)
    return (x - means) * c + means


def brightness(x: np.ndarray, c: float, rngs: Iterable[np.random.Generator]) -> np.ndarray:
    # The reference adds c to V in HSV. With hue and saturation fixed, RGB is proportional to V,
    # so this is a rescale by V'/V (grey pixels, V = 0: all channels V'). torchvision's
    # adjust_brightness multiplies instead, which leaves black black.
    v = x.max(axis=1, keepdims=True)
    v_new = np.clip(v + c, 0, 1)
    return np.where(v > 0, x * v_new / np.where(v > 0, v, 1), v_new)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, 0, 1) * 255).round().astype(np.uint8)  # exact: x holds uint8 / 255


def _per_pil(x: np.ndarray, change: Callable[[Image.Image], Image.Image]) -> np.ndarray:
    """``change`` applied to each image as a PIL image (grey "L" or "RGB"), back to floats."""
    from PIL import Image

    def one(img: np.ndarray) -> np.ndarray:
        arr = np.asarray(
            change(Image.fromarray(img[0] if len(img) == 1 else img.transpose(1, 2, 0)))
        )
        return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)

    return np.stack([one(img) for img in _to_uint8(x)]).astype(np.float64) / 255


def jpeg_compression(x: np.ndarray, c: int, rngs: Iterable[np.random.Generator]) -> np.ndarray:
    # PIL, as the reference (torchvision's jpeg is deprecated with its image codecs in 0.29)
    from PIL import Image

    def jpeg(img: Image.Image) -> Image.Image:
        buffer = io.BytesIO()
        img.save(buffer, "JPEG", quality=c)
        return Image.open(buffer)

    return _per_pil(x, jpeg)


def pixelate(x: np.ndarray, c: float, rngs: Iterable[np.random.Generator]) -> np.ndarray:
    h, w = x.shape[-2:]
    small = (int(w * c), int(h * c))
    from PIL import Image

    box = Image.Resampling.BOX
    return _per_pil(x, lambda img: img.resize(small, box).resize((w, h), box))


# ------------------------------------------------------------------------ the catalogue

# ``how``: the library call that does the work, or "hand-written" and why (docs/datasets.md)
_SEEDED = "hand-written (a line of numpy, with a random stream per image)"
CORRUPTIONS: dict[str, Corruption] = {
    c.name: c
    for c in (
        Corruption("gaussian_noise", (0.04, 0.06, 0.08, 0.09, 0.10), gaussian_noise, _SEEDED,
                   seeded=True),
        Corruption("shot_noise", (500, 250, 100, 75, 50), shot_noise, _SEEDED, seeded=True),
        Corruption("impulse_noise", (0.01, 0.02, 0.03, 0.05, 0.07), impulse_noise,
                   _SEEDED + "; skimage's s&p noise without scikit-image", seeded=True),
        Corruption("speckle_noise", (0.06, 0.1, 0.12, 0.16, 0.2), speckle_noise, _SEEDED,
                   seeded=True),
        Corruption("gaussian_blur", (0.4, 0.6, 0.7, 0.8, 1), gaussian_blur,
                   "scipy.ndimage.gaussian_filter (what skimage's gaussian calls)"),
        Corruption("defocus_blur", ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),
                   defocus_blur, "scipy.ndimage.correlate with the reference's disk kernel"),
        Corruption("zoom_blur", (np.arange(1, 1.06, 0.01), np.arange(1, 1.11, 0.01),
                                 np.arange(1, 1.16, 0.01), np.arange(1, 1.21, 0.01),
                                 np.arange(1, 1.26, 0.01)), zoom_blur,
                   "torch bilinear interpolate (= the reference's scipy.ndimage.zoom)"),
        Corruption("fog", ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)), fog,
                   "hand-written: the reference's plasma fractal (no library has it)",
                   seeded=True),
        Corruption("brightness", (0.05, 0.1, 0.15, 0.2, 0.3), brightness,
                   "hand-written: adds to HSV's V (torchvision's adjust_brightness scales)"),
        Corruption("contrast", (0.75, 0.5, 0.4, 0.3, 0.15), contrast,
                   "hand-written: per-channel mean (torchvision's uses the grey mean)"),
        Corruption("pixelate", (0.95, 0.9, 0.85, 0.75, 0.65), pixelate,
                   "PIL box resize down and up"),
        Corruption("jpeg_compression", (80, 65, 58, 50, 40), jpeg_compression,
                   "PIL JPEG encode and decode"),
    )
}  # fmt: skip


def image_rngs(name: str, severity: int, indices: Iterable[int]) -> Iterator[np.random.Generator]:
    """Each image's random stream, in order: numpy's counter-based Philox keyed by (``SEED``,
    corruption, severity), started at counter (0, image index, 0, 0), so the streams never
    overlap and an image's numbers do not depend on the others. One Generator is moved from
    image to image (20x cheaper than a Generator per image): draw from each before the next."""
    key = np.array([SEED, zlib.crc32(name.encode()) << 8 | severity], dtype=np.uint64)
    bits = np.random.Philox(key=key)
    rng = np.random.Generator(bits)
    for index in indices:
        bits.state = {
            "bit_generator": "Philox",
            "state": {"counter": np.array([0, index, 0, 0], dtype=np.uint64), "key": key},
            "buffer": np.zeros(4, dtype=np.uint64),
            "buffer_pos": 4,
            "has_uint32": 0,
            "uinteger": 0,
        }
        yield rng


def corrupt(images: torch.Tensor, name: str, severity: int, start: int = 0,
            indices: Sequence[int] | None = None) -> torch.Tensor:  # fmt: skip
    """``images`` (uint8 N x C x H x W) corrupted by ``name`` at ``severity`` (1..5).

    ``start`` is the index of the first image in its set (it seeds each image), so corrupting
    a slice gives the same pixels as corrupting the whole set and slicing; ``indices`` (one per
    image) does the same for a sample of the set. Values are clipped to [0, 1] and truncated to
    uint8, as ``np.uint8(...)`` does in the reference.
    """
    index = list(indices) if indices is not None else range(start, start + len(images))
    spec = CORRUPTIONS[name]
    param = spec.params[severity - 1]
    out = torch.empty_like(images)
    for lo in range(0, len(images), CHUNK):
        chunk = images[lo : lo + CHUNK].numpy().astype(np.float64) / 255
        seeds = index[lo : lo + len(chunk)] if spec.seeded else ()
        rngs = image_rngs(name, severity, seeds)
        # + 1e-6: a value that is k / 255 * 255 in floating point truncates to k, not k - 1
        done = np.clip(spec.apply(chunk, param, rngs), 0, 1) * 255 + 1e-6
        out[lo : lo + CHUNK] = torch.from_numpy(done.astype(np.uint8))
    return out
