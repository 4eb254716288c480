"""Several ``oodbench`` commands in one torchrun launch, one after the other:

    python -m torch.distributed.run --nproc_per_node=2 tests/_ddp_many.py CMD1 -- CMD2 -- ...

each CMD an ``oodbench`` argument list. The first command joins the process group and every
later one finds it joined (``parallel.init``); it is left once, after the last (gloo cannot
join a second group from the same torchrun store). Sharing the launch saves each command the
processes' start (torch's import). Exits with the first non-zero exit code.
"""

from __future__ import annotations

import sys

from oodbench import parallel
from oodbench.cli import main


def commands(argv: list[str]) -> list[list[str]]:
    out: list[list[str]] = [[]]
    for arg in argv:
        if arg == "--":
            out.append([])
        else:
            out[-1].append(arg)
    return [c for c in out if c]


if __name__ == "__main__":
    leave, parallel.cleanup = parallel.cleanup, lambda ctx: None
    code = 0
    for cmd in commands(sys.argv[1:]):
        code = main(cmd)
        if code:
            break
    leave(parallel.init("cpu"))
    sys.exit(code)
