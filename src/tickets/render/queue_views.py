"""The queue mode's views: its clerks, its producers, the orders worth a
look, and the whole run (see :mod:`tickets.render.tables` for a sale's)."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ..check.operations import printable
from ..engine.ledger import RunResult
from .tables import MAX_ROWS, RESULT_WORD, chaos_line, summary_table, verdict


def clerks_table(result: RunResult) -> Table:
    stats = result.queue_stats()
    clerks = Table(title=f"{len(stats.clerks)} clerks, strategy {result.config.strategy.name}")
    for name in ("clerk", "pid", "orders taken", "sold", "time busy", "exit"):
        clerks.add_column(name, justify="left" if name == "exit" else "right")
    for c in stats.clerks:
        clerks.add_row(
            str(c["clerk"]),
            str(c["pid"]),
            str(c["taken"]),
            str(c["sold"]),
            f"{c['busy_s']:.3f} s",
            c["exit"],
        )
    return clerks


def producers_table(result: RunResult) -> Table:
    stats = result.queue_stats()
    shown = stats.producers[: MAX_ROWS // 3]  # thousands on workers: --json has every one
    more = (
        f" (the first {len(shown)}; --json has every one)"
        if len(shown) < len(stats.producers)
        else ""
    )
    producers = Table(title=f"{len(stats.producers)} producers{more}")
    for name in ("producer", "pid", "submitted", "accepted", "rejected busy"):
        producers.add_column(name, justify="right")
    for p in shown:
        producers.add_row(
            str(p["producer"]),
            str(p["pid"]),
            str(p["submitted"]),
            str(p["accepted"]),
            str(p["rejected"]),
        )
    return producers


def orders_table(result: RunResult) -> Table | None:
    """The orders worth a look (double-sold or unknown), if any."""
    double = result.report.double_sold
    worth = [r for r in result.rows if r.result == "info" or r.seat in double]
    if not worth:
        return None
    orders = Table(title="orders worth a look (double-sold or unknown)")
    for name in ("order", "producer", "clerk", "result", "seat", "note"):
        orders.add_column(name)
    for r in worth[:20]:
        style = "bold red" if r.seat in double else "magenta"
        orders.add_row(
            str(r.number),
            str(r.producer),
            "" if r.clerk is None else str(r.clerk),
            Text(RESULT_WORD[r.result], style=style),
            "" if r.seat is None else str(r.seat),
            Text(printable(r.reason or "")),
        )
    if len(worth) > 20:
        orders.caption = f"{len(worth) - 20} more in the history"
    return orders


def queue_view(result: RunResult) -> RenderableType:
    stats = result.queue_stats()
    tables: list[RenderableType] = [producers_table(result), clerks_table(result)]
    orders = orders_table(result)
    if orders is not None:
        tables.append(orders)
    accounting = (
        f"{stats.submitted} submitted = {stats.accepted} accepted + {stats.rejected} rejected busy"
    )
    shutdown = stats.shutdown + (f", batch {stats.batch}" if stats.batch > 1 else "")
    summary = summary_table(
        result.report,
        [
            ("orders", accounting),
            ("left in the queue", str(stats.left_in_queue)),
            ("shutdown", shutdown),
            *chaos_line(result),
            ("wall time", f"{result.duration_s:.3f} s"),
            ("purchases/s", f"{result.purchases_per_s:,.0f}"),
            ("strategy", result.config.strategy.name),
            ("history", str(result.history or "not kept (--history none)")),
        ],
    )
    # As buy: the summary first, then the tables, the verdict last
    parts: list[RenderableType] = [summary, Text(""), *tables]
    for note in result.notes:
        parts.append(Text(f"note: {printable(note)}", style="yellow"))
    parts.append(verdict(result.report, result.aborted, result.config.strategy, result.broken))
    return Group(*parts)
