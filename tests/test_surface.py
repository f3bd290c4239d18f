"""The interface a user scripts against, held still across refactors: every
command's ``--help`` word for word, the shape of every JSON document (keys
and value types), the shape of every history line, and ``check --json`` of
fixed histories value for value.

The expected surface is ``tests/surface/*``, written from the code before a
change; a change that means to alter the interface rewrites it with
``TICKETS_UPDATE_SURFACE=1 pytest tests/test_surface.py`` and says so in the
CHANGELOG.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from histories import Op, lines_of, write
from tickets.cli import cli

SURFACE = Path(__file__).resolve().parent / "surface"
UPDATE = bool(os.environ.get("TICKETS_UPDATE_SURFACE"))
FAST = ("--no-delay",)
#: No search, and a 20 ms race window: the buyers (clerks) overlap even on a
#: busy machine, so a sale contends and its documents have one shape.
WIDE = ("--search-delay", "0", "--write-delay", "20")

pytestmark = pytest.mark.timeout(120)


def run(*args: str) -> Result:
    return CliRunner().invoke(
        cli, list(args), catch_exceptions=False, env={"COLUMNS": "100"}, prog_name="tickets"
    )


def shape(value: Any) -> Any:
    """A JSON value's shape: objects keep their keys, lists the merged shape
    of their items, scalars become their type's name (a union where items of
    a list differ: ``float|int``)."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in sorted(value.items())}
    if isinstance(value, list):
        merged: Any = None
        for item in value:
            merged = merge(merged, shape(item))
        return [] if merged is None else [merged]
    return type(value).__name__


def merge(a: Any, b: Any) -> Any:
    if a is None or a == b:
        return b
    if isinstance(a, dict) and isinstance(b, dict):
        return {
            k: merge(a.get(k), b.get(k)) if k in a and k in b else a.get(k, b.get(k))
            for k in sorted(a.keys() | b.keys())
        }
    if isinstance(a, list) and isinstance(b, list):
        return [merge(a[0] if a else None, b[0] if b else None)] if a or b else []
    if isinstance(a, str) and isinstance(b, str):
        return "|".join(sorted(set(a.split("|")) | set(b.split("|"))))
    return f"{json.dumps(a, sort_keys=True)}|{json.dumps(b, sort_keys=True)}"


def lines_shape(path: Path) -> dict[str, Any]:
    """Each kind of history line (``type``, and a completion's reason) with
    the merged shape of its lines."""
    kinds: dict[str, Any] = {}
    for line in path.read_text().splitlines():
        event = json.loads(line)
        kind = event["type"] + (f" {event['reason']}" if event["type"] == "fail" else "")
        if event["type"] == "info":
            kind += " " + event["reason"].split(":")[0]
        kinds[kind] = merge(kinds.get(kind), shape(event))
    return dict(sorted(kinds.items()))


def compare(name: str, actual: str) -> None:
    expected = SURFACE / name
    if UPDATE:
        expected.parent.mkdir(exist_ok=True)
        expected.write_text(actual)
        return
    assert actual == expected.read_text(), f"{name} changed (see {__name__}'s docstring)"


def commands() -> list[list[str]]:
    found: list[list[str]] = [[]]
    for name, command in sorted(cli.commands.items()):
        found.append([name])
        for sub in sorted(getattr(command, "commands", {})):
            found.append([name, sub])
    return found


def test_every_help_is_unchanged() -> None:
    pages = []
    for words in commands():
        result = run(*words, "--help")
        assert result.exit_code == 0, result.output
        pages.append(f"$ tickets {' '.join([*words, '--help'])}\n{result.output}")
    compare("help.txt", "\n".join(pages))


def json_of(result: Result, codes: tuple[int, ...] = (0,)) -> Any:
    assert result.exit_code in codes, result.output
    return json.loads(result.stdout)


#: Sales whose outcomes do not depend on timing (enough tickets for every
#: buyer under a lock, all overlapping; or one buyer: nothing tested), so
#: their shapes are fixed.
SALES: dict[str, Callable[[Path], list[str]]] = {
    "buy": lambda d: ["buy", "-n", "4", "-t", "6", "--lock", "flock", *WIDE],
    "buy-one-buyer": lambda d: ["buy", "-n", "1", "-t", "3", "--lock", "none", *FAST],
    "queue": lambda d: [
        "queue",
        "--producers",
        "1",
        "--orders",
        "3",
        "--clerks",
        "2",
        "-t",
        "5",
        *WIDE,
    ],
    "race": lambda d: [
        "race",
        "-n",
        "3",
        "-t",
        "6",
        "--strategies",
        "process,flock",
        "--trials",
        "1",
        *WIDE,
    ],
    "buy-user": lambda d: [
        "buy",
        "--buy",
        "examples/booking.py:take_ticket",
        "-n",
        "3",
        "-t",
        "5",
        *WIDE,
    ],
    "buy-sqlite": lambda d: [
        "--db",
        f"sqlite:{d / 'sale.db'}",
        "buy",
        "-n",
        "3",
        "-t",
        "5",
        "--lock",
        "atomic",
        *WIDE,
    ],
}


@pytest.mark.parametrize("sale", sorted(SALES))
def test_every_sale_document_and_history_keeps_its_shape(
    sale: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if sale == "buy-user":
        root = Path(__file__).resolve().parent.parent
        (tmp_path / "examples").mkdir()
        (tmp_path / "examples" / "booking.py").write_text(
            (root / "examples" / "booking.py").read_text()
        )
    args = SALES[sale](tmp_path)
    if sale != "race":  # race keeps no --history: its histories are its trials'
        args += ["--history", str(tmp_path / "history" / "h.jsonl")]
    doc = json_of(run(*args, "--json"), (0, 5))
    history = sorted((tmp_path / "history").glob("*.jsonl"))[0]
    checked = json_of(run("check", str(history), "--json"), (0, 5))
    surface = {"document": shape(doc), "check": shape(checked), "history": lines_shape(history)}
    compare(f"sale-{sale}.json", json.dumps(surface, indent=1) + "\n")


def test_store_documents_keep_their_shape(tmp_path: Path) -> None:
    docs = {
        "init": json_of(run("init", "--tickets", "4", "--json")),
        "status": json_of(run("status", "--json")),
        "history": json_of(run("history", "--json")),
    }
    compare("store.json", json.dumps(shape(docs), indent=1) + "\n")


FIXED = {
    "passed": lines_of(3, 1, [Op("ok", 0, 2, 3), Op("ok", 1, 3, 2), Op("busy", 1, 2)]),
    "double-sold": lines_of(3, 1, [Op("ok", 0, 2, 3), Op("ok", 1, 3, 3)]),
    "oversold": lines_of(2, 1, [Op("ok", 0, 2, 2), Op("ok", 1, 3, 1)]),
    "undersold": lines_of(3, 2, [Op("ok", 0, 2, 3), Op("sold out", 3, 4), Op("info", 0)]),
    "unfinished": lines_of(2, 1, [Op("ok", 0, 2, 2), Op("ok", 1, 3, 1)])[:-1],
}


def test_check_of_fixed_histories_is_unchanged(tmp_path: Path) -> None:
    verdicts = {}
    for name, lines in sorted(FIXED.items()):
        result = run("check", str(write(tmp_path / f"{name}.jsonl", lines)), "--json")
        doc = json.loads(result.stdout)
        verdicts[name] = {"exit": result.exit_code, "document": doc}
    text = json.dumps(verdicts, indent=1, sort_keys=True) + "\n"
    compare("check.json", text.replace(str(tmp_path), "TMP"))
