"""Dataset sources. Importing this package registers every source in ``DATASETS``."""

from oodbench.data.sources import idx  # noqa: F401
