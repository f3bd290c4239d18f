"""Results -> rich renderables (pure functions): the buyer, queue, race and
check views. The --json documents are in :mod:`tickets.render.json_documents`,
which needs no rich."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from ..check.events import SOLD_OUT_REASON
from ..check.operations import printable
from ..check.verdict import NO_STOCK, Report
from ..engine.config import BuyConfig, SaleConfig
from ..engine.ledger import OperationRow, RunResult
from .words import blamed_strategy, failed_line, passed_line

if TYPE_CHECKING:
    from ..locking.strategies import Strategy

#: Rows a buyer table shows before it elides (``--all`` shows every row).
MAX_ROWS = 60
RESULT_STYLE = {"ok": "green", "fail": "yellow", "info": "magenta", "pending": "dim"}
RESULT_WORD = {"ok": "sold", "fail": "no ticket", "info": "unknown", "pending": "pending"}


def _ms(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds * 1000:.1f}"


def buyers_table(rows: list[OperationRow], report: Report, title: str, full: bool) -> Table:
    """One row per buyer; ``full``: with its pid (--all). Notes are cut, never
    wrapped: a row stays one line at 80 columns."""
    table = Table(title=title)
    retried = any(row.retries is not None for row in rows)  # Redis WATCH transactions
    names = ["buyer", *(["pid"] if full else []), "seen", "result", "seat", "wait ms", "total ms"]
    names += ["retries"] if retried else []
    for name in names:
        table.add_column(name, justify="left" if name == "result" else "right")
    table.add_column("note", no_wrap=True, overflow="ellipsis", max_width=None if full else 24)
    for row in rows:
        seat = "" if row.seat is None else str(row.seat)
        seat_text = Text(seat)
        if row.seat is not None and row.seat in report.double_sold:
            seat_text = Text(f"{seat} ×{len(report.double_sold[row.seat])}", style="bold red")
        cells = [str(row.number), *(["" if row.pid is None else str(row.pid)] if full else [])]
        cells += ["" if row.seen is None else str(row.seen)]
        table.add_row(
            *cells,
            Text(RESULT_WORD[row.result], style=RESULT_STYLE[row.result]),
            seat_text,
            _ms(row.lock_wait),
            _ms(row.total),
            *([str(row.retries or 0)] if retried else []),
            Text(printable(row.reason or "")),  # a user buyer's exception, say
        )
    return table


def seats_table(result: RunResult) -> Table:
    """An unlocked run, a row per seat: how often it was sold, and to whom."""
    report = result.report
    holders: dict[int | str, list[int]] = {}
    for row in result.rows:
        if row.result == "ok" and row.seat is not None:
            holders.setdefault(row.seat, []).append(row.number)
    table = Table(
        title=f"{report.sold} sales of {len(holders)} seats, strategy {result.config.strategy.name}"
    )
    for name in ("seat", "sold", "buyers"):
        table.add_column(name, justify="left" if name == "buyers" else "right")
    for seat in sorted(holders, reverse=True):
        numbers = holders[seat]
        times = Text(f"×{len(numbers)}", "bold red" if len(numbers) > 1 else "green")
        listed = ", ".join(map(str, numbers[:10])) + (" …" if len(numbers) > 10 else "")
        table.add_row(str(seat), times, listed)
    return table


def rolled_up(rows: list[OperationRow], noun: str = "buyer") -> Text:
    """The buyers that got no ticket, in one line per reason."""
    reasons: dict[str, int] = {}
    for row in rows:
        if row.result == "fail":
            why = printable(row.reason or "no ticket")
            if why == SOLD_OUT_REASON and row.seen is not None:  # a built-in buyer searched
                where = "at the search" if row.t_locked is None else "under the lock"
                why = f"{SOLD_OUT_REASON} {where}"
            reasons[why] = reasons.get(why, 0) + 1
    lines = [
        f"{n} {noun}{'s' if n > 1 else ''}: {why}"
        for why, n in sorted(reasons.items(), key=lambda kv: -kv[1])
    ]
    return Text("\n".join(lines), style="yellow") if lines else Text("")


def buyers_view(result: RunResult, limit: int | None = MAX_ROWS) -> RenderableType:
    """What matters first: for a run that sold a seat twice, a row per seat;
    otherwise the sales; the unknown outcomes always; the buyers with no
    ticket rolled up by reason. ``limit`` None (--all): every buyer."""
    rows, report = result.rows, result.report
    strategy = result.config.strategy.name
    if not result.every_row:
        return big_buyers_view(result, limit or MAX_ROWS)
    if limit is None:
        return buyers_table(rows, report, f"{len(rows)} buyers, strategy {strategy}", True)
    parts: list[RenderableType] = []
    if report.double_sold:
        parts.append(seats_table(result))
        shown = [r for r in rows if r.result in ("info", "pending")]
        title = f"{len(shown)} buyers of unknown outcome"
    else:
        shown = [r for r in rows if r.result != "fail"]
        title = f"{len(shown)} of {len(rows)} buyers: the sales and unknown outcomes"
    if shown:
        parts.append(buyers_table(shown[:limit], report, title, False))
    parts.append(rolled_up(rows))
    if len(shown) > limit:
        parts.append(Text(f"… {len(shown) - limit} more not shown; --all shows every buyer", "dim"))
    return Group(*parts)


def verdict(
    report: Report,
    aborted: str | None = None,
    strategy: Strategy | None = None,
    run_error: str | None = None,
) -> Text:
    """The verdict's lines (``strategy``: the one to blame or thank, None
    for the user's own buyer: see tickets.render.words)."""
    if aborted:
        return Text(f"ABORTED: {printable(aborted)}", style="bold red")
    if run_error:
        return Text(f"ERROR: {printable(run_error)}", style="bold red")
    if report.passed:
        text = passed_line(report)
        if skipped := report.not_run():
            text += "\n" + "\n".join(f"{c.name}: {printable(c.detail)}" for c in skipped)
        return Text(text, style="bold green")
    if report.unproven:
        return not_proven(report)
    lines = [failed_line(report, strategy)]
    if report.double_sold:
        seats = ", ".join(str(s) for s in report.double_sold_seats[:10])
        lines.append(f"double-sold seats: {seats}")
    lines += [f"{c.name}: {printable(c.detail)}" for c in report.failures()]
    return Text("\n".join(lines), style="bold red")


