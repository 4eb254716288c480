"""Declared detector hyperparameters: ``k = Param(50, low=1)`` on the class.

``Param`` lives in ``oodbench.registry``, shared with the losses' hyperparameters; this module
re-exports it for the detectors. A ``Param`` is a data descriptor: ``detector.k`` is the plain
typed value, and every way of setting it (the constructor, ``--param knn.k=200``, assignment)
goes through ``Param.check``, the one place that validates a value and names it and its
allowed range when it is wrong.
"""

from oodbench.registry import Param, fmt

__all__ = ["Param", "fmt"]
