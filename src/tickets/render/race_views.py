"""The race's views: the strategies side by side, and the verdict, last."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ..check.operations import printable
from ..engine.race import RaceResult, in_words, side_label, unproven
from .tables import Whole


def race_table(race: RaceResult) -> Table:
    sides = race.sides
    trials = sides[0].trials
    title = "the same sale, side by side" + (f", {trials} trials each" if trials > 1 else "")
    table = Table(title=title)
    table.add_column("")
    for side in sides:
        table.add_column(Text(printable(side_label(side.strategy))), justify="right")
    if trials == 1:
        _one_trial_rows(table, race)
    else:
        table.add_row("trials oversold", *[f"{s.oversold_trials}/{s.trials}" for s in sides])
        table.add_row("oversold min", *[str(s.oversold_min) for s in sides])
        table.add_row("oversold median", *[f"{s.oversold_median:g}" for s in sides])
        table.add_row("oversold max", *[str(s.oversold_max) for s in sides])
        table.add_row("trials failing a check", *[str(s.failed_check_trials) for s in sides])
        table.add_row("unknown outcomes", *[str(s.unknown_total) for s in sides])
        if any(s.turned_away_total or s.retries_total for s in sides):
            table.add_row("turned away", *[str(s.turned_away_total) for s in sides])
            table.add_row("retries", *[str(s.retries_total) for s in sides])
        table.add_row("median wall time", *[f"{s.duration_median_s:.3f} s" for s in sides])
        table.add_row("median purchases/s", *[f"{s.purchases_per_s_median:,.0f}" for s in sides])
    return table


def _one_trial_rows(table: Table, race: RaceResult) -> None:
    """The race table's rows when every side ran once: each run's figures."""
    sides = race.sides
    results = {r.strategy: r.result for r in race.runs}
    rep = {name: results[name].report for name in results}

    def cells(fn: Callable[[str], str | Text]) -> list[str | Text]:
        return [fn(side.strategy) for side in sides]

    table.add_row("initial", *cells(lambda n: str(rep[n].initial)))
    table.add_row("sold", *cells(lambda n: str(rep[n].sold)))
    table.add_row("remaining", *cells(lambda n: str(rep[n].remaining)))
    table.add_row(
        "oversold",
        *cells(lambda n: Text(str(rep[n].oversold), "bold red" if rep[n].oversold else "green")),
    )
    table.add_row(
        "double-sold seats",
        *cells(lambda n: ", ".join(map(str, rep[n].double_sold_seats[:8])) or "none"),
    )
    table.add_row("unknown outcomes", *cells(lambda n: str(rep[n].unknown)))
    if any(rep[n].refused or rep[n].retries for n in rep):  # a database refused, or retried
        table.add_row("turned away", *cells(lambda n: str(rep[n].refused)))
        table.add_row("retries", *cells(lambda n: str(rep[n].retries)))
    table.add_row("wall time", *cells(lambda n: f"{results[n].duration_s:.3f} s"))
    table.add_row("purchases/s", *cells(lambda n: f"{results[n].purchases_per_s:,.0f}"))
    excludes = {side.strategy: side.excludes for side in sides}

    def check_cell(n: str) -> Text:
        if results[n].passed:
            return Text("pass", "green")
        if unproven(results[n]):
            return Text("not proven", "yellow")
        if not excludes[n]:  # no lock: failing is what it shows
            return Text("FAIL (expected)", "yellow")
        return Text("FAIL", "bold red")

    table.add_row("checks", *cells(check_cell))


def race_verdict(race: RaceResult) -> Text:
    """What the race showed, in one line: PASSED or FAILED for the locking
    strategies, DEMONSTRATED when only strategies without exclusion ran."""
    if race.verdict.unproven:
        return Text(printable("NOT PROVEN: " + "; ".join(race.verdict.reasons)), "bold yellow")
    if not race.verdict.passed:
        return Text(printable("FAILED: " + "; ".join(race.verdict.reasons)), "bold red")
    locked = [s for s in race.sides if s.excludes]
    shown = [in_words(s) for s in race.sides if not s.excludes and s.oversold_trials]
    missed = [s for s in race.sides if not s.excludes and not s.oversold_trials]
    if locked:
        from ..engine.race import is_user_code

        mine = [side_label(s.strategy) for s in locked if is_user_code(s.strategy)]
        how = (
            "sold exactly the stock"
            if all(s.sold_max == s.initial for s in locked)
            else "sold no more than the stock"
        )
        if mine and len(mine) == len(locked):
            text = f"PASSED: {', '.join(mine)} {how}"
        elif mine:
            text = f"PASSED: every locking strategy and {', '.join(mine)} {how}"
        else:
            text = f"PASSED: every locking strategy {how}"
        if shown:
            text += "; " + "; ".join(shown) + " (expected)"
        return Text(printable(text), "bold green")
    if shown:
        return Text(printable("DEMONSTRATED: " + "; ".join(shown) + " (expected)"), "bold yellow")
    trials = sum(s.trials for s in missed)
    return Text(
        f"NOT SHOWN: nothing was oversold in {trials} unlocked run(s) this time; "
        "an unlocked sale can come out right by luck (more --trials, --no-delay off)",
        "bold yellow",
    )


def race_view(race: RaceResult) -> RenderableType:
    """The table, the sides in words and the histories (the verdict is
    :func:`race_verdict`, printed last)."""
    words = Text("\n".join(printable(in_words(side)) for side in race.sides))
    kept = [r for r in race.runs if r.result.history is not None]
    # Each path whole and indented, whatever the terminal's width: to copy.
    histories: list[RenderableType] = [Text("histories:")]
    histories += [Whole(f"  {r.result.history}") for r in kept[:12]]
    if len(kept) > 12:
        histories.append(Text(f"  … and {len(kept) - 12} more"))
    if not kept:
        histories = [Text("histories: not kept (--history none)")]
    return Group(race_table(race), words, *histories)
