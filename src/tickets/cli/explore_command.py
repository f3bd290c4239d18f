"""``tickets explore``: every interleaving of a few buyers (tickets.engine.explore)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from ..constants import EXIT_CHECK_FAILED, EXIT_STORE, EXIT_UNPROVEN
from .console import emit_json, make_console, picture_width
from .errors import done_answering, exit_with, translate_errors
from .history_commands import junit_option, start_junit, write_junit
from .options import json_option, lock_option
from .params import Amount, Count
from .store_options import db_option

if TYPE_CHECKING:
    from ..engine.explore.explorer import Exploration


EXPLORE_EXIT_CODES = (
    "Exit codes: 0 every schedule explored passed; 1 a schedule failed a check (oversold) "
    "or deadlocked, or a replayed schedule failed; 2 usage error (also: a schedule file that "
    "is not one, buyer code that is not deterministic or loops past --max-steps); 3 the "
    "store could not be used, or the buyer code ended or held up the exploration; "
    "5 not proven (no tickets, one buyer, a budget reached, no schedule let two purchases "
    "overlap, a buyer that used store.raw); "
    "129, 130, 143 stopped by SIGHUP, Ctrl-C, SIGTERM."
)


def _refuse(what: str) -> Any:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value:
            raise click.UsageError(what)
        return value

    return callback


@click.command("explore")
@click.option(
    "-n",
    "--buyers",
    type=Count(1, 8),
    default=2,
    show_default=True,
    metavar="N",
    help="Buyers to explore (every schedule of N buyers: keep it small).",
)
@click.option(
    "-t",
    "--tickets",
    type=Count(0, 1000),
    default=1,
    show_default=True,
    metavar="N",
    help="The stock each schedule starts from.",
)
@lock_option()
@click.option(
    "--buy",
    "buy",
    metavar="FILE.py:FUNC",
    help="Explore your own purchase function (through its store handle); with "
    "--replay, the code the schedule names (a schedule file never runs code unasked).",
)
@click.option(
    "--preemptions",
    type=Count(0, 100),
    metavar="K",
    help="Bound the switches away from a buyer that could go on (CHESS: most "
    "races need one or two). Default: no bound.",
)
@click.option(
    "--random",
    "sample",
    type=Count(1, 10_000_000),
    metavar="N",
    help="Sample N schedules by PCT instead of running every one.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of --random.")
@click.option(
    "--depth",
    type=Count(1, 10),
    default=2,
    show_default=True,
    metavar="D",
    help="PCT's bug depth: D-1 priority changes per schedule.",
)
@click.option(
    "--retries",
    type=Count(0, 100),
    default=2,
    show_default=True,
    metavar="N",
    help="Retries a buyer may make (a Redis WATCH that lost) in one schedule.",
)
@click.option(
    "--max-schedules",
    type=Count(1, 100_000_000),
    default=100_000,
    show_default=True,
    metavar="N",
    help="Stop once more than N schedules ran to the end: NOT PROVEN.",
)
@click.option(
    "--time-limit",
    type=Amount(0.1, 86_400),
    default=60.0,
    show_default=True,
    metavar="S",
    help="Stop after S seconds: NOT PROVEN.",
)
@click.option(
    "--max-steps",
    type=Count(1, 100_000),
    default=200,
    show_default=True,
    metavar="N",
    help="The most steps one buyer may take in a schedule.",
)
@click.option(
    "--no-reduction",
    is_flag=True,
    help="Run every interleaving, not one per class (to measure the reduction).",
)
@click.option(
    "--fencing",
    is_flag=True,
    help="--lock lease: the store refuses a holder whose lease expired (fencing tokens).",
)
@click.option(
    "--replay",
    type=click.Path(dir_okay=False, path_type=str),
    metavar="FILE",
    help="Run a saved schedule again, step for step.",
)
@click.option(
    "--exec",
    "exec_",
    hidden=True,
    callback=_refuse(
        "explore drives buyers through the store handle: an --exec command's steps cannot be "
        "scheduled; explore a --buy FILE.py:FUNC"
    ),
)
@click.option(
    "--sale",
    "sale_name",
    hidden=True,
    callback=_refuse(
        "explore runs its buyers in one place; a named sale across hosts cannot be explored"
    ),
)
@json_option
@junit_option
@db_option
@click.pass_context
def explore_command(ctx: click.Context, /, **opts: Any) -> None:
    """Run every schedule of a few buyers and judge each sale.

    The buyers take turns at their store operations (search, read, write,
    take, lock, unlock, the write delay) as a scheduler decides, on a
    scratch store of --db's kind (your stock is not touched). Every distinct
    schedule is run (one per class of schedules equal up to swapping
    independent steps), or --random N of them by PCT. The first that fails
    is shrunk (fewest buyers, then fewest preemptions), printed step by step
    and saved as a schedule file beside its history: --replay runs it again.

    \b
    Examples:
        tickets explore --lock none      # the tutorial's oversell, step by step
        tickets explore --lock file --buyers 3 --tickets 2
        tickets explore --buy examples/booking.py:take_ticket_broken  # its oversell
        tickets explore --replay history/tickets-...-explore-none-123.schedule.json  # its oversell
    """
    from ..engine.explore.explorer import ExploreConfig, run_explore
    from ..render.junit_explore import explore_xml

    spec = ctx.obj.spec
    json_ = opts["json_"]
    with translate_errors():
        if opts["replay"] is not None:
            _replayed(ctx, opts["replay"], spec, json_, opts["buy"], opts["junit_xml"])
            return
        strategy = opts["strategy"]
        from ..locking.strategies import strategies_for

        if strategy not in strategies_for(spec.kind):
            raise click.BadParameter(
                f"{strategy.name} does not apply to a {spec.kind} store", param_hint="--lock"
            )
        if opts["buy"] is not None:
            from ..engine.buyer_check import check

            check(opts["buy"])
        config = ExploreConfig(
            store=spec,
            strategy=strategy,
            buy=opts["buy"],
            buyers=opts["buyers"],
            tickets=opts["tickets"],
            preemptions=opts["preemptions"],
            sample=opts["sample"],
            seed=opts["seed"],
            depth=opts["depth"],
            retries=opts["retries"],
            max_schedules=opts["max_schedules"],
            seconds=opts["time_limit"],
            reduction=not opts["no_reduction"],
            max_steps=opts["max_steps"],
            fencing=opts["fencing"],
        )
        if config.fencing and not strategy.leases:
            raise click.BadParameter("is for --lock lease (a Redis store)", param_hint="--fencing")
        start_junit(opts["junit_xml"], "explore")
        result = isolated(config, run_explore, deadline_of(config))
    code = exit_code_of(result)
    write_junit(opts["junit_xml"], lambda: explore_xml(result, code))
    if json_:
        emit_json(explore_doc(result), code)
    else:
        show_exploration(result)
    exit_with(code)


def show_exploration(result: Any) -> None:
    """The search's verdict, and a counterexample step by step and on a time axis."""
    from ..render.explore_views import exploration_view

    console = make_console()
    picture = None
    if result.history is not None:  # the counterexample on a time axis
        from ..check.history import read
        from ..render.timeline import MAX_ROWS, prepare, timeline

        with translate_errors():
            loaded, _, _ = prepare(read(str(result.history)), MAX_ROWS)
        picture = timeline(loaded, width=picture_width(console), limit=MAX_ROWS)
    done_answering()
    console.print(exploration_view(result, picture), soft_wrap=True)  # paths whole