def not_proven(report: Report) -> Text:
    if report.aborted:
        return Text(
            f"NOT PROVEN: the run was aborted ({report.aborted}); no check failed on "
            "what it recorded, but a sale cut short proves nothing",
            style="bold yellow",
        )
    if report.run_error:
        return Text(
            f"NOT PROVEN: {printable(report.untested or '')}; no check failed on what it recorded",
            style="bold yellow",
        )
    if report.idle or report.uncontended:
        away = ""
        if report.uncontended and report.refused:
            away = f"; {report.refused:,} turned away (busy or refused) raced nobody for it"
        return Text(
            f"NOT PROVEN: {report.idle or report.uncontended}{away} (no check failed, but a "
            "sale that tested nothing proves nothing)",
            style="bold yellow",
        )
    names = ", ".join(c.name for c in report.not_run())
    lines = [
        f"NOT PROVEN: {report.sold} sold from a stock nobody read; no check failed, "
        f"but these could not run: {names}",
        NO_STOCK,
    ]
    return Text("\n".join(lines), style="bold yellow")


class Whole:
    """A line printed whole, never wrapped or cut at the terminal's width
    (the terminal wraps it, if it must, without a newline in it): a path
    to copy, paste or grep."""

    def __init__(self, text: str) -> None:
        self.text = printable(text)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield Segment(self.text)
        yield Segment.line()


#: Summary rows whose value is a path, shown whole below the others.
WHOLE_ROWS = ("history",)


def summary_table(report: Report, extra: list[tuple[str, str]] | None = None) -> RenderableType:
    """The figures of a sale, a key and its value a row; a path (the
    history) last and whole, in the same columns."""
    rows = extra or []
    keys = ["double-sold seats", "unknown outcomes", *(k for k, _ in rows)]
    column = max(len(k) for k in keys) + 2
    whole = [Whole(f"{k:<{column}}{v}") for k, v in rows if k in WHOLE_ROWS]
    grid = summary_grid(report, [(k, v) for k, v in rows if k not in WHOLE_ROWS], column)
    return Group(grid, *whole) if whole else grid


