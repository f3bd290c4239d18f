"""The command line: parse, delegate to the core, render, translate errors to exit codes.

Only click is imported at module level; the core and rich load inside the
commands, so ``tickets --help`` is as quick as click itself and forked
buyers never pay for a terminal library.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from .cli_support import (
    StoreContext,
    UnusableFile,
    chaos_options,
    emit_json,
    exit_code_for,
    finish,
    json_option,
    lock_option,
    lock_timeout_option,
    make_console,
    run_live,
    sale_config,
    sale_options,
    translate_errors,
)
from .limits import (
    DEFAULT_BUYERS,
    DEFAULT_STORE,
    DEFAULT_TICKETS,
    EXIT_CHECK_FAILED,
    EXIT_CODES_HELP,
    MAX_BATCH,
    MAX_BUYERS,
    MAX_CLERKS,
    MAX_COUNT,
    MAX_ORDERS,
    MAX_PRODUCERS,
    MAX_QUEUE_SIZE,
    STORE_ENV,
    STRATEGY_NAMES,
)

if TYPE_CHECKING:
    pass

F = TypeVar("F", bound=Callable[..., Any])


pass_store = click.make_pass_decorator(StoreContext)


@click.group(epilog=EXIT_CODES_HELP)
@click.version_option(package_name="tickets")
@click.option(
    "--db",
    envvar=STORE_ENV,
    default=DEFAULT_STORE,
    show_default=True,
    type=click.Path(dir_okay=True, path_type=str),
    help=f'The ticket store, a JSON file {{"count": N}} (also ${STORE_ENV}).',
)
@click.pass_context
def cli(ctx: click.Context, db: str) -> None:
    """A flash-sale simulator and oversell checker.

    Buyer processes search the remaining tickets, then lock, read, decrement
    and write one JSON ticket file. Every run is recorded as a history and
    checked: no seat sold twice, nothing sold that the store did not lose.
    """
    ctx.obj = StoreContext(db)


# -- commands -------------------------------------------------------------


@cli.command()
@click.option(
    "--tickets",
    type=click.IntRange(0, MAX_COUNT),
    default=DEFAULT_TICKETS,
    show_default=True,
    help="How many tickets the store holds.",
)
@lock_timeout_option("Give up after S seconds when another process holds the store's lock.")
@json_option
@pass_store
def init(obj: StoreContext, tickets: int, lock_timeout: float, json_: bool) -> None:
    """Create or reset the store with N tickets.

    \b
    Example:
        tickets --db sale.json init --tickets 100
    """
    from . import store
    from .strategies import check_lock_path, restock

    with translate_errors():
        if not obj.db.parent.exists():
            obj.db.parent.mkdir(parents=True)
        store.check_writable(obj.db)
        check_lock_path(obj.db)
        restock(obj.db, tickets, lock_timeout)
    if json_:
        emit_json({"count": tickets, "store": str(obj.db)})
    else:
        click.echo(f"{obj.db}: {tickets} tickets")


@cli.command()
@json_option
@pass_store
def status(obj: StoreContext, json_: bool) -> None:
    """Show how many tickets are left.

    \b
    Example:
        tickets status --json
    """
    from . import store

    with translate_errors():
        count = store.load(obj.db)
    if json_:
        emit_json({"count": count})
    else:
        click.echo(f"{obj.db}: {count} tickets left")


@cli.command()
@click.option(
    "--buyers",
    type=click.IntRange(1, MAX_BUYERS),
    default=DEFAULT_BUYERS,
    show_default=True,
    help="How many buyer processes contend for the stock.",
)
@lock_option()
@sale_options
@chaos_options
@click.option("--all", "show_all", is_flag=True, help="Show every buyer in the table.")
@click.pass_context
def buy(
    ctx: click.Context,
    /,
    buyers: int,
    strategy: str,
    json_: bool,
    show_all: bool,
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
        tickets buy --buyers 50 --lock none       # watch it oversell
        tickets buy --buyers 1000 --no-delay --json
        tickets buy --chaos --kill-rate 0.3      # kill -9 and pause buyers
    """
    from .documents import run_dict
    from .runner import RunConfig, run_buy

    config = RunConfig(buyers=buyers, strategy=strategy, **sale_config(ctx, opts))
    live_label = "" if json_ else f"buy --lock {strategy}"
    result = run_live(live_label, "buyers", lambda live: run_buy(config, progress=live))
    if json_:
        emit_json(run_dict(result))
    else:
        from .render import run_view

        make_console().print(run_view(result, None) if show_all else run_view(result))
    finish(exit_code_for(result.passed, result.aborted))