def deadline_of(config: Any) -> float:
    """The most an exploration may take: its time limit, as much again to
    shrink a failure (a minute at most), and 15 seconds of grace."""
    return float(config.seconds + min(60.0, config.seconds) + 15.0)


def isolated(config: Any, work: Any, limit: float) -> Any:
    """``work(config)`` in the exploration's own warded process (see
    tickets.engine.explore.isolated); a signal stops it, cleaned up, with
    the command's exit code for that signal."""
    from ..engine import interrupts
    from ..engine.explore.isolated import run_isolated
    from ..engine.explore.sale import LoopingBuyer, Nondeterministic, NoOutcome, StepHung
    from ..engine.explore.scheduler import Misused
    from ..errors import StoreError, TicketsError
    from .console import stopped_because

    try:
        with interrupts.terminations_interrupt():
            return run_isolated(config, work, limit)
    except (Nondeterministic, LoopingBuyer, StepHung, NoOutcome, Misused) as exc:
        raise click.UsageError(str(exc)) from None
    except (TicketsError, click.ClickException):
        raise
    except RecursionError:
        raise click.UsageError(
            "a buyer's code recursed so deep that the explorer could not go on"
        ) from None
    except Exception as exc:  # never a traceback: the exploration could not be finished
        raise StoreError(
            "tickets explore", f"the exploration failed ({type(exc).__name__}: {exc})"
        ) from None
    except KeyboardInterrupt as interrupt:
        message = f"{interrupts.describe(interrupt)}; the exploration was stopped and cleaned up"
        stopped_because.append(message)
        click.echo(message, err=True)
        sys.exit(interrupts.exit_code(interrupt))


