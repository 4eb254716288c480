"""Command-line argument lists shared by the tests: one place for "tiny and fast".

``TRAIN`` trains small_cnn on ``SUBSET`` Fashion-MNIST images in ``STEPS`` steps an epoch;
add ``--epochs``. ``SCORE`` scores on the CPU without progress output.
"""

from __future__ import annotations

SUBSET, BATCH, VAL_SIZE = 256, 64, 64
STEPS = SUBSET // BATCH  # training steps per epoch
TRAIN = ["--subset", str(SUBSET), "--batch-size", str(BATCH), "--val-size", str(VAL_SIZE),
         "--device", "cpu", "-q"]  # fmt: skip
SCORE = ["--device", "cpu", "-q"]
OOD = ("gaussian", "mnist-5k")  # the OOD sets the shared run is scored on
DETECTORS = ("msp", "energy")  # the detectors the shared run is scored with
TINY = ["--epochs", "1", *TRAIN]  # the shared run's recipe: a complete, valid `train` tail
BENCH = ["--epochs", "1", "--subset", str(SUBSET), "--val-size", str(VAL_SIZE), "--device", "cpu",
         "-q"]  # fmt: skip
