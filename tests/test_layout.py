"""The package layout the design promises (../shared/DESIGN.md, issue 11), read from the source.

Every ``import`` counts, function-level ones included; only ``if TYPE_CHECKING:`` blocks are
skipped, since they never run. A stage is a sub-package or a top-level module of ``oodbench/``.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "oodbench"
MAX_TOP_LEVEL_MODULES = 12  # besides the stage packages, __init__ and __main__
MAX_LINES = 420
RUN_DIR_FILES = ("config.json", "metrics.csv", "summary.json", "history.csv",
                 "model.safetensors", "train_state.pt")  # fmt: skip
RUN_DIR_OWNER = "oodbench.runs"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


@cache
def tree(name: str) -> ast.Module:
    return ast.parse(modules()[name].read_text(encoding="utf-8"), str(modules()[name]))


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _nodes(node: ast.AST):  # noqa: ANN202 - every node but those under `if TYPE_CHECKING:`
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child):
            yield from (n for stmt in child.orelse for n in [stmt, *_nodes(stmt)])
            continue
        yield child
        yield from _nodes(child)


def imports(name: str) -> set[str]:
    """The oodbench modules ``name`` imports, anywhere in its code."""
    is_package = modules()[name].name == "__init__.py"
    found: set[str] = set()
    for node in _nodes(tree(name)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import sub` imports the module pkg.sub when there is one, else pkg
            subs = [f"{base}.{alias.name}" for alias in node.names]
            targets = [s if s in modules() else base for s in subs]
        else:
            continue
        found |= {t for t in targets if t in modules() and t != name}
    return found


def stage(name: str) -> str:
    parts = name.split(".")
    return ".".join(parts[:2])


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path [a, b, ..., a], or None (iterative DFS, three colours)."""
    state: dict[str, int] = {}
    for root in sorted(graph):
        if state.get(root):
            continue
        path, stack = [root], [iter(sorted(graph[root]))]
        state[root] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return None


def test_the_cycle_finder_finds_cycles() -> None:  # guard: the checks below can fail
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None
    assert "oodbench.scoring.extract" in imports("oodbench.extract")  # a re-export shim


def test_no_import_cycle_between_modules() -> None:
    graph = {name: imports(name) for name in modules()}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_import_cycle_between_stages() -> None:
    graph: dict[str, set[str]] = {}
    for name in modules():
        if name in ("oodbench", "oodbench.__main__"):
            continue  # the package root and the entry point import downwards only
        targets = {stage(t) for t in imports(name)} - {stage(name), "oodbench"}
        graph.setdefault(stage(name), set()).update(targets)
    cycle = find_cycle(graph)
    assert cycle is None, "stages import each other: " + " -> ".join(cycle or [])


def test_top_level_has_few_modules() -> None:
    top = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top


@pytest.mark.parametrize("name", sorted(modules()))
def test_no_module_is_too_long(name: str) -> None:
    lines = len(modules()[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{modules()[name]}: {lines} lines, split it"


def _docstrings(module: ast.Module) -> set[int]:
    nodes = [module, *(n for n in ast.walk(module) if isinstance(n, ast.FunctionDef
             | ast.AsyncFunctionDef | ast.ClassDef))]  # fmt: skip
    return {
        id(n.body[0].value)
        for n in nodes
        if n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)
    }


def test_run_dir_file_names_are_spelled_in_one_module() -> None:
    """A literal that is a run-dir file name (or a path ending in one) lives in runs.py only;
    prose that mentions a file (docstrings, messages) is not a spelling of its name."""
    pattern = re.compile(r"(^|/)(" + "|".join(map(re.escape, RUN_DIR_FILES)) + r")$")
    found = []
    for name in modules():
        if name == RUN_DIR_OWNER:
            continue
        docs = _docstrings(tree(name))
        for node in ast.walk(tree(name)):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in docs
                and pattern.search(node.value)
            ):
                found.append(f"{modules()[name].relative_to(PACKAGE.parent)}:{node.lineno}")
    assert RUN_DIR_OWNER in modules(), "oodbench/runs.py owns the run-dir file names"
    assert not found, f"run-dir file names spelled outside runs.py: {found}"


@pytest.mark.parametrize("stage_name", ["oodbench.scoring", "oodbench.report"])
def test_scoring_and_report_never_import_training(stage_name: str) -> None:
    """Issue 25: loading a run (models.weights), the ID split (data.split) and loss labels
    (the loss registry, oodbench.losses) sit below both, so a run trained elsewhere can be
    scored and reported without the training stage."""
    found = {
        f"{name} -> {target}"
        for name in modules()
        if stage(name) == stage_name
        for target in imports(name)
        if stage(target) == "oodbench.train"
    }
    assert not found, sorted(found)
