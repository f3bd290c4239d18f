"""A history drawn on a shared time axis: one row per buyer, its phases as bars.

The reader sees why an unlocked sale loses updates: the read-modify-writes
of buyers that got the same seat overlap in time, each read the count before
the other wrote it back.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Group, RenderableType
from rich.text import Text

from ..check.history import History, read
from ..check.operations import ABSENT, OK, PENDING, UNKNOWN, Operations, printable
from ..check.verdict import check_history
from ..locking.strategies import STRATEGIES

MAX_ROWS = 60
#: Buyers named per double-sold seat under the picture.
SHOW_SHARERS = 5
LABEL_WIDTH = 22
#: A glyph per phase, so the picture reads without colour too: the search,
#: the wait for the lock, the read-modify-write of a sale, of a seat sold
#: more than once, of no ticket; R and W mark the read and the write.
SEARCH, WAIT, RMW, DOUBLE, NO_TICKET = "─", "·", "█", "▓", "░"
READ, WRITE = "R", "W"
PALETTE = {
    "search": "grey50",
    "wait": "yellow",
    "ok": "green",
    "double": "bold red",
    "fail": "blue",
    "info": "magenta",
}


@dataclass(frozen=True)
class Span:
    """One operation's phases (a buyer, or an order in the queue mode;
    absolute monotonic seconds, None where unknown)."""

    number: int
    result: str
    #: its seat, or its ticket id
    seat: int | str | None
    reason: str | None
    start: float | None
    search: float | None
    locked: float | None
    end: float | None

    @property
    def first(self) -> float | None:
        return self.start if self.start is not None else self.search

    @property
    def order(self) -> tuple[float, int]:
        key = self.locked if self.locked is not None else self.search or self.start
        return (key if key is not None else float("inf"), self.number)


def spans(history: History, numbers: set[int]) -> list[Span]:
    """The chosen operations' phases (from the events the reader kept)."""
    out = []
    for number in numbers:
        held = history.details.get(number)
        if held is None:  # the file changed between the two reads
            continue
        result = held.get("type", "info")
        out.append(
            Span(
                number,
                result,
                held.get("seat"),
                held.get("reason"),
                held.get("t_start"),
                held.get("t_search"),
                held.get("t_locked"),
                held.get("t_end"),
            )
        )
    return sorted(out, key=lambda s: s.order)


def choose(ops: Operations, double: dict[int | str, list[str]], limit: int | None) -> set[int]:
    """The operations to draw: those that got a double-sold seat or whose
    outcome is unknown first, then the earliest invoked, ``limit`` in all."""
    present = [i for i in range(ops.size) if ops.kinds[i] != ABSENT]
    if limit is None or len(present) <= limit:
        return set(present)
    kinds, seats = ops.kinds, ops.seats
    unknown = (PENDING, UNKNOWN)
    worth = [i for i in present if kinds[i] in unknown or (kinds[i] == OK and seats[i] in double)]
    chosen = set(worth[:limit])
    rest = (i for i in present if i not in chosen)
    chosen.update(heapq.nsmallest(limit - len(chosen), rest, key=ops.invoked.__getitem__))
    return chosen


def prepare(
    history: History, limit: int | None = MAX_ROWS
) -> tuple[History, set[int], dict[int | str, list[str]]]:
    """The history with the events of the operations to draw (read once more
    for just those if they were not kept), those operations, and the
    double-sold seats. Raises HistoryError if the file no longer reads."""
    double = check_history(history).double_sold
    chosen = choose(history.ops, double, limit)
    if not chosen <= set(history.details):
        history = read(history.path, details=chosen)
    return history, chosen, double


def timeline(history: History, width: int = 100, limit: int | None = MAX_ROWS) -> RenderableType:
    """The whole picture: title, axis, one row per buyer, legend, double-sold seats.

    Drawing needs each chosen operation's phases: when ``history`` was read
    without them, the file is read once more for just those (memory stays
    in proportion to the operations, not the events)."""
    history, chosen, double = prepare(history, limit)
    total = history.ops.size - history.ops.count(ABSENT)
    shown = spans(history, chosen)
    times = [t for s in shown for t in (s.first, s.end, s.locked) if t is not None]
    cols = max(20, width - LABEL_WIDTH - 1)
    run = history.run
    # In the queue mode a row is an order, and its "search" is its wait in the queue.
    noun = history.noun
    strategy = STRATEGIES.get(run["strategy"])
    locked = strategy is None or strategy.waits  # no lock, no wait for one
    how = f"strategy {run['strategy']}"
    if isinstance(run.get("exec"), str):  # the user's command, or function, bought
        how = f"--exec {printable(run['exec'])[:80]}"
    elif isinstance(run.get("buyer"), str):
        how = f"--buy {printable(run['buyer'])[:80]} (lock {run['strategy']})"
    stock = "unknown" if history.initial is None else history.initial
    title = Text(
        f"{run['mode']} with {how}: {total} {noun}s, stock {stock}\n",
        style="bold",
    )
    title.append(f"history {printable(history.path)}", style="dim")
    if not times:
        return Group(title, Text(f"no {noun} got as far as a search: nothing to draw"))
    t0, t1 = min(times), max(times)
    span_s = max(t1 - t0, 1e-6)

    def col(t: float) -> int:
        return min(cols - 1, max(0, int((t - t0) / span_s * (cols - 1))))

    rows: list[RenderableType] = [title]
    if len(shown) < total:  # too many to draw each: the whole sale, binned, first
        from .timeline_bins import binned

        ops = history.ops
        ends = [ops.completed[i] for i in chosen if ops.completed[i] != float("inf")]
        last = max([t1, *ends, *(ops.invoked[i] for i in chosen)])
        last = max(last, ops.latest if ops.latest < 1e11 else last)
        worth = f"the {noun}s worth a look: the unknown, the sold twice, the first:"
        rows += [binned(ops, t0, last, cols, LABEL_WIDTH), axis(last - t0, cols), Text(worth)]
    rows.append(axis(span_s, cols))
    for s in shown:
        rows.append(row(s, double, col, cols, noun, locked))
    if len(shown) < total:
        rows.append(
            Text(f"… {total - len(shown)} more {noun}s not drawn (--all draws every one)", "dim")
        )
    rows.append(legend(noun, locked))
    rows.append(double_sold_note(shown, double, t0, noun))
    return Group(*rows)


