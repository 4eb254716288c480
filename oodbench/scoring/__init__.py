"""Scoring: one cached forward pass per (checkpoint, dataset) and the orchestrator behind
``oodbench score`` (fit detectors on the ID training split, score ID test and OOD sets, write
metrics). ``extract`` is the single-process pass, ``sharded`` the torchrun path reusing it,
``run`` the orchestrator.
"""
