"""A time-binned view of a sale too big to draw a row per buyer.

The run's time axis is cut into as many bins as the picture has columns,
and four strips count, per bin, the operations that ended there (the
sales, the no-tickets, the unknown outcomes) and those in flight (invoked,
not yet ended). Each strip is a sparkline scaled to its own busiest bin,
labelled with that peak, so the shape of a big sale shows at a glance:
the rush at the start, the sales at the lock's pace, the sold-out tail.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.text import Text

from ..check.operations import ABSENT, OK, PENDING, SOLD_OUT, UNKNOWN, Operations

#: Eight heights; a blank for an empty bin.
BLOCKS = " ▁▂▃▄▅▆▇█"


def bin_counts(ops: Operations, t0: float, t1: float, cols: int) -> dict[str, list[int]]:
    """Per bin: operations ended as sales, no tickets, unknowns; and in flight."""
    span = max(t1 - t0, 1e-9)
    strips = {"sold": [0] * cols, "no ticket": [0] * cols, "unknown": [0] * cols}
    starts, ends = [0] * (cols + 1), [0] * (cols + 1)
    kinds, invoked, completed = ops.kinds, ops.invoked, ops.completed
    last = cols - 1
    for i in range(ops.size):
        kind = kinds[i]
        if kind == ABSENT:
            continue
        a = min(last, max(0, int((invoked[i] - t0) / span * last)))
        starts[a] += 1
        if kind == PENDING or kind == UNKNOWN:
            strips["unknown"][a] += 1
            continue  # in flight to the end: it may take effect at any time
        b = min(last, max(0, int((completed[i] - t0) / span * last)))
        ends[b] += 1
        strips["sold" if kind == OK else "no ticket"][b] += 1
    flying, running = [0] * cols, 0
    for c in range(cols):
        running += starts[c]
        flying[c] = running
        running -= ends[c]
    return {**strips, "active": flying}


def sparkline(counts: list[int]) -> str:
    peak = max(counts) or 1
    return "".join(BLOCKS[0 if n == 0 else 1 + min(7, n * 8 // (peak + 1))] for n in counts)


STYLE = {"sold": "green", "no ticket": "blue", "unknown": "magenta", "active": "yellow"}


def binned(ops: Operations, t0: float, t1: float, cols: int, label_width: int) -> RenderableType:
    """The four strips, each labelled with its name and its busiest bin."""
    lines: list[RenderableType] = []
    bin_ms = (t1 - t0) / cols * 1000
    lines.append(
        Text(
            f"every {ops.size:,} operations, per {bin_ms:,.1f} ms bin "
            "(each strip scaled to its busiest bin):",
            style="bold",
        )
    )
    for name, counts in bin_counts(ops, t0, t1, cols).items():
        if name != "active" and not any(counts):
            continue
        head = f"{name} (≤{max(counts):,})"
        line = Text(f"{head[:label_width]:<{label_width}} ")
        line.append(sparkline(counts), style=STYLE[name])
        lines.append(line)
    return Group(*lines)


__all__ = ["SOLD_OUT", "binned", "bin_counts", "sparkline"]
