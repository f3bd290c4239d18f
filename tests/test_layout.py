"""The rules that keep the house's layout: what children may import, the one
CPython private the package leans on, and modules and functions short
enough to read in one sitting."""

from __future__ import annotations

import ast
import multiprocessing
import multiprocessing.process
import subprocess
import sys
from pathlib import Path

import pytest

from tickets.constants import STRATEGY_NAMES
from tickets.engine.children import forget

SRC = Path(__file__).resolve().parent.parent / "src" / "tickets"
#: What a forked buyer must not carry (see tickets.engine.child): memory every fork
#: and exit pays for, or at-fork hooks every buyer runs.
HEAVY = {
    "random",
    "threading",
    "click",
    "rich",
    "typing",
    "dataclasses",
    "pathlib",
    "inspect",
    "filelock",
    "multiprocessing",
    "subprocess",
    "asyncio",
}
#: The modules a buyer runs: the launcher and everything it loads.
BUYER_MODULES = [
    "tickets.engine.child.launcher",
    "tickets.engine.child.buyer",
    "tickets.engine.child.session",
    "tickets.engine.child.user_buyer",
    "tickets.check.events",
    "tickets.engine.child.plan",
    "tickets.engine.child.pipe",
    "tickets.stores.json_file",
    "tickets.stores.base",
    "tickets.stores",
    "tickets.locking.locks",
    "tickets.locking.strategies",
    "tickets.constants",
]
#: The one module that reads a strategy's name: the registry that parses it.
STRATEGY_REGISTRY = SRC / "locking" / "strategies.py"
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 60
#: Declarative click option blocks, exempt from the function length.
DECLARATIVE = {"sale_options"}


def loaded_after(code: str) -> set[str]:
    check = f"import sys; {code}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


def test_a_buyer_loads_nothing_heavy() -> None:
    loaded = loaded_after("import " + ", ".join(BUYER_MODULES))
    assert sorted(HEAVY & loaded) == []


def test_the_file_lock_loads_filelock_only_when_built(tmp_path: Path) -> None:
    store = tmp_path / "s.json"
    build = (
        "from tickets.locking.strategies import get; from tickets.stores import open_store; "
        "from tickets.stores.spec import StoreSpec; "
        f"get('file').child_lock(None, open_store(StoreSpec('json', {str(store)!r})), 1)"
    )
    assert "filelock" in loaded_after(build)
    flock = build.replace("'file'", "'flock'")
    assert "filelock" not in loaded_after(flock)


def test_the_core_loads_neither_click_nor_rich() -> None:
    core = "import tickets.engine.buy, tickets.engine.queue, tickets.engine.race"
    core += ", tickets.render.json_documents"
    loaded = loaded_after(core)
    assert "click" not in loaded and "rich" not in loaded


def test_multiprocessing_still_keeps_its_children_in_a_set() -> None:
    """tickets.engine.children.forget relies on this CPython private (see its
    docstring): if this fails, starting many spawned children is slow again."""
    children = getattr(multiprocessing.process, "_children", None)
    assert isinstance(children, set), "multiprocessing.process._children is gone"
    process = multiprocessing.get_context("fork").Process(target=int)
    process.start()
    try:
        assert process in children
        forget(process)
        assert process not in children
    finally:
        process.join(30)
        process.close()


def _function_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    assert node.end_lineno is not None
    lines = node.end_lineno - node.lineno + 1
    doc = node.body[0]
    if isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant):
        assert doc.end_lineno is not None
        lines -= doc.end_lineno - doc.lineno + 1
    return lines


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_modules_and_functions_stay_short(path: Path) -> None:
    source = path.read_text()
    assert len(source.splitlines()) <= MAX_MODULE_LINES
    long = [
        (node.name, _function_lines(node))
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name not in DECLARATIVE
        and _function_lines(node) > MAX_FUNCTION_LINES
    ]
    assert long == []


