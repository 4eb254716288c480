"""``oodbench`` under torchrun, recording the training images each rank steps on.

    python -m torch.distributed.run --nproc_per_node=2 tests/_ddp_probe.py OUT_DIR train ...

writes ``OUT_DIR/rank<R>.json``: ``{epoch: [index of every image stepped on, in order]}``, the
indices into the run's training set, taken from the batches ``Loop.step`` really trained on.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from oodbench.cli import main
from oodbench.train import loop


def record() -> dict[int, list[int]]:
    seen: dict[int, list[int]] = {}
    real = loop.Loop.step

    def step(self: loop.Loop, plan: Any, epoch: int, s: int, *rest: Any) -> None:
        batch = plan[0][s * self.batch : (s + 1) * self.batch]
        seen.setdefault(epoch, []).extend(batch.tolist())
        real(self, plan, epoch, s, *rest)

    loop.Loop.step = step  # type: ignore[method-assign]
    return seen


if __name__ == "__main__":
    out, argv = Path(sys.argv[1]), sys.argv[2:]
    seen = record()
    code = main(argv)
    (out / f"rank{os.environ.get('RANK', '0')}.json").write_text(json.dumps(seen))
    sys.exit(code)
