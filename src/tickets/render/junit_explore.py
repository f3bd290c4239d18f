"""``tickets explore --junit-xml PATH``: the search as one test case, its
failing schedule step by step in the failure's body (see
:mod:`tickets.render.junit` for the mapping of verdicts to cases)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..constants import EXIT_UNPROVEN
from .junit import ERROR, FAILURE, Case, Suite, document, plural, who

if TYPE_CHECKING:
    from ..engine.explore.explorer import Exploration
    from ..engine.explore.sale import Schedule


def explore_xml(result: Exploration, code: int) -> bytes:
    """One case for the search: its verdict, with the failing schedule's
    steps in the failure's body."""
    cfg, out = result.config, result.outcome
    classname = f"tickets.explore.{who(cfg.strategy.name, cfg.buy)}"
    tickets = plural(cfg.tickets, "ticket")
    name = f"{plural(cfg.buyers, 'buyer')} over {tickets}"
    how = (
        f"{out.schedules:,} schedules sampled by PCT (seed {cfg.seed}, depth {cfg.depth})"
        if cfg.sample is not None
        else f"{out.schedules:,} schedules run, {out.distinct:,} distinct, {out.pruned:,} dropped"
    )
    case = Case(name, classname, out=how, time=result.seconds)
    cases = [case]
    found = result.counterexample
    if found is not None:
        head = "DEADLOCK" if found.deadlock is not None else "FAILED"
        case.outcome, case.kind = FAILURE, head
        case.message = (
            f"{head}: {described(result)}, {result.counterexample_buyers} buyers over {tickets}, "
            f"{plural(found.preemptions, 'preemption')}, {len(found.ran)} steps "
            f"(found after {how})"
        )
        case.body = "\n".join(schedule_lines(found) + saved_lines(result))
        if result.save_error is not None:
            saving = Case("saving the counterexample", classname, ERROR, "ERROR")
            saving.message = f"ERROR: {result.save_error}"
            cases.append(saving)
    elif result.unproven:
        case.outcome, case.kind = FAILURE, "NOT PROVEN"
        case.message = f"NOT PROVEN: {described(result)}: {result.unproven} ({how}; nothing failed)"
    else:
        scope = f"{out.schedules:,} sampled" if cfg.sample is not None else f"all {out.distinct:,}"
        case.out = f"PASSED: {scope} schedules of {name} explored: nothing oversold ({how})"
    suite = Suite(f"tickets explore ({described(result)})", cases, time=result.seconds)
    suite.properties = explore_properties(result, code)
    suite.ago = result.seconds
    return document("tickets explore", [suite])


def explore_properties(result: Exploration, code: int) -> list[tuple[str, object]]:
    cfg, out = result.config, result.outcome
    props: list[tuple[str, object]] = [
        ("command", "tickets explore"),
        ("strategy", cfg.strategy.name),
        ("store", cfg.store.label),
        ("store_kind", cfg.store.kind),
        ("buyers", cfg.buyers),
        ("tickets", cfg.tickets),
        ("search", "random" if cfg.sample is not None else "exhaustive"),
        ("seed", cfg.seed),
        ("preemption_bound", "none" if cfg.preemptions is None else cfg.preemptions),
        ("schedules", out.schedules),
        ("distinct", out.distinct),
    ]
    props += [("buy", cfg.buy)] if cfg.buy is not None else []
    props += [("history", result.history)] if result.history is not None else []
    props += [("schedule", result.schedule_file)] if result.schedule_file is not None else []
    return [*props, ("exit_code", code)]


def described(result: Exploration) -> str:
    """``--lock flock``, ``--buy f.py:buy --lock none``, ``--lock lease --fencing``."""
    cfg = result.config
    what = f"--lock {cfg.strategy.name}" + (" --fencing" if cfg.fencing else "")
    return what if cfg.buy is None else f"--buy {cfg.buy} {what}"


def schedule_lines(schedule: Schedule) -> list[str]:
    """The schedule as ``explore`` prints it: a numbered step a line, how
    each buyer ended, what broke."""
    from ..engine.explore.explorer import broke

    width = len(str(len(schedule.ran)))
    lines = [
        f"step {n:>{width}}  buyer {e.step.buyer}  {e.said or e.step.kind}"
        for n, e in enumerate(schedule.ran, 1)
    ]
    lines += [f"buyer {b} {words}" for b, words in sorted(schedule.ended.items())]
    return lines + broke(schedule)


def saved_lines(result: Exploration) -> list[str]:
    if result.schedule_file is None:
        return []
    from ..engine.explore.explorer import replay_command

    replay = replay_command(result)
    return [
        f"history   {result.history}",
        f"schedule  {result.schedule_file}",
        f"replay    {replay}",
    ]


def replay_xml(schedule: Schedule, path: str, history: object, code: int) -> bytes:
    """``explore --replay FILE``: one case, the replayed schedule."""
    case = Case(f"replay of {path}", "tickets.explore.replay", out=f"history {history}")
    if code == EXIT_UNPROVEN:
        case.outcome, case.kind = FAILURE, "NOT PROVEN"
        case.message = (
            "NOT PROVEN: the saved schedule replayed: nothing broke (one schedule says "
            "nothing of the others)"
        )
    elif code:
        from ..engine.explore.explorer import broke

        case.outcome, case.kind = FAILURE, "DEADLOCK" if schedule.deadlock else "FAILED"
        case.message = f"{case.kind}: the saved schedule replayed, {len(schedule.ran)} steps: "
        case.message += "; ".join(broke(schedule))
        case.body = "\n".join(schedule_lines(schedule))
    props: list[tuple[str, object]] = [("command", "tickets explore --replay")]
    props += [("schedule", path), ("history", history), ("exit_code", code)]
    return document("tickets explore", [Suite("tickets explore --replay", [case], props)])
