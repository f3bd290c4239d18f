"""``tickets buy``, ``tickets race`` and ``tickets queue``: the commands that sell.

Each parses its options into a run config (which validates itself), runs
it with a live line on a terminal, prints the table or the JSON document,
and exits with the documented code. The core and rich load inside the
commands (see :mod:`tickets.cli`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from ..constants import (
    DEFAULT_BUYERS,
    MAX_BATCH,
    MAX_BUYERS,
    MAX_CLERKS,
    MAX_COUNT,
    MAX_ORDERS,
    MAX_QUEUE_SIZE,
    MAX_WORKER_PRODUCERS,
    MAX_WORKERS,
    NO_HISTORY,
    ROWS_KEPT,
)
from .console import emit_json, make_console, picture_width, run_live, sell_and_exit
from .errors import exit_code_for, exit_with, translate_errors
from .exec_options import exec_fields, exec_options
from .history_commands import OutputFile, junit_option, start_junit, write_junit
from .options import (
    chaos_options,
    count_option,
    lock_option,
    parse_strategies,
    pause_length_option,
    refuse_missing_key,
    sale_config,
    sale_options,
    worker_fields,
    workers_options,
)
from .params import Amount, Count
from .sale_group import named_sale_options, sale_fields

if TYPE_CHECKING:
    from pathlib import Path

    from rich.console import RenderableType

    from ..engine.ledger import RunResult
    from ..engine.race import RaceResult, RaceRun
    from ..locking.strategies import Strategy
    from .exec_options import ExecFields
    from .options import ConfigFields, WorkerFields
    from .sale_group import NamedSaleFields

    class BuyFields(ConfigFields, WorkerFields, ExecFields, NamedSaleFields, total=False):
        """Every BuyConfig field ``buy`` takes from its options."""


@click.command()
@count_option(
    "--buyers",
    1,
    MAX_BUYERS,
    DEFAULT_BUYERS,
    "How many buyers contend for the stock.",
)
@lock_option()
@sale_options
@workers_options
@chaos_options
@pause_length_option
@click.option(
    "--buy",
    "buy_code",
    metavar="FILE.py:FUNC",
    help="Buy with your own code: each "
    "buyer calls FUNC(store) once; it returns the seat it took, or None when sold "
    "out (FILE.py:FUNC or MODULE:FUNC).",
)
@exec_options
@named_sale_options
@click.option(
    "--buyer-timeout",
    type=Amount(0, 86_400, min_open=True),
    metavar="S",
    help="Stop a buyer still buying S seconds after the start (its outcome: unknown).",
)
@click.option("--all", "show_all", is_flag=True, help="Show every buyer in the table.")
@junit_option
@click.pass_context
def buy(
    ctx: click.Context,
    /,
    buyers: int,
    strategy: Strategy,
    json_: bool,
    show_all: bool,
    buy_code: str | None,
    buyer_timeout: float | None,
    junit_xml: str | None,
    **opts: Any,
) -> None:
    """Run a sale: N buyer processes contend for the stock.

    Each buyer searches (an unlocked read after a simulated delay), then
    under the lock strategy reads the count, decrements it and writes it
    back. The table shows every buyer's outcome; the checks run over the
    recorded history.

    \b
    Examples:
        tickets buy --buyers 50
        tickets buy --buyers 50 --lock none --tickets 10  # watch it oversell
        tickets buy --buyers 1000 --no-delay --json
        tickets buy --chaos --kill-rate 0.3 --tickets 20  # kill -9 and pause buyers
        tickets buy --buy examples/booking.py:take_ticket --lock file --tickets 10
        tickets buy --db tickets.json --exec 'python3 examples/take_one.py' -t 10  # any command
    """
    from ..engine.buy import run_buy
    from ..engine.config import BuyConfig
    from ..render.json_documents import run_dict
    from ..render.junit import run_xml

    if show_all and buyers > ROWS_KEPT:
        raise click.UsageError(
            f"--all shows at most {ROWS_KEPT:,} buyers; the history has "
            "every one (tickets history FILE)"
        )
    command = exec_fields(ctx, opts)  # under --exec: no lock, and maybe no restock
    named = sale_fields(ctx, opts)
    on_store = command.get("stock", "store") == "store"
    given: BuyFields = {
        **sale_config(ctx, opts, on_store),
        **worker_fields(opts),
        "strategy": strategy,
        **command,
        **named,
    }
    with translate_errors():
        config = BuyConfig(buyers=buyers, buy=buy_code, buyer_timeout=buyer_timeout, **given)

    def show(result: RunResult, code: int) -> None:
        write_junit(junit_xml, lambda: run_xml(result, code))
        if json_:
            emit_json(run_dict(result), code)
        else:
            from ..render.tables import run_view

            make_console().print(run_view(result, None) if show_all else run_view(result))

    label = "buy --exec" if config.command is not None else f"buy --lock {config.strategy.name}"
    start_junit(junit_xml, "buy")
    sell_and_exit(label, "buyers", lambda live: run_buy(config, live), show, json_)


@click.command()
@count_option(
    "--buyers",
    1,
    MAX_BUYERS,
    DEFAULT_BUYERS,
    "How many buyers contend in each run.",
)
@lock_option()
@click.option(
    "--no-lock", is_flag=True, help="Run only the unlocked side: the oversell demonstration."
)
@click.option(
    "--strategies",
    callback=parse_strategies,
    metavar="LIST",
    help="Compare these strategies instead, e.g. none,per-buyer,process,file; FILE.py:FUNC "
    "is your own buyer (see buy --buy).",
)
@count_option("--trials", 1, 1000, 1, "Run each side K times, seeds --seed, --seed+1, ...")
@click.option(
    "--max-oversold",
    type=Count(0, MAX_COUNT),
    help="Fail (exit 1) if any run of a side under test (a locking strategy, your own "
    "FILE.py:FUNC) oversold more than N; unlocked demonstration sides are not held to it.",
)
@click.option(
    "--expect-oversell",
    is_flag=True,
    help="Fail (exit 1) if a strategy without exclusion oversold in none of its trials.",
)
@click.option(
    "--timeline", "show_timeline", is_flag=True, help="Draw the worst unlocked run at the end."
)
@click.option(
    "--svg",
    type=OutputFile(),
    help="Write a locked run's timeline above the worst unlocked run's, as SVG.",
)
@click.option(
    "--html",
    type=OutputFile(),
    help="The same two timelines, one above the other, as an HTML page.",
)
@sale_options
@workers_options
@junit_option
@click.pass_context
def race(
    ctx: click.Context,
    /,
    buyers: int,
    strategy: Strategy,
    no_lock: bool,
    strategies: list[str] | None,
    trials: int,
    max_oversold: int | None,
    expect_oversell: bool,
    show_timeline: bool,
    json_: bool,
    **opts: Any,
) -> None:
    """Run the same sale with and without a lock, side by side.

    Every side gets the same buyers, stock, delays and seed. Oversell without
    a lock is the expected demonstration; the exit code is 1 only when a side
    under test (a locking strategy, your own FILE.py:FUNC) oversold or broke
    a check, or a --max-oversold / --expect-oversell threshold was missed.

    \b
    Examples:
        tickets race --buyers 50 --tickets 10
        tickets race --no-lock --timeline
        tickets race --strategies none,per-buyer,process,file --trials 3 --json
        tickets race --strategies examples/booking.py:take_ticket --trials 20 -t 10 --write-delay 20
    """
    from ..engine.config import BuyConfig
    from ..engine.race import run_race

    chosen = race_sides(ctx, strategy, no_lock, strategies, opts, show_timeline)
    with translate_errors():
        base = BuyConfig(buyers=buyers, **sale_config(ctx, opts), **worker_fields(opts))
    refuse_missing_key(ctx, base.store)

    def show(result: RaceResult, code: int) -> None:
        from ..render.junit import race_xml

        write_junit(opts["junit_xml"], lambda: race_xml(result, code))
        if (opts["svg"] or opts["html"]) and result.runs:
            export_race(result, opts["svg"], opts["html"])
        if json_:
            from ..render.json_documents import race_dict

            emit_json(race_dict(result), code)
        else:
            show_race(result, show_timeline and bool(result.runs))

    start_junit(opts["junit_xml"], "race")
    result = run_live(
        "" if json_ else "race",
        "buyers",
        lambda live: run_race(
            base,
            chosen,
            trials,
            max_oversold=max_oversold,
            expect_oversell=expect_oversell,
            progress=lambda label, p: live(p, f"race: {label}"),
        ),
        lambda partial, code: show(partial, code) if partial.runs else None,
        "race",
    )
    aborted = next((r.result.aborted for r in result.runs if r.result.aborted), None)
    code = exit_code_for(result.verdict.passed, aborted, unproven=result.verdict.unproven)
    show(result, code)
    exit_with(code)


# Every run of a race restocks: --keep-stock has no place in its help.
for _param in race.params:
    if isinstance(_param, click.Option) and _param.name == "keep_stock":
        _param.hidden = True


def race_sides(
    ctx: click.Context,
    strategy: Strategy,
    no_lock: bool,
    strategies: list[str] | None,
    opts: dict[str, Any],
    show_timeline: bool,
) -> list[str]:
    """The strategies a race runs, from --lock, --no-lock and --strategies
    (and the options a race refuses)."""
    if opts["keep_stock"]:
        raise click.UsageError("--keep-stock does not fit a race: every run restocks to --tickets")
    drawn = show_timeline or opts["svg"] or opts["html"]
    if drawn and opts["history"] == NO_HISTORY:
        raise click.UsageError("timelines draw kept histories: leave out --history none")
    explicit_lock = ctx.get_parameter_source("strategy") is not click.core.ParameterSource.DEFAULT
    if strategies is not None and (no_lock or explicit_lock):
        raise click.UsageError("--strategies names every side; leave out --lock and --no-lock")
    if no_lock and explicit_lock:
        raise click.UsageError("--no-lock runs only the unlocked side; leave out --lock")
    if strategies is not None:
        return strategies
    from ..locking.strategies import NO_LOCK

    unlocked = NO_LOCK.name
    return [unlocked] if no_lock or strategy is NO_LOCK else [strategy.name, unlocked]


def worst_unlocked(result: RaceResult) -> RaceRun:
    """The run of a strategy without exclusion that oversold most (or any run)."""
    unlocked = [r for r in result.runs if not r.excludes]
    pool = unlocked or list(result.runs)
    return max(pool, key=lambda r: (r.result.report.oversold, -r.trial))


def drawn(run: RaceRun) -> Path:
    """The history of a run to draw (timelines refuse --history none first)."""
    assert run.result.history is not None, "a drawn run keeps its history"
    return run.result.history


def export_race(result: RaceResult, svg: str | None, html: str | None) -> None:
    """A locked run's timeline above the worst unlocked run's, on one page:
    the picture that shows what the lock changes."""
    from rich.console import Group
    from rich.text import Text

    from ..check.history import read
    from ..render.timeline import timeline
    from .history_commands import export

    worst = worst_unlocked(result)
    locked = next((r for r in result.runs if r.excludes), None)
    shown = [worst] if locked is None or locked is worst else [locked, worst]
    with translate_errors():
        pictures = [timeline(read(drawn(r)), width=120) for r in shown]
    between = Text("\n" + "─" * 120 + "\n")
    parts: list[RenderableType] = [pictures[0]]
    for picture in pictures[1:]:
        parts += [between, picture]
    export(Group(*parts), 120, "race", svg, html)


def show_race(result: RaceResult, show_timeline: bool) -> None:
    """The race table, with --timeline the worst unlocked run drawn, and
    the verdict last, where the eye ends."""
    from ..render.race_views import race_verdict, race_view

    console = make_console()
    console.print(race_view(result))
    if show_timeline:
        from ..check.history import read
        from ..render.timeline import timeline

        worst = worst_unlocked(result)
        with translate_errors():
            console.print(timeline(read(drawn(worst)), width=picture_width(console)))
    console.print(race_verdict(result))


@click.command("queue")
@count_option(
    "--producers",
    1,
    MAX_WORKER_PRODUCERS,
    3,
    "Producers (the buyers' front doors): a process each up to 64, threads of --workers above.",
)
@click.option(
    "--workers",
    "producer_workers",
    type=Count(0, MAX_WORKERS),
    metavar="W",
    help="Run the producers on W worker processes, a thread each (0: a process "
    "each). Default: a process each up to 64 producers, a worker per core above.",
)
@count_option("--orders", 1, MAX_ORDERS, 20, "Orders each producer submits.")
@count_option(
    "--clerks",
    1,
    MAX_CLERKS,
    2,
    "Clerk processes selling from the queue (one clerk races nobody: NOT PROVEN, exit 5).",
)
@count_option("--queue-size", 1, MAX_QUEUE_SIZE, 10, "Bound of the order queue.")
@click.option(
    "--put-timeout",
    type=Amount(0, 86_400),
    metavar="S",
    help="A producer waits at most S on a full queue, then rejects the order as busy "
    "(0: put_nowait). Default: wait.",
)
@click.option(
    "--get-timeout",
    type=Amount(0, 86_400, min_open=True),
    metavar="S",
    help="A clerk idle for S goes home (queue.Empty). Default: wait for a sentinel.",
)
@click.option(
    "--shutdown",
    type=click.Choice(["sentinel", "join"]),
    default="sentinel",
    show_default=True,
    help="sentinel: one None per clerk; join: JoinableQueue, task_done() and join().",
)
@count_option(
    "--batch",
    1,
    MAX_BATCH,
    1,
    "A clerk sells up to N waiting orders under one lock and one write (group commit).",
)
@lock_option()
@sale_options
@chaos_options
@pause_length_option
@junit_option
@click.pass_context
def queue_command(
    ctx: click.Context,
    /,
    producers: int,
    orders: int,
    clerks: int,
    queue_size: int,
    put_timeout: float | None,
    get_timeout: float | None,
    shutdown: str,
    batch: int,
    strategy: Strategy,
    json_: bool,
    producer_workers: int | None,
    junit_xml: str | None,
    **opts: Any,
) -> None:
    """Sell through an order queue: producers submit, clerks sell.

    Producers put purchase orders into one bounded queue (the arrival gap is
    --search-delay); clerks take them off and sell from the store under
    --lock (the write takes --write-delay). Every order ends sold, sold out,
    rejected busy or unknown; the same checks as `buy` run over the history.
    Only clerks race: with one clerk (whatever its --batch) no two sales
    overlap, and the sale is NOT PROVEN (exit 5).

    \b
    Examples:
        tickets queue --producers 3 --orders 20 --clerks 2 --queue-size 10 --tickets 30
        tickets queue --clerks 2 --lock none --tickets 10  # the queue does not stop the oversell
        tickets queue --put-timeout 0 --queue-size 2 --clerks 2 --tickets 60  # put_nowait: busy
        tickets queue --shutdown join --batch 50 --no-delay
    """
    from ..engine.config import QueueConfig
    from ..engine.queue import run_queue

    if get_timeout is not None and shutdown == "join":
        raise click.UsageError(
            "--get-timeout does not fit --shutdown join: a clerk that goes home leaves the "
            "producers waiting in join() forever"
        )
    with translate_errors():
        config = QueueConfig(
            producers=producers,
            orders=orders,
            clerks=clerks,
            queue_size=queue_size,
            put_timeout=put_timeout,
            get_timeout=get_timeout,
            shutdown=shutdown,
            batch=batch,
            strategy=strategy,
            workers=producer_workers,
            **sale_config(ctx, opts),
        )

    def show(result: RunResult, code: int) -> None:
        from ..render.junit import run_xml

        write_junit(junit_xml, lambda: run_xml(result, code))
        if json_:
            from ..render.json_documents import queue_dict

            emit_json(queue_dict(result), code)
        else:
            from ..render.queue_views import queue_view

            make_console().print(queue_view(result))

    label = f"queue --lock {strategy.name}"
    start_junit(junit_xml, "queue")
    sell_and_exit(label, "orders", lambda live: run_queue(config, live), show, json_)
