"""What ``tickets explore`` shows: the verdict with its bound, and a failing
schedule as numbered steps, one column per buyer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ..check.operations import printable

if TYPE_CHECKING:
    from ..engine.explore.explorer import Exploration
    from ..engine.explore.sale import Schedule


def schedule_view(schedule: Schedule, buyers: int, broke: list[str]) -> RenderableType:
    """``step | buyer 0 | buyer 1``: who did what, in order, and what broke."""
    table = Table(title="the schedule, step by step", title_justify="left")
    table.add_column("step", justify="right", style="dim")
    for b in range(buyers):
        table.add_column(f"buyer {b}")
    for n, executed in enumerate(schedule.ran, 1):
        cells = [""] * buyers
        what = executed.said or executed.step.kind
        cells[executed.step.buyer] = printable(what)
        table.add_row(str(n), *cells)
    ends = [""] * buyers
    for b, words in schedule.ended.items():
        if b < buyers:
            ends[b] = printable(words)
    table.add_row("", *ends, style="bold")
    lines = [Text(printable(line), style="bold red") for line in broke]
    return Group(table, *lines)


def exploration_view(result: Exploration, picture: RenderableType | None = None) -> RenderableType:
    """The verdict with its bound; a counterexample step by step, then
    ``picture`` (its timeline), where its files are, and what broke."""
    cfg, out = result.config, result.outcome
    what = described(result)
    bound = (
        f"PCT depth {cfg.depth}, seed {cfg.seed}"
        if cfg.sample is not None
        else f"preemption bound {'none' if cfg.preemptions is None else cfg.preemptions}"
    )
    how = (
        f"{plural(out.schedules, 'schedule')} sampled by PCT (seed {cfg.seed}, depth {cfg.depth})"
        if cfg.sample is not None
        else f"{plural(out.schedules, 'schedule')} run, {out.distinct:,} distinct"
        f" ({out.pruned:,} dropped as redundant or over the bound)"
    )
    parts: list[RenderableType] = []
    found = result.counterexample
    if found is not None:
        return _found_view(result, found, picture, what, how)
    if result.unproven:
        parts.append(
            Text(
                f"NOT PROVEN: {what}: {printable(result.unproven)} ({how}; nothing failed)",
                style="bold yellow",
            )
        )
        return Group(*parts)
    scope = (
        f"{plural(out.schedules, 'sampled schedule')}"
        if cfg.sample is not None
        else f"all {plural(out.distinct, 'distinct schedule')}"
    )
    parts.append(
        Text(
            f"PASSED: {scope} of {cfg.buyers} buyers over {plural(cfg.tickets, 'ticket')} "
            f"explored ({bound}, retries {cfg.retries}): nothing oversold, {what} "
            f"({out.schedules:,} run, {out.pruned:,} dropped, {out.seconds:.2f}s)",
            style="bold green",
        )
    )
    return Group(*parts)


def _found_view(
    result: Exploration,
    found: Schedule,
    picture: RenderableType | None,
    what: str,
    how: str,
) -> RenderableType:
    """A failing (or deadlocked) schedule: its steps, its timeline, its
    files, and the verdict."""
    cfg = result.config
    parts: list[RenderableType] = [
        schedule_view(found, result.counterexample_buyers, _broke(found))
    ]
    if picture is not None:
        parts.append(picture)
    if result.schedule_file is not None:
        parts.append(
            Text(
                f"history   {printable(str(result.history))}\n"
                f"schedule  {printable(str(result.schedule_file))}\n"
                f"replay    {printable(replay_command(result))}",
                no_wrap=True,  # copied whole into a shell
                overflow="ignore",
            )
        )
    if result.save_error is not None:
        parts.append(Text(f"ERROR: {printable(result.save_error)}", style="bold red"))
    head = "DEADLOCK" if found.deadlock is not None else "FAILED"
    parts.append(
        Text(
            f"{head}: {what}, {result.counterexample_buyers} buyers over "
            f"{plural(cfg.tickets, 'ticket')}, {plural(found.preemptions, 'preemption')}, "
            f"{len(found.ran)} steps (found after {how}"
            + ("; shrunk to the fewest buyers and preemptions)" if head == "FAILED" else ")"),
            style="bold red",
        )
    )
    return Group(*parts)


def plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def described(result: Exploration) -> str:
    """``--lock flock``, ``--buy f.py:buy --lock none``, ``--lock lease --fencing``."""
    cfg = result.config
    what = f"--lock {cfg.strategy.name}"
    if cfg.fencing:
        what += " --fencing"
    return what if cfg.buy is None else f"--buy {cfg.buy} {what}"


def replay_command(result: Exploration) -> str:
    from ..engine.explore.explorer import replay_command as command

    return command(result)


def _broke(schedule: Schedule) -> list[str]:
    from ..engine.explore.explorer import broke

    return broke(schedule)


def replay_view(
    schedule: Schedule, doc: dict[str, object], history: object, said: list[str], raced: bool
) -> RenderableType:
    """A replayed schedule: its steps, its history, and whether it broke as saved."""
    buyers = int(str(doc["buyers"]))
    failed = schedule.failed or schedule.deadlock is not None
    saved = doc.get("broke")
    same = said == saved
    shown = "; ".join(str(x) for x in saved) if isinstance(saved, list) else ""
    again = "as saved" if same else f"NOT as saved ({printable(shown) or 'nothing'})"
    if failed:
        text = (
            f"FAILED: the saved schedule replayed, {len(schedule.ran)} steps, {buyers} buyers, "
            f"--lock {printable(str(doc['lock']))}: it broke {again}"
        )
    else:
        text = (
            f"NOT PROVEN: the saved schedule replayed, {len(schedule.ran)} steps: nothing "
            "broke"
            + ("" if raced else ", and no two purchases overlapped in it")
            + ("" if same else " (it broke when it was saved)")
            + "; one schedule that breaks nothing says nothing of the others (explore them)"
        )
    style = "bold red" if failed else "bold yellow"
    return Group(
        schedule_view(schedule, buyers, said),
        Text(f"history   {printable(str(history))}"),
        Text(text, style=style),
    )