def parse_strategies(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> list[str] | None:
    if value is None:
        return None
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in STRATEGY_NAMES]
    if unknown or not names:
        raise click.BadParameter(
            f"{unknown[0] if unknown else value!r} is not a strategy; "
            f"use a comma-separated list of {', '.join(STRATEGY_NAMES)}"
        )
    if len(set(names)) != len(names):
        raise click.BadParameter("a strategy is named twice")
    return names


@cli.command()
@click.option(
    "--buyers",
    type=click.IntRange(1, MAX_BUYERS),
    default=DEFAULT_BUYERS,
    show_default=True,
    help="How many buyer processes contend in each run.",
)
@lock_option()
@click.option(
    "--no-lock", is_flag=True, help="Run only the unlocked side: the oversell demonstration."
)
@click.option(
    "--strategies",
    callback=parse_strategies,
    metavar="LIST",
    help="Compare these strategies instead, e.g. none,per-buyer,process,file.",
)
@click.option(
    "--trials",
    type=click.IntRange(1, 1000),
    default=1,
    show_default=True,
    help="Run each side K times, seeds --seed, --seed+1, ...",
)
@click.option(
    "--max-oversold",
    type=click.IntRange(0, MAX_COUNT),
    help="Fail (exit 1) if any run of any strategy oversold more than N.",
)
@click.option(
    "--expect-oversell",
    is_flag=True,
    help="Fail (exit 1) if a strategy without exclusion oversold in none of its trials.",
)
@click.option(
    "--timeline", "show_timeline", is_flag=True, help="Draw the worst unlocked run at the end."
)
@sale_options
@click.pass_context
def race(
    ctx: click.Context,
    /,
    buyers: int,
    strategy: str,
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
    a lock is the expected demonstration; the exit code is 1 only when a
    locking strategy (process, file) oversold or broke a check, or a
    --max-oversold / --expect-oversell threshold was missed.

    \b
    Examples:
        tickets race --buyers 50 --tickets 10
        tickets race --no-lock --timeline
        tickets race --strategies none,per-buyer,process,file --trials 20 --json
    """
    from .race import run_race
    from .runner import RunConfig

    explicit_lock = ctx.get_parameter_source("strategy") is not click.core.ParameterSource.DEFAULT
    if opts["keep_stock"]:
        raise click.UsageError("--keep-stock does not fit a race: every run restocks to --tickets")
    if strategies is not None and (no_lock or explicit_lock):
        raise click.UsageError("--strategies names every side; leave out --lock and --no-lock")
    if no_lock and explicit_lock:
        raise click.UsageError("--no-lock runs only the unlocked side; leave out --lock")
    if strategies is None:
        strategies = ["none"] if no_lock or strategy == "none" else [strategy, "none"]
    base = RunConfig(buyers=buyers, **sale_config(ctx, opts))
    chosen = strategies
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
    )
    if json_:
        from .documents import race_dict

        emit_json(race_dict(result))
    else:
        from .render import race_view

        console = make_console()
        console.print(race_view(result))
        if show_timeline:
            from .history import read
            from .timeline import timeline

            unlocked = [r for r in result.runs if r.strategy in ("none", "per-buyer")]
            pool = unlocked or list(result.runs)
            worst = max(pool, key=lambda r: (r.result.report.oversold, -r.trial))
            with translate_errors():
                console.print(timeline(read(worst.result.history), width=console.width))
    aborted = next((r.result.aborted for r in result.runs if r.result.aborted), None)
    finish(exit_code_for(result.verdict.passed, aborted))


@cli.command("timeline")
@click.argument("history", type=click.Path(path_type=str))
@click.option(
    "--svg", type=click.Path(dir_okay=False, path_type=str), help="Also write the picture as SVG."
)
@click.option(
    "--html", type=click.Path(dir_okay=False, path_type=str), help="Also write it as HTML."
)
@click.option(
    "--width",
    type=click.IntRange(60, 1000),
    help="Columns to draw in (default: the terminal's, 120 for files).",
)
@click.option(
    "--all", "show_all", is_flag=True, help="Draw every buyer (default: at most 60 rows)."
)
def timeline_command(
    history: str, svg: str | None, html: str | None, width: int | None, show_all: bool
) -> None:
    """Draw a saved history on a time axis, one row per buyer.

    Each buyer's search, wait for the lock and read-modify-write are bars on
    one shared axis; seats sold twice are red, with the buyers that share
    them, so the overlapping read-modify-writes that lost updates show.

    \b
    Examples:
        tickets timeline history/tickets-...-buy-none-123.jsonl
        tickets timeline run.jsonl --svg race.svg --html race.html
    """
    from rich.console import Console

    from .history import read
    from .timeline import MAX_ROWS, timeline

    with translate_errors():
        loaded = read(history)
    console = make_console(width=width)
    limit = None if show_all else MAX_ROWS
    console.print(timeline(loaded, width=width or console.width, limit=limit))
    if svg is None and html is None:
        return
    import io

    # rich records what it prints and exports the recording (one draw, both files).
    recorder = Console(
        record=True, width=width or 120, file=io.StringIO(), color_system="truecolor"
    )
    recorder.print(timeline(loaded, width=width or 120, limit=limit))
    for path, kind in ((svg, "svg"), (html, "html")):
        if path is None:
            continue
        try:
            if kind == "svg":
                title = f"tickets timeline: {os.path.basename(history)}"
                recorder.save_svg(path, title=title, clear=False)
            else:
                recorder.save_html(path, clear=False)
        except OSError as exc:
            raise UnusableFile(
                f"{path}: cannot be written ({exc.strerror}); choose another path"
            ) from None
        click.echo(f"wrote {path}", err=True)


@cli.command("queue")
@click.option(
    "--producers",
    type=click.IntRange(1, MAX_PRODUCERS),
    default=3,
    show_default=True,
    help="Producer processes (the buyers' front doors).",
)
@click.option(
    "--orders",
    type=click.IntRange(1, MAX_ORDERS),
    default=20,
    show_default=True,
    help="Orders each producer submits.",
)
@click.option(
    "--clerks",
    type=click.IntRange(1, MAX_CLERKS),
    default=2,
    show_default=True,
    help="Clerk processes selling from the queue.",
)
@click.option(
    "--queue-size",
    type=click.IntRange(1, MAX_QUEUE_SIZE),
    default=10,
    show_default=True,
    help="Bound of the order queue.",
)
@click.option(
    "--put-timeout",
    type=click.FloatRange(0, 86_400),
    metavar="S",
    help="A producer waits at most S on a full queue, then rejects the order as busy "
    "(0: put_nowait). Default: wait.",
)
@click.option(
    "--get-timeout",
    type=click.FloatRange(0, 86_400, min_open=True),
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
@click.option(
    "--batch",
    type=click.IntRange(1, MAX_BATCH),
    default=1,
    show_default=True,
    help="A clerk sells up to N waiting orders under one lock and one write (group commit).",
)
@lock_option()
@sale_options
@chaos_options
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
    strategy: str,
    json_: bool,
    **opts: Any,
) -> None:
    """Sell through an order queue: producers submit, clerks sell.

    Producers put purchase orders into one bounded queue (the arrival gap is
    --search-delay); clerks take them off and sell from the store under
    --lock (the write takes --write-delay). Every order ends sold, sold out,
    rejected busy or unknown; the same checks as `buy` run over the history.

    \b
    Examples:
        tickets queue --producers 3 --orders 20 --clerks 2 --queue-size 10 --tickets 30
        tickets queue --clerks 2 --lock none          # the queue does not stop the oversell
        tickets queue --put-timeout 0 --queue-size 2  # put_nowait: rejected busy
        tickets queue --shutdown join --batch 50 --no-delay
    """
    from .queue_run import QueueConfig, run_queue

    if get_timeout is not None and shutdown == "join":
        raise click.UsageError(
            "--get-timeout does not fit --shutdown join: a clerk that goes home leaves the "
            "producers waiting in join() forever"
        )
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
        **sale_config(ctx, opts),
    )
    live_label = "" if json_ else f"queue --lock {strategy}"
    result = run_live(live_label, "orders", lambda live: run_queue(config, progress=live))
    if json_:
        from .documents import queue_dict

        emit_json(queue_dict(result))
    else:
        from .render import queue_view

        make_console().print(queue_view(result))
    finish(exit_code_for(result.passed, result.aborted))


@cli.command()
@click.argument("histories", nargs=-1, required=True, type=click.Path(path_type=str))
@json_option
def check(histories: tuple[str, ...], json_: bool) -> None:
    """Check saved histories against the invariants.

    Several histories of --keep-stock runs on one store are checked as one
    sale: a seat sold by two runs counts as sold twice.

    \b
    Example:
        tickets check history/*.jsonl --json
    """
    from .checks import check_histories
    from .documents import report_dict
    from .history import read

    with translate_errors():
        loaded = [read(p) for p in histories]
        report = check_histories(loaded)
    if json_:
        emit_json({**report_dict(report), "histories": list(histories)})
    else:
        from .render import check_view

        make_console().print(check_view(report, list(histories)))
    finish(0 if report.passed else EXIT_CHECK_FAILED)


def main() -> None:
    # A closed stdout (tickets ... | head) is not an error worth a traceback.
    try:
        cli(prog_name="tickets")
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(1)
