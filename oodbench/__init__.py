import os

# OpenMP threads that spin-wait at every barrier collapse when the cores are shared (CI, a
# laptop, several jobs): on a busy 2-core machine a small_cnn epoch ran at 150-350 img/s with
# the default policy and at 1,300-2,600 img/s with PASSIVE (docs/performance.md). It must be
# set before torch loads its OpenMP runtime, hence here; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
