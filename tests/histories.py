"""Hand-made histories for the checker's tests: lines as ``tickets`` writes
them, and operation tables built the way the reader builds them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

from tickets.check.operations import Operations

T0 = 10.0


class Op(NamedTuple):
    """One operation: ``kind`` is ok, sold out, busy, info or pending; times
    are seconds after the run's start (``done`` unused for info and pending)."""

    kind: str
    start: float
    done: float = 0.0
    seat: int | None = None


def run_line(initial: int, size: int = 10, *, t: float = T0, **extra: Any) -> dict[str, Any]:
    return {
        "type": "run",
        "version": 1,
        "run_id": extra.pop("run_id", "r1"),
        "mode": "buy",
        "store": "/s/tickets.json",
        "strategy": "process",
        "initial": initial,
        "restocked": True,
        "buyers": size,
        "seed": 0,
        "t": t,
        **extra,
    }


def end_line(remaining: int | None, t: float = T0 + 100, **extra: Any) -> dict[str, Any]:
    return {"type": "end", "remaining": remaining, "store_error": None, "t": t, **extra}


def events_of(ops: list[Op], t0: float = T0) -> list[Any]:
    """Each operation's invoke and completion, in time order (operation i is buyer i)."""
    timed: list[tuple[float, int, dict[str, Any]]] = []
    for i, op in enumerate(ops):
        timed.append((t0 + op.start, 0, {"type": "invoke", "buyer": i, "t": t0 + op.start}))
        done: dict[str, Any] = {"buyer": i, "t": t0 + op.done}
        if op.kind == "ok":
            done |= {"type": "ok", "seat": op.seat}
        elif op.kind in ("sold out", "busy"):
            done |= {"type": "fail", "reason": op.kind}
        elif op.kind == "info":
            done |= {"type": "info", "reason": "no outcome reported", "t": t0 + max(op.start, 99)}
        else:
            continue
        timed.append((done["t"], 1, done))
    timed.sort(key=lambda x: (x[0], x[1]))
    return [e for _, _, e in timed]


def table(ops: list[Op], t0: float = T0) -> Operations:
    """The operation table the reader would build from these operations' events."""
    table = Operations(len(ops), t0)
    for ev in events_of(ops, t0):
        table.add(ev)
    return table


def lines_of(initial: int, remaining: int | None, ops: list[Op]) -> list[dict[str, Any]]:
    return [run_line(initial, max(1, len(ops))), *events_of(ops), end_line(remaining)]


def write(path: Path, lines: list[dict[str, Any]] | list[str]) -> Path:
    text = (line if isinstance(line, str) else json.dumps(line) for line in lines)
    path.write_text("".join(f"{line}\n" for line in text))
    return path