def axis(span_s: float, cols: int) -> Text:
    left, right = "0 ms", f"{span_s * 1000:.1f} ms"
    mid = f"{span_s * 500:.1f} ms"
    line = [" "] * cols
    for pos, label in ((0, left), ((cols - len(mid)) // 2, mid), (cols - len(right), right)):
        for i, ch in enumerate(label):
            if 0 <= pos + i < cols:
                line[pos + i] = ch
    return Text(" " * LABEL_WIDTH + " " + "".join(line), style="dim")


def label(s: Span, double: dict[int | str, list[str]], noun: str) -> Text:
    if s.result == "ok":
        extra = f" ×{len(double[s.seat])}" if s.seat in double else ""
        text = f"{noun} {s.number} seat {s.seat}{extra}"
        style = PALETTE["double"] if s.seat in double else PALETTE["ok"]
    elif s.result == "fail":
        text, style = f"{noun} {s.number} {printable(s.reason or 'no ticket')}", PALETTE["fail"]
    else:
        text, style = f"{noun} {s.number} unknown", PALETTE["info"]
    return Text(text[:LABEL_WIDTH].ljust(LABEL_WIDTH), style=style)


def row(
    s: Span,
    double: dict[int | str, list[str]],
    to_col: Callable[[float], int],
    cols: int,
    noun: str,
    locked: bool = True,
) -> Text:
    """One operation's bar (``locked``: the strategy has a lock to wait for)."""
    cells: list[tuple[str, str]] = [(" ", "")] * cols

    def paint(a: float | None, b: float | None, ch: str, style: str) -> None:
        if a is None or b is None:
            return
        lo, hi = to_col(a), to_col(b)
        for i in range(lo, max(lo, hi) + 1):
            cells[i] = (ch, style)

    paint(s.start, s.search, SEARCH, PALETTE["search"])
    if s.locked is not None:
        if locked:
            paint(s.search, s.locked, WAIT, PALETTE["wait"])
        glyph, style = RMW, PALETTE["ok"]
        if s.result == "ok" and s.seat in double:
            glyph, style = DOUBLE, PALETTE["double"]
        elif s.result != "ok":
            glyph, style = NO_TICKET, PALETTE["fail"]
        paint(s.locked, s.end, glyph, style)
        if s.result == "ok" and s.end is not None and to_col(s.end) > to_col(s.locked):
            cells[to_col(s.locked)] = (READ, style)
            cells[to_col(s.end)] = (WRITE, style)
    elif s.end is not None and locked:  # gave up waiting for the lock
        paint(s.search, s.end, WAIT, PALETTE["wait"])
    if s.result == "info":
        at = s.search if s.search is not None else s.start
        if at is not None:
            cells[to_col(at)] = ("?", PALETTE["info"])
    text = label(s, double, noun)
    text.append(" ")
    for ch, style in cells:
        text.append(ch, style=style or None)
    return text


def legend(noun: str = "buyer", locked: bool = True) -> Text:
    """Every glyph and colour the rows use."""
    text = Text("  ")
    entries = [
        (SEARCH, "search", "waiting in the queue" if noun == "order" else "search"),
        *([(WAIT, "wait", "waiting for the lock")] if locked else []),
        (RMW, "ok", "read-modify-write that sold (R read, W write)"),
        (DOUBLE, "double", f"same seat as another {noun}"),
        (NO_TICKET, "fail", "no ticket (sold out, busy)"),
    ]
    for glyph, colour, meaning in entries:
        text.append(glyph * 3, PALETTE[colour])
        text.append(f" {meaning}   ")
    text.append("?", PALETTE["info"])
    text.append(" outcome unknown")
    return text


def double_sold_note(
    every: list[Span], double: dict[int | str, list[str]], t0: float, noun: str = "buyer"
) -> Text:
    if not double:
        return Text("No seat was sold twice: no two read-modify-writes that sold overlapped.")
    by_number = {str(s.number): s for s in every}
    text = Text(
        f"{len(double)} seat(s) sold twice or more; each buyer read the count before "
        "another wrote it back:\n",
        style="bold red",
    )
    # A short line per buyer: a value is never split by wrapping.
    for seat in sorted(double, reverse=True):
        keys = double[seat]
        text.append(f"  seat {seat} sold {len(keys)} times:\n", style="bold red")
        for key in keys[:SHOW_SHARERS]:
            s = by_number.get(key)
            when = ""
            if s is not None and s.locked is not None and s.end is not None:
                when = f"  read {(s.locked - t0) * 1000:.1f} ms, wrote {(s.end - t0) * 1000:.1f} ms"
            text.append(f"    {noun} {key}{when}\n")
        if len(keys) > SHOW_SHARERS:
            text.append(f"    and {len(keys) - SHOW_SHARERS} more\n")
    return text
