"""The shifted track's corruptions against the library calls of CIFAR-10-C's reference code.

    PYTHONPATH=<dir with scikit-image and opencv-python-headless> \\
        .venv/bin/python benchmarks/shifted_vs_reference.py [N]

hendrycks/robustness, ImageNet-C/create_c/make_cifar_c.py (commit ca360085) builds its
corruptions on scikit-image, OpenCV, scipy and PIL; oodbench needs none of the first two. This
script recomputes each deterministic corruption with those libraries, the way the reference
calls them, on N Fashion-MNIST test images (default 200; colour: N random 32 x 32 images) and
prints the largest pixel difference and the share of pixels that differ. Random corruptions
cannot match pixel for pixel (other random numbers): for them it compares the mean and the
standard deviation of the change against the same formula with numpy's global generator.
"""

from __future__ import annotations

import io
import sys

import cv2
import numpy as np
import torch
from PIL import Image
from scipy.ndimage import zoom as scizoom
from skimage import color, util
from skimage.filters import gaussian

from oodbench.data import load
from oodbench.data.corruptions import CORRUPTIONS, corrupt


def _disk(radius: float, alias_blur: float) -> np.ndarray:
    grid = np.arange(-8, 9)
    xx, yy = np.meshgrid(grid, grid)
    disk = np.array((xx**2 + yy**2) <= radius**2, dtype=np.float32)
    disk /= disk.sum()
    return cv2.GaussianBlur(disk, ksize=(3, 3), sigmaX=alias_blur)


def _zoom(img: np.ndarray, factor: float) -> np.ndarray:
    h = img.shape[0]
    ch = int(np.ceil(h / factor))
    top = (h - ch) // 2
    out = scizoom(img[top : top + ch, top : top + ch], (factor, factor, 1), order=1)
    trim = (out.shape[0] - h) // 2
    return out[trim : trim + h, trim : trim + h]


def _pil(x: np.ndarray) -> Image.Image:
    return Image.fromarray(x[..., 0] if x.shape[2] == 1 else x)


def _jpeg(x: np.ndarray, q: int) -> np.ndarray:
    buf = io.BytesIO()
    _pil(x).save(buf, "JPEG", quality=q)
    return np.asarray(Image.open(buf)).reshape(x.shape).astype(np.float64)


def _pixelate(x: np.ndarray, c: float) -> np.ndarray:
    h, w = x.shape[:2]
    small = _pil(x).resize((int(w * c), int(h * c)), Image.Resampling.BOX)
    return np.asarray(small.resize((w, h), Image.Resampling.BOX)).reshape(x.shape) * 1.0


def _hsv_v(x: np.ndarray, c: float) -> np.ndarray:
    rgb = np.repeat(x, 3, axis=2) if x.shape[2] == 1 else x
    hsv = color.rgb2hsv(rgb / 255.0)
    hsv[:, :, 2] = np.clip(hsv[:, :, 2] + c, 0, 1)
    out = color.hsv2rgb(hsv)
    return (out[..., :1] if x.shape[2] == 1 else out) * 255


def _contrast(x: np.ndarray, c: float) -> np.ndarray:
    x = x / 255.0
    means = np.mean(x, axis=(0, 1), keepdims=True)
    return ((x - means) * c + means) * 255


# name -> f(HWC uint8 image, parameter) -> HWC floats in [0, 255] before clipping
DETERMINISTIC = {
    "gaussian_blur": lambda x, c: gaussian(x / 255.0, sigma=c, channel_axis=-1) * 255,
    "defocus_blur": lambda x, c: (
        np.stack(
            [cv2.filter2D(x[:, :, d] / 255.0, -1, _disk(*c)) for d in range(x.shape[2])], axis=2
        )
        * 255
    ),
    "zoom_blur": lambda x, c: (
        (x / 255.0 + sum(_zoom(x / 255.0, f) for f in c)) / (len(c) + 1) * 255
    ),
    "brightness": _hsv_v,
    "contrast": _contrast,
    "jpeg_compression": _jpeg,
    "pixelate": _pixelate,
}
RANDOM = {
    "gaussian_noise": lambda x, c: x + np.random.normal(size=x.shape, scale=c),
    "shot_noise": lambda x, c: np.random.poisson(x * c) / c,
    "impulse_noise": lambda x, c: util.random_noise(x, mode="s&p", amount=c),
    "speckle_noise": lambda x, c: x + x * np.random.normal(size=x.shape, scale=c),
}


def compare(images: torch.Tensor) -> None:
    hwc = images.permute(0, 2, 3, 1).numpy()
    for name, ref in DETERMINISTIC.items():
        worst, share = 0, []
        for severity, param in enumerate(CORRUPTIONS[name].params, 1):
            ours = corrupt(images, name, severity).permute(0, 2, 3, 1).numpy().astype(int)
            theirs = np.stack([np.uint8(np.clip(ref(x, param), 0, 255)) for x in hwc])
            diff = np.abs(ours - theirs.astype(int))
            worst, share = max(worst, int(diff.max())), [*share, (diff > 0).mean()]
        print(f"{name:18s} max |diff| {worst:3d}, differing pixels {max(share):.2%} (worst "
              f"severity)")  # fmt: skip
    np.random.seed(0)
    for name, ref in RANDOM.items():
        for severity in (1, 5):
            param = CORRUPTIONS[name].params[severity - 1]
            ours = corrupt(images, name, severity).float() - images.float()
            theirs = np.stack([np.uint8(np.clip(ref(x / 255.0, param), 0, 1) * 255) for x in hwc])
            delta = theirs.astype(float) - hwc
            print(f"{name:18s} s{severity}: change mean {ours.mean():6.2f} vs {delta.mean():6.2f}, "
                  f"std {ours.std():6.2f} vs {delta.std():6.2f}")  # fmt: skip


def main(n: int) -> None:
    print(f"fashion-mnist, first {n} test images")
    compare(load("fashion-mnist", "test").images[:n])
    print(f"{n} random colour 32 x 32 images")
    gen = torch.Generator().manual_seed(0)
    compare(torch.randint(0, 256, (n, 3, 32, 32), generator=gen, dtype=torch.uint8))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