def summary_grid(report: Report, extra: list[tuple[str, str]], column: int) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", min_width=column - 2)
    grid.add_column(overflow="fold")
    remaining = "unknown" if report.remaining is None else f"{report.remaining:,}"
    oversold = Text(f"{report.oversold:,}", style="bold red" if report.oversold else "green")
    grid.add_row("initial", "unknown" if report.initial is None else f"{report.initial:,}")
    grid.add_row("sold", f"{report.sold:,}")
    grid.add_row("remaining", remaining)
    grid.add_row("oversold", oversold)
    seats = ", ".join(str(s) for s in report.double_sold_seats[:20]) or "none"
    grid.add_row(
        "double-sold tickets"
        if any(isinstance(s, str) for s in report.double_sold)
        else "double-sold seats",
        Text(printable(seats)),
    )  # a command's ticket ids
    grid.add_row("unknown outcomes", f"{report.unknown:,}")
    grid.add_row(
        "contention",
        Text(report.contention.words(), style="" if report.contention.contended else "yellow"),
    )
    for key, value in extra:  # the user's code: outside text, never markup
        grid.add_row(key, Text(printable(value)))
    return grid


def chaos_line(result: RunResult) -> list[tuple[str, str]]:
    c = result.chaos
    if not c:
        return []
    length = c.get("pause_length_s")
    held = (
        "with SIGSTOP/SIGCONT"
        if length is None
        else (f"holding the lock {length * 1000:g} ms between read and write")
    )
    return [
        (
            "chaos",
            f"{c['killed']} killed with SIGKILL (of {c['kills_planned']} doomed), "
            f"{c['paused']} paused {held} (seed {c['seed']})",
        )
    ]


def run_summary(result: RunResult) -> RenderableType:
    return summary_table(
        result.report,
        [
            ("stock", result.stock),
            *chaos_line(result),
            ("wall time", f"{result.duration_s:.3f} s"),
            ("purchases/s", f"{result.purchases_per_s:,.0f}"),
            *buyers_rate(result),
            buyer_line(result),
            *workers_line(result.config),
            ("history", str(result.history or "not kept (--history none)")),
        ],
    )


def buyers_rate(result: RunResult) -> list[tuple[str, str]]:
    """A sale most of whose buyers found it sold out: how fast they were
    served (purchases/s counts the sales alone: 80 of 200,000 buyers)."""
    config = result.config
    if not isinstance(config, BuyConfig) or result.duration_s <= 0:
        return []
    if config.buyers < 2 * max(result.report.sold, 1):
        return []
    rate = config.buyers / result.duration_s
    return [("buyers/s", f"{rate:,.0f} (every buyer served, sold out included)")]


def workers_line(config: SaleConfig) -> list[tuple[str, str]]:
    """How the buyers ran: on workers, or a process each (nothing said)."""
    if not isinstance(config, BuyConfig) or not config.workers:  # queue: its own view
        return []
    workers = config.workers
    return [
        (
            "buyers ran on",
            f"{workers} worker{'s' if workers > 1 else ''}, "
            f"{config.concurrency} buyer{'s' if config.concurrency != 1 else ''} at once each",
        )
    ]


def buyer_line(result: RunResult) -> tuple[str, str]:
    """Who bought: the strategy, or the user's own code."""
    config = result.config
    if isinstance(config, BuyConfig) and config.command is not None:
        return ("buyer", f"--exec {config.command}")
    if isinstance(config, BuyConfig) and config.buy is not None:
        return ("buyer", f"--buy {config.buy} (lock: {config.strategy.name})")
    return ("strategy", config.strategy.name)


def run_view(result: RunResult, limit: int | None = MAX_ROWS) -> RenderableType:
    """The summary first, then the buyers that matter, the verdict last."""
    return Group(
        run_summary(result),
        Text(""),
        buyers_view(result, limit),
        verdict(result.report, result.aborted, blamed_strategy(result), result.broken),
        seats_hint(result),
        own_stock_hint(result),
    )