def test_every_folder_says_what_it_holds() -> None:
    for folder in (
        "engine",
        "engine/child",
        "check",
        "locking",
        "named_sale",
        "render",
        "stores",
        "cli",
    ):
        doc = ast.get_docstring(ast.parse((SRC / folder / "__init__.py").read_text()))
        assert doc and len(doc) > 100, folder


def _names_spelled(node: ast.AST | None) -> list[str]:
    """The strategy names ``node`` spells as string literals: itself, or the
    items of a tuple, list or set literal."""
    items = node.elts if isinstance(node, ast.Tuple | ast.List | ast.Set) else [node]
    return [
        item.value
        for item in items
        if isinstance(item, ast.Constant)
        and isinstance(item.value, str)
        and item.value in STRATEGY_NAMES
    ]


def strategy_name_lookups(source: str) -> list[tuple[int, str]]:
    """(line, name) of every place ``source`` decides by a strategy's name
    spelled as a literal: a comparison (``==``, ``!=``, ``in``, ``not in``,
    ``is``), a ``match`` case, or a dict literal keyed by it (a table looked
    up by name is a comparison too)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
        elif isinstance(node, ast.MatchValue):
            operands = [node.value]
        elif isinstance(node, ast.Dict):
            operands = [key for key in node.keys if key is not None]
        else:
            continue
        found += [(node.lineno, name) for operand in operands for name in _names_spelled(operand)]
    return sorted(found)


def test_the_strategy_name_check_sees_every_form() -> None:
    source = """
if s == "lease": pass
if "file" != s.name: pass
if s in ("file", "flock", "hope"): pass
if s not in {"none"}: pass
match s:
    case "atomic" | "deferred": pass
label = {"process": "one lock", **other}[s]
if stock == "store" or kind in (b"none",) or s is NO_LOCK: pass
"""
    assert strategy_name_lookups(source) == [
        (2, "lease"),
        (3, "file"),
        (4, "file"),
        (4, "flock"),
        (5, "none"),
        (7, "atomic"),
        (7, "deferred"),
        (8, "process"),
    ]


def test_no_strategy_name_is_compared_outside_the_registry() -> None:
    """A name is parsed once into its strategy (tickets.locking.strategies.get);
    everything else asks the object what it does. "none" and "file" mean
    other things too (``--history none``, a ``file:`` URL): those meanings
    have constants of their own."""
    found = [
        f"{path.relative_to(SRC)}:{line}: {name!r}"
        for path in sorted(SRC.rglob("*.py"))
        if path != STRATEGY_REGISTRY
        for line, name in strategy_name_lookups(path.read_text())
    ]
    assert found == []


def test_no_two_classes_share_a_name() -> None:
    """One name, one thing: a lock and a strategy, a buyer's counter and a clerk's."""
    where: dict[str, list[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                where.setdefault(node.name, []).append(str(path.relative_to(SRC)))
    assert {name: paths for name, paths in where.items() if len(paths) > 1} == {}


def _imports_of(path: Path, module: str) -> set[str]:
    """The package's modules ``module`` imports, at any depth of its code."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = module.split(".") if is_package else module.split(".")[:-1]
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            for alias in node.names:
                found.add(f"{base}.{alias.name}")
                found.add(base)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_no_two_modules_import_each_other_in_a_circle() -> None:
    """One concept in one place, and what flows down never flows back up:
    no import circle among the package's modules (a lazy import included)."""
    modules = {}
    for path in SRC.rglob("*.py"):
        parts = ["tickets", *path.relative_to(SRC).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    graph = {
        name: {m for m in _imports_of(path, name) if m in modules and m != name}
        for name, path in modules.items()
    }
    circles = []
    for start in sorted(graph):
        seen, todo = set(), [(start, [start])]
        while todo:
            here, trail = todo.pop()
            for nxt in graph[here]:
                if nxt == start:
                    circles.append(" -> ".join([*trail, start]))
                elif nxt not in seen and nxt > start:  # each circle once, from its least module
                    seen.add(nxt)
                    todo.append((nxt, [*trail, nxt]))
    assert circles == []
