"""The views of a big sale (more buyers than rows kept): its buyers counted
by outcome and by worker, and the buyers worth a look."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ..check.operations import printable
from ..engine.ledger import RunResult
from .tables import RESULT_STYLE, RESULT_WORD, buyers_table


def outcomes_table(result: RunResult) -> Table:
    """A big sale's buyers, counted by outcome (and by worker): rows for
    each buyer would not fit, and the history has every one."""
    table = Table(title=f"{sum((result.outcomes or {}).values()):,} buyers by outcome")
    table.add_column("outcome")
    table.add_column("buyers", justify="right")
    for key, n in sorted((result.outcomes or {}).items(), key=lambda kv: -kv[1]):
        kind, _, why = key.partition(": ")
        word = Text(RESULT_WORD[kind], style=RESULT_STYLE[kind])
        table.add_row(word + Text(f": {printable(why)}" if why else ""), f"{n:,}")
    return table


def workers_table(result: RunResult) -> Table:
    table = Table(title=f"{len(result.workers or ())} workers")
    for name in ("worker", "pid", "buyers", "sold", "no ticket", "unknown", "exit"):
        table.add_column(name, justify="left" if name == "exit" else "right")
    for w in result.workers or ():
        table.add_row(
            *(
                f"{w[k]:,}" if isinstance(w[k], int) and k != "pid" else str(w[k] or "")
                for k in ("worker", "pid", "buyers", "sold", "no_ticket", "unknown", "exit")
            )
        )
    return table


def big_buyers_view(result: RunResult, limit: int) -> RenderableType:
    """A big sale: counts by outcome and by worker, then the buyers worth a
    look (every unknown outcome and seat sold twice kept, and the first few
    of each outcome)."""
    parts: list[RenderableType] = [outcomes_table(result)]
    if result.workers:
        parts.append(workers_table(result))
    rows = sorted(
        result.rows,
        key=lambda r: (r.result != "info", r.seat not in result.report.double_sold, r.number),
    )
    title = f"{min(len(rows), limit)} buyers worth a look (unknown, sold twice, the first of each)"
    parts.append(buyers_table(rows[:limit], result.report, title, False))
    where = ""
    if result.history is not None:
        history = printable(str(result.history))
        where = (
            f"every buyer is in the history: tickets history {history}"
            if result.aborted is None
            else f"the history has what was written before the run stopped: {history}"
        )
    parts.append(Text(where, "dim"))
    return Group(*parts)