def exit_code_of(result: Exploration) -> int:
    """1 a schedule failed a check (or deadlocked); 3 its files could not
    be saved; 5 nothing proven (a budget, no stock, one buyer, store.raw); 0."""
    if result.counterexample is not None:
        return EXIT_STORE if result.save_error else EXIT_CHECK_FAILED
    return EXIT_UNPROVEN if result.unproven else 0


def explore_doc(result: Exploration) -> dict[str, Any]:
    """The ``--json`` document of an exploration (docs/explore.md)."""
    from ..engine.explore.explorer import broke

    cfg, out = result.config, result.outcome
    found = result.counterexample
    return {
        "mode": "explore",
        "strategy": cfg.strategy.name,
        "buy": cfg.buy,
        "store_kind": cfg.store.kind,
        "buyers": cfg.buyers,
        "tickets": cfg.tickets,
        "search": "random" if cfg.sample is not None else "exhaustive",
        "preemption_bound": cfg.preemptions,
        "schedules": out.schedules,
        "distinct": out.distinct,
        "pruned": out.pruned,
        "complete": out.complete,
        "budget": out.budget,
        "passed": result.passed,
        "unproven": result.unproven is not None and found is None,
        "reason": result.unproven,
        "counterexample": None
        if found is None
        else {
            "buyers": result.counterexample_buyers,
            "preemptions": found.preemptions,
            "steps": [[e.step.buyer, e.step.kind, e.said] for e in found.ran],
            "broke": broke(found),
            "history": None if result.history is None else str(result.history),
            "schedule": None if result.schedule_file is None else str(result.schedule_file),
        },
        "duration_s": round(result.seconds, 6),
    }


#: The options a replay takes from its schedule file, not the command line.
SAVED = (
    "buyers", "tickets", "strategy", "preemptions", "sample", "seed", "depth",
    "retries", "max_schedules", "time_limit", "max_steps", "no_reduction", "fencing",
)  # fmt: skip


def _replayed(
    ctx: click.Context, path: str, spec: Any, json_: bool, buy: str | None, junit_xml: str | None
) -> None:
    from pathlib import Path

    from ..engine.explore.explorer import broke, replay_config, replay_run
    from ..render.junit_explore import replay_xml

    given = [
        name for name in SAVED
        if ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE
    ]  # fmt: skip
    if given:
        flag = "--" + given[0].replace("_", "-").replace("strategy", "lock")
        raise click.UsageError(f"--replay runs the sale the schedule file saved: drop {flag}")
    config, doc = replay_config(Path(path), spec, buy)
    if config.buy is not None:
        from ..engine.buyer_check import check

        check(config.buy)
    schedule, history = isolated(
        config, lambda cfg: replay_run(cfg, doc, Path(path)), deadline_of(config)
    )
    failed = schedule.failed or schedule.deadlock is not None
    raced = schedule.report is not None and schedule.report.contention.contended > 0
    # A replay reproduces a failure, or it proves nothing: one schedule that
    # breaks nothing (an edited file, a sale of code that changed) is no green.
    code = EXIT_CHECK_FAILED if failed else EXIT_UNPROVEN
    said = broke(schedule)
    same = said == doc.get("broke")
    write_junit(junit_xml, lambda: replay_xml(schedule, path, history, code))
    if json_:
        emit_json(
            {
                "mode": "explore",
                "replay": path,
                "passed": False,
                "unproven": not failed,
                "steps": [[e.step.buyer, e.step.kind, e.said] for e in schedule.ran],
                "broke": said,
                "same_as_saved": same,
                "history": str(history),
            },
            code,
        )
    else:
        from ..render.explore_views import replay_view

        done_answering()
        make_console().print(replay_view(schedule, doc, history, said, raced))
    exit_with(code)


__all__ = ["explore_command"]
