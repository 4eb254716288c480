"""Scoring: one cached forward pass per (checkpoint, dataset) and the orchestrator behind
``oodbench score`` (fit detectors on the ID training split, score ID test and OOD sets, write
metrics). ``extract`` is the single-process cached pass, ``sharded`` the torchrun path reusing
it, ``inputs`` what a score call reads (run dir, ID splits, OOD sets), ``run`` the orchestrator,
which returns a ``ScoreResult``. Imports go one way: run -> sharded -> inputs, extract.
"""
