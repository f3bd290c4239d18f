"""A history drawn on a shared time axis: one row per buyer, its phases as bars.

The reader sees why an unlocked sale loses updates: the read-modify-writes
of buyers that got the same seat overlap in time, each read the count before
the other wrote it back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Group, RenderableType
from rich.text import Text

from ..checks import check_history
from ..history import History, outcomes

MAX_ROWS = 60
#: Buyers named per double-sold seat under the picture.
SHOW_SHARERS = 5
LABEL_WIDTH = 22
SEARCH, WAIT, RMW = "─", "·", "█"
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
    seat: int | None
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


def spans(history: History) -> list[Span]:
    invoked = {ev["buyer"]: ev for ev in history.events if ev["type"] == "invoke"}
    out = []
    for number, ev in outcomes(history.events).items():
        inv = invoked.get(number, {})
        start = ev.get("t_start", inv.get("t_start"))
        search = ev.get("t_search", inv.get("t"))
        end = ev.get("t") if ev["type"] in ("ok", "fail") else None
        result = ev["type"] if ev["type"] != "invoke" else "info"
        out.append(
            Span(
                number,
                result,
                ev.get("seat"),
                ev.get("reason"),
                start,
                search,
                ev.get("t_locked"),
                end,
            )
        )
    return sorted(out, key=lambda s: s.order)


def pick(all_spans: list[Span], double: set[int], limit: int | None) -> list[Span]:
    if limit is None or len(all_spans) <= limit:
        return all_spans
    chosen = {s.number for s in all_spans if s.seat in double or s.result == "info"}
    chosen = set(sorted(chosen)[:limit])
    for s in all_spans:
        if len(chosen) >= limit:
            break
        chosen.add(s.number)
    return [s for s in all_spans if s.number in chosen]


def timeline(history: History, width: int = 100, limit: int | None = MAX_ROWS) -> RenderableType:
    """The whole picture: title, axis, one row per buyer, legend, double-sold seats."""
    report = check_history(history)
    double = report.double_sold
    every = spans(history)
    times = [t for s in every for t in (s.first, s.end, s.locked) if t is not None]
    cols = max(20, width - LABEL_WIDTH - 1)
    run = history.run
    # In the queue mode a row is an order, and its "search" is its wait in the queue.
    noun = "order" if run.get("mode") == "queue" else "buyer"
    title = Text(
        f"{run.get('mode', 'buy')} with strategy {run.get('strategy')}: "
        f"{len(every)} {noun}s, stock {history.initial}\n",
        style="bold",
    )
    title.append(f"history {history.path}", style="dim")
    if not times:
        return Group(title, Text("no buyer got as far as a search: nothing to draw"))
    t0, t1 = min(times), max(times)
    span_s = max(t1 - t0, 1e-6)

    def col(t: float) -> int:
        return min(cols - 1, max(0, int((t - t0) / span_s * (cols - 1))))

    rows = [title, axis(span_s, cols)]
    shown = pick(every, set(double), limit)
    for s in shown:
        rows.append(row(s, double, col, cols, noun))
    if len(shown) < len(every):
        rows.append(
            Text(
                f"… {len(every) - len(shown)} more {noun}s not drawn (--all draws every one)", "dim"
            )
        )
    rows.append(legend(noun))
    rows.append(double_sold_note(every, double, t0, noun))
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


def label(s: Span, double: dict[int, list[str]], noun: str) -> Text:
    if s.result == "ok":
        extra = f" ×{len(double[s.seat])}" if s.seat in double else ""
        text = f"{noun} {s.number} seat {s.seat}{extra}"
        style = PALETTE["double"] if s.seat in double else PALETTE["ok"]
    elif s.result == "fail":
        text, style = f"{noun} {s.number} {s.reason or 'no ticket'}", PALETTE["fail"]
    else:
        text, style = f"{noun} {s.number} unknown", PALETTE["info"]
    return Text(text[:LABEL_WIDTH].ljust(LABEL_WIDTH), style=style)


def row(
    s: Span, double: dict[int, list[str]], to_col: Callable[[float], int], cols: int, noun: str
) -> Text:
    cells: list[tuple[str, str]] = [(" ", "")] * cols

    def paint(a: float | None, b: float | None, ch: str, style: str) -> None:
        if a is None or b is None:
            return
        lo, hi = to_col(a), to_col(b)
        for i in range(lo, max(lo, hi) + 1):
            cells[i] = (ch, style)

    paint(s.start, s.search, SEARCH, PALETTE["search"])
    if s.locked is not None:
        paint(s.search, s.locked, WAIT, PALETTE["wait"])
        rmw_style = PALETTE["ok"]
        if s.result == "ok" and s.seat in double:
            rmw_style = PALETTE["double"]
        elif s.result != "ok":
            rmw_style = PALETTE["fail"]
        paint(s.locked, s.end, RMW, rmw_style)
    elif s.end is not None:  # gave up waiting for the lock
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


def legend(noun: str = "buyer") -> Text:
    text = Text("  ")
    text.append(SEARCH * 3, PALETTE["search"])
    text.append(" waiting in the queue   " if noun == "order" else " search   ")
    text.append(WAIT * 3, PALETTE["wait"])
    text.append(" waiting for the lock   ")
    text.append(RMW * 3, PALETTE["ok"])
    text.append(" read-modify-write   ")
    text.append(RMW * 3, PALETTE["double"])
    text.append(" same seat as another buyer   ")
    text.append("?", PALETTE["info"])
    text.append(" outcome unknown")
    return text


def double_sold_note(
    every: list[Span], double: dict[int, list[str]], t0: float, noun: str = "buyer"
) -> Text:
    if not double:
        return Text("No seat was sold twice: no two read-modify-writes that sold overlapped.")
    by_number = {str(s.number): s for s in every}
    text = Text(f"{len(double)} seat(s) sold twice or more:\n", style="bold red")
    for seat in sorted(double, reverse=True):
        parts = []
        keys = double[seat]
        for key in keys[:SHOW_SHARERS]:
            s = by_number.get(key)
            if s is not None and s.locked is not None and s.end is not None:
                parts.append(
                    f"{noun} {key} ({(s.locked - t0) * 1000:.1f}-{(s.end - t0) * 1000:.1f} ms)"
                )
            else:
                parts.append(f"{noun} {key}")
        if len(keys) > SHOW_SHARERS:
            parts.append(f"and {len(keys) - SHOW_SHARERS} more")
        text.append(f"  seat {seat} sold {len(keys)} times: ", style="bold red")
        text.append(", ".join(parts) + "; each read the count before another wrote it back\n")
    return text
