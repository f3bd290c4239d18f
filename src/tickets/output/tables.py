"""Results -> rich renderables (pure functions): the buyer, queue, race and
check views. The --json documents are in :mod:`tickets.output.json_documents`,
which needs no rich."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ..checks import Report
from ..run.ledger import OperationRow, RunResult
from ..run.race import RaceResult, in_words

#: Rows a buyer table shows before it elides (``--all`` shows every row).
MAX_ROWS = 60
RESULT_STYLE = {"ok": "green", "fail": "yellow", "info": "magenta", "pending": "dim"}
RESULT_WORD = {"ok": "sold", "fail": "no ticket", "info": "unknown", "pending": "pending"}


def _ms(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds * 1000:.1f}"


def pick_rows(rows: list[OperationRow], report: Report, limit: int | None) -> list[OperationRow]:
    """The rows worth showing: all, or every double-sold and unknown one first."""
    if limit is None or len(rows) <= limit:
        return rows
    double = set(report.double_sold)
    first = [r for r in rows if r.seat in double or r.result == "info"][:limit]
    chosen = {r.number for r in first}
    for r in rows:
        if len(chosen) >= limit:
            break
        chosen.add(r.number)
    return [r for r in rows if r.number in chosen]


def buyers_table(result: RunResult, limit: int | None = MAX_ROWS) -> Table:
    report = result.report
    shown = pick_rows(result.rows, report, limit)
    table = Table(title=f"{len(result.rows)} buyers, strategy {result.config.strategy}")
    table.add_column("buyer", justify="right")
    table.add_column("pid", justify="right")
    table.add_column("seen", justify="right")
    table.add_column("result")
    table.add_column("seat", justify="right")
    table.add_column("lock wait ms", justify="right")
    table.add_column("total ms", justify="right")
    table.add_column("note")
    for row in shown:
        seat = "" if row.seat is None else str(row.seat)
        seat_text = Text(seat)
        note = row.reason or ""
        if row.seat is not None and row.seat in report.double_sold:
            seat_text = Text(f"{seat} ×{len(report.double_sold[row.seat])}", style="bold red")
            note = "double-sold seat" + (f"; {note}" if note else "")
        table.add_row(
            str(row.number),
            "" if row.pid is None else str(row.pid),
            "" if row.seen is None else str(row.seen),
            Text(RESULT_WORD[row.result], style=RESULT_STYLE[row.result]),
            seat_text,
            _ms(row.lock_wait),
            _ms(row.total),
            note,
        )
    if len(shown) < len(result.rows):
        table.caption = (
            f"showing {len(shown)} of {len(result.rows)} buyers (double-sold and unknown first); "
            f"--all shows every buyer, the history has every event"
        )
    return table


def verdict(report: Report, aborted: str | None = None) -> Text:
    if aborted:
        return Text(f"ABORTED: {aborted}", style="bold red")
    if report.passed:
        return Text(
            f"PASSED: {report.sold} sold from a stock of {report.initial}, nothing oversold",
            style="bold green",
        )
    if report.oversold:
        lines = [f"FAILED: oversold by {report.oversold}"]
    else:
        lines = ["FAILED: " + ", ".join(c.name for c in report.failures())]
    if report.double_sold:
        seats = ", ".join(str(s) for s in report.double_sold_seats[:10])
        lines.append(f"double-sold seats: {seats}")
    lines += [f"{c.name}: {c.detail}" for c in report.failures()]
    return Text("\n".join(lines), style="bold red")


def summary_table(report: Report, extra: list[tuple[str, str]] | None = None) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    remaining = "unknown" if report.remaining is None else str(report.remaining)
    oversold = Text(str(report.oversold), style="bold red" if report.oversold else "green")
    grid.add_row("initial", str(report.initial))
    grid.add_row("sold", str(report.sold))
    grid.add_row("remaining", remaining)
    grid.add_row("oversold", oversold)
    seats = ", ".join(str(s) for s in report.double_sold_seats[:20]) or "none"
    grid.add_row("double-sold seats", seats)
    grid.add_row("unknown outcomes", str(report.unknown))
    for key, value in extra or []:
        grid.add_row(key, value)
    return grid


def chaos_line(result: RunResult) -> list[tuple[str, str]]:
    c = result.chaos
    if not c:
        return []
    return [
        (
            "chaos",
            f"{c['killed']} killed with SIGKILL (of {c['kills_planned']} doomed), "
            f"{c['paused']} paused with SIGSTOP/SIGCONT (seed {c['seed']})",
        )
    ]


def run_summary(result: RunResult) -> Table:
    return summary_table(
        result.report,
        [
            ("stock", result.stock),
            *chaos_line(result),
            ("wall time", f"{result.duration_s:.3f} s"),
            ("purchases/s", f"{result.purchases_per_s:,.0f}"),
            ("strategy", result.config.strategy),
            ("history", str(result.history or "not kept (--history none)")),
        ],
    )


def run_view(result: RunResult, limit: int | None = MAX_ROWS) -> RenderableType:
    return Group(
        buyers_table(result, limit),
        run_summary(result),
        verdict(result.report, result.aborted),
    )


def checks_table(report: Report) -> Table:
    table = Table(title="checks")
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail")
    for c in report.checks:
        mark = Text("pass", style="green") if c.passed else Text("FAIL", style="bold red")
        table.add_row(c.name, mark, Text(c.detail))  # never markup: details quote histories
    return table


def check_view(report: Report, paths: list[str]) -> RenderableType:
    return Group(
        Text(f"{len(paths)} history file(s): " + ", ".join(paths)),
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
        failed = ", ".join(c.name for c in report.failures())
        table.add_row(Text(path), mark, str(report.sold), str(report.initial),
                      str(report.oversold), Text(failed))  # fmt: skip
    bad = sum(1 for _, r in results if not r.passed)
    if bad:
        last = Text(f"FAILED: {bad} of {len(results)} histories failed a check", "bold red")
    else:
        last = Text(f"PASSED: all {len(results)} histories", "bold green")
    return Group(table, last)


def race_table(race: RaceResult) -> Table:
    sides = race.sides
    trials = sides[0].trials
    title = "the same sale, side by side" + (f", {trials} trials each" if trials > 1 else "")
    table = Table(title=title)
    table.add_column("")
    for side in sides:
        table.add_column(side.strategy, justify="right")
    if trials == 1:
        _one_trial_rows(table, race)
    else:
        table.add_row("trials oversold", *[f"{s.oversold_trials}/{s.trials}" for s in sides])
        table.add_row("oversold min", *[str(s.oversold_min) for s in sides])
        table.add_row("oversold median", *[f"{s.oversold_median:g}" for s in sides])
        table.add_row("oversold max", *[str(s.oversold_max) for s in sides])
        table.add_row("trials failing a check", *[str(s.failed_check_trials) for s in sides])
        table.add_row("unknown outcomes", *[str(s.unknown_total) for s in sides])
        table.add_row("median wall time", *[f"{s.duration_median_s:.3f} s" for s in sides])
        table.add_row("median purchases/s", *[f"{s.purchases_per_s_median:,.0f}" for s in sides])
    return table


def _one_trial_rows(table: Table, race: RaceResult) -> None:
    """The race table's rows when every side ran once: each run's figures."""
    sides = race.sides
    results = {r.strategy: r.result for r in race.runs}
    rep = {name: results[name].report for name in results}

    def cells(fn: Any) -> list[Any]:
        return [fn(side.strategy) for side in sides]

    table.add_row("initial", *cells(lambda n: str(rep[n].initial)))
    table.add_row("sold", *cells(lambda n: str(rep[n].sold)))
    table.add_row("remaining", *cells(lambda n: str(rep[n].remaining)))
    table.add_row(
        "oversold",
        *cells(
            lambda n: Text(str(rep[n].oversold), "bold red" if rep[n].oversold else "green")
        ),
    )
    table.add_row(
        "double-sold seats",
        *cells(lambda n: ", ".join(map(str, rep[n].double_sold_seats[:8])) or "none"),
    )
    table.add_row("unknown outcomes", *cells(lambda n: str(rep[n].unknown)))
    table.add_row("wall time", *cells(lambda n: f"{results[n].duration_s:.3f} s"))
    table.add_row("purchases/s", *cells(lambda n: f"{results[n].purchases_per_s:,.0f}"))
    excludes = {side.strategy: side.excludes for side in sides}

    def check_cell(n: str) -> Text:
        if results[n].passed:
            return Text("pass", "green")
        if not excludes[n]:  # no lock: failing is what it shows
            return Text("FAIL (expected)", "yellow")
        return Text("FAIL", "bold red")

    table.add_row("checks", *cells(check_cell))


def race_verdict(race: RaceResult) -> Text:
    """What the race showed, in one line: PASSED or FAILED for the locking
    strategies, DEMONSTRATED when only strategies without exclusion ran."""
    if not race.verdict.passed:
        return Text("FAILED: " + "; ".join(race.verdict.reasons), "bold red")
    locked = [s for s in race.sides if s.excludes]
    shown = [in_words(s) for s in race.sides if not s.excludes and s.oversold_trials]
    missed = [s for s in race.sides if not s.excludes and not s.oversold_trials]
    if locked:
        text = "PASSED: every locking strategy sold exactly the stock"
        if shown:
            text += "; " + "; ".join(shown) + " (expected)"
        return Text(text, "bold green")
    if shown:
        return Text("DEMONSTRATED: " + "; ".join(shown) + " (expected)", "bold yellow")
    trials = sum(s.trials for s in missed)
    return Text(
        f"NOT SHOWN: nothing was oversold in {trials} unlocked run(s) this time; "
        "an unlocked sale can come out right by luck (more --trials, --no-delay off)",
        "bold yellow",
    )


def race_view(race: RaceResult) -> RenderableType:
    """The table, the sides in words and the histories (the verdict is
    :func:`race_verdict`, printed last)."""
    words = Text("\n".join(in_words(side) for side in race.sides))
    kept = [r for r in race.runs if r.result.history is not None]
    histories = Text("histories:\n" + "\n".join(f"  {r.result.history}" for r in kept[:12]))
    if len(kept) > 12:
        histories.append(f"\n  … and {len(kept) - 12} more")
    if not kept:
        histories = Text("histories: not kept (--history none)")
    return Group(race_table(race), words, histories)


def clerks_table(result: RunResult) -> Table:
    stats = result.queue
    clerks = Table(title=f"{len(stats.clerks)} clerks, strategy {result.config.strategy}")
    for name in ("clerk", "pid", "orders taken", "sold", "time busy", "exit"):
        clerks.add_column(name, justify="left" if name == "exit" else "right")
    for c in stats.clerks:
        clerks.add_row(
            str(c["clerk"]), str(c["pid"]), str(c["taken"]), str(c["sold"]),
            f"{c['busy_s']:.3f} s", c["exit"],
        )  # fmt: skip
    return clerks


def producers_table(result: RunResult) -> Table:
    stats = result.queue
    producers = Table(title=f"{len(stats.producers)} producers")
    for name in ("producer", "pid", "submitted", "accepted", "rejected busy"):
        producers.add_column(name, justify="right")
    for p in stats.producers:
        producers.add_row(
            str(p["producer"]), str(p["pid"]), str(p["submitted"]), str(p["accepted"]),
            str(p["rejected"]),
        )  # fmt: skip
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
            r.reason or "",
        )
    if len(worth) > 20:
        orders.caption = f"{len(worth) - 20} more in the history"
    return orders


def queue_view(result: RunResult) -> RenderableType:
    stats = result.queue
    parts: list[RenderableType] = [producers_table(result), clerks_table(result)]
    orders = orders_table(result)
    if orders is not None:
        parts.append(orders)
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
            ("strategy", result.config.strategy),
            ("history", str(result.history or "not kept (--history none)")),
        ],
    )
    parts.append(summary)
    for note in result.notes:
        parts.append(Text(f"note: {note}", style="yellow"))
    parts.append(verdict(result.report, result.aborted))
    return Group(*parts)