def own_stock_hint(result: RunResult) -> Text:
    """A ``--buy`` function that sold while the tool's store never moved
    sells from a stock of its own (its own database): the tool's store says
    nothing about it, and ``--stock-cmd`` reads the real one."""
    config, report = result.config, result.report
    if not isinstance(config, BuyConfig) or config.buy is None or config.stock != "store":
        return Text("")
    if not report.sold or report.initial is None or report.initial != report.remaining:
        return Text("")
    return Text(
        f"hint: your function sold {report.sold:,} but the store it was handed "
        f"({config.store.label}) never changed: if it sells from a stock of its own "
        "(its own database), give --stock-cmd 'a command that prints that stock' (stock_cmd= "
        "in tickets.sale), without --tickets: restock it yourself before the sale",
        style="bold",
    )


def seats_hint(result: RunResult) -> Text:
    """A command buyer's whole-number tickets are taken as seats (the count
    each took): a service that numbers its tickets otherwise fails the
    order of seats, and should say they are ids."""
    config = result.config
    failed = {c.name for c in result.report.failures()}
    if not isinstance(config, BuyConfig) or config.command is None or config.ticket_ids:
        return Text("")
    if not failed & {"real-time order", "no seat sold twice"}:
        return Text("")
    if result.report.double_sold or result.report.oversold:
        return Text("")  # a real oversell: ids would only hide it
    return Text(
        "hint: a whole-number ticket is taken as a seat, the count the sale took "
        "(the first of 20 gets 20); if the command numbers its tickets otherwise "
        "(1, 2, 3 in sale order), give --ticket-ids",
        style="dim",
    )


def checks_table(report: Report) -> Table:
    table = Table(title="checks")
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail")
    for c in report.checks:
        if c.passed is None:
            mark = Text("not run", style="yellow")
        else:
            mark = Text("pass", style="green") if c.passed else Text("FAIL", style="bold red")
        table.add_row(c.name, mark, Text(printable(c.detail)))  # details quote histories
    return table


def check_view(report: Report, paths: list[str]) -> RenderableType:
    return Group(
        Text(f"{len(paths)} history file(s): " + ", ".join(printable(p) for p in paths)),
        checks_table(report),
        summary_table(report),
        verdict(report),
    )


def each_view(results: list[tuple[str, Report]]) -> RenderableType:
    """Several histories checked one by one: a line each, then how many passed."""
    table = Table(title=f"{len(results)} histories, each checked on its own")
    numbers = ("sold", "initial", "oversold")
    for name in ("history", "verdict", *numbers, "failed checks"):
        table.add_column(name, justify="right" if name in numbers else "left")
    for path, report in results:
        mark = Text("PASSED", "green") if report.passed else Text("FAILED", "bold red")
        if report.unproven:
            mark = Text("NOT PROVEN", "bold yellow")
        failed = ", ".join(c.name for c in report.failures())
        initial = "?" if report.initial is None else str(report.initial)
        table.add_row(
            Text(printable(path)),
            mark,
            str(report.sold),
            initial,
            str(report.oversold),
            Text(failed),
        )
    bad = sum(1 for _, r in results if not r.passed and not r.unproven)
    unproven = sum(1 for _, r in results if r.unproven)
    if bad:
        last = Text(f"FAILED: {bad} of {len(results)} histories failed a check", "bold red")
    elif unproven:
        last = Text(
            f"NOT PROVEN: {unproven} of {len(results)} histories have no stock reading, "
            "were of aborted runs or tested nothing",
            "bold yellow",
        )
    else:
        last = Text(f"PASSED: all {len(results)} histories", "bold green")
    return Group(table, last)


# -- a big sale (more buyers than rows kept) ---------------------------------


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
            f"every buyer is in the history: tickets check {history}"
            if result.aborted is None
            else f"the history has what was written before the run stopped: {history}"
        )
    parts.append(Text(where, "dim"))
    return Group(*parts)
