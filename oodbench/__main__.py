"""``python -m oodbench`` (and ``torchrun -m oodbench``) runs the CLI."""

from oodbench.cli import run

if __name__ == "__main__":
    run()
