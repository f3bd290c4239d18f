"""Option bundles the commands share, and the run config they add up to.

Only click is imported at module level (see :mod:`tickets.cli`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..constants import (
    AUTO_WORKERS_ABOVE,
    DEFAULT_CONCURRENCY,
    DEFAULT_LOCK_TIMEOUT,
    DEFAULT_STALL_TIMEOUT,
    DEFAULT_STRATEGY,
    DEFAULT_TICKETS,
    MAX_CONCURRENCY,
    MAX_COUNT,
    MAX_PROCESS_BUYERS,
    MAX_RETRIES,
    MAX_WORKERS,
    NO_DELAY_CONCURRENCY,
    NO_HISTORY,
    STRATEGY_NAMES,
)
from .params import Amount, Count
from .store_options import StoreContext, db_option

if TYPE_CHECKING:
    from pathlib import Path
    from typing import TypedDict

    from ..engine.chaos import Chaos
    from ..engine.child.plan import Delays
    from ..locking.strategies import Strategy
    from ..stores.spec import StoreSpec

    class ConfigFields(TypedDict, total=False):
        """A SaleConfig's fields, as the shared options give them (see
        :func:`sale_config`; the strategy is ``--lock``'s, given apart)."""

        store: StoreSpec
        tickets: int | None
        seed: int
        delays: Delays
        lock_timeout: float
        stall_timeout: float
        fsync: bool
        start_method: str
        history: Path | None
        keep_history: bool
        lease_ttl: float
        fencing: bool
        retries: int
        chaos: Chaos | None

    class WorkerFields(TypedDict):
        """Buyers on workers: ``--workers`` and ``--concurrency`` (None: the default)."""

        workers: int | None
        concurrency: int | None


#: A command that options are added to: returned as it came.
F = TypeVar("F", bound=Callable[..., object])


def as_path(value: str | None) -> Path | None:
    from pathlib import Path

    return None if value is None else Path(value)


# -- shared options -------------------------------------------------------


SHORT = {"--buyers": "-n", "--tickets": "-t", "--lock": "-l"}


def count_option(flag: str, low: int, high: int, default: int, help: str) -> Callable[[F], F]:
    """A whole-number option within [low, high], with its default shown."""
    names = [SHORT[flag], flag] if flag in SHORT else [flag]
    return click.option(
        *names, type=Count(low, high), default=default, show_default=True, help=help
    )


def amount_option(
    flag: str, kind: click.FloatRange, default: float, help: str, metavar: str | None = None
) -> Callable[[F], F]:
    """A number within ``kind``'s range (seconds, milliseconds, a share), default shown."""
    return click.option(
        flag, type=kind, default=default, show_default=True, metavar=metavar, help=help
    )


def json_option(f: F) -> F:
    return click.option(
        "json_", "--json", is_flag=True, help="Print one JSON document, nothing else."
    )(f)


def lock_timeout_option(help: str) -> Callable[[F], F]:
    kind = Amount(0, 86_400, min_open=True)
    return amount_option("--lock-timeout", kind, DEFAULT_LOCK_TIMEOUT, help, "S")


def sale_options(f: F) -> F:
    """Options every selling command shares."""
    # Not multiprocessing.get_all_start_methods(): importing multiprocessing
    # costs --help ~20 ms; the run config checks availability.
    methods = ["fork", "forkserver", "spawn"]  # POSIX only (see the README)

    options = [
        db_option,
        click.option(
            "-t",
            "--tickets",
            type=Count(0, MAX_COUNT),
            default=None,
            help=f"Restock the store to N tickets before the run. Default: sell from the "
            f"store as it is (a missing store file is created with {DEFAULT_TICKETS}; a "
            "missing Redis key is refused).",
        ),
        click.option(
            "--keep-stock",
            is_flag=True,
            help="Sell from the store as it is, and refuse a missing store (without it, a "
            f"missing store file is created with {DEFAULT_TICKETS}).",
        ),
        click.option(
            "--seed", type=int, default=0, show_default=True, help="Seed of the simulated delays."
        ),
        click.option("--no-delay", is_flag=True, help="No simulated network delays at all."),
        amount_option(
            "--search-delay",
            Amount(0, 10_000),
            20.0,
            "Upper bound of a buyer's search delay (queue: of the gap between a producer's "
            "orders).",
            "MS",
        ),
        amount_option(
            "--write-delay",
            Amount(0, 10_000),
            4.0,
            "Upper bound of the delay between read and write (the race window).",
            "MS",
        ),
        lock_timeout_option(
            "Give up on the lock after S seconds (a buyer: 'busy'; the store: exit 3)."
        ),
        amount_option(
            "--stall-timeout",
            Amount(0, 86_400, min_open=True),
            DEFAULT_STALL_TIMEOUT,
            "Watchdog: stop the run when no process has reported for S seconds (exit 4).",
            "S",
        ),
        click.option(
            "--fsync",
            is_flag=True,
            help="fsync every write (JSON: file and folder; SQLite: synchronous=FULL).",
        ),
        amount_option(
            "--lease-ttl",
            Amount(1, 86_400_000),
            1000.0,
            "With --lock lease: how long a lease lasts before Redis lets it go.",
            "MS",
        ),
        click.option(
            "--retries",
            type=Count(0, MAX_RETRIES),
            default=0,
            show_default=True,
            metavar="N",
            help="PostgreSQL repeatable-read, serializable (any isolation strategy): run a "
            "transaction the database refused as unserializable again, up to N times, as "
            "real code does; counted on each outcome.",
        ),
        click.option(
            "--fencing",
            is_flag=True,
            help="With --lock lease: fencing tokens; the store refuses a holder whose lease "
            "a newer holder has used.",
        ),
        click.option(
            "--start-method",
            type=click.Choice(methods),
            default="fork",
            show_default=True,
            help="How child processes start.",
        ),
        click.option(
            "--history",
            type=click.Path(dir_okay=False, path_type=str),
            help="Write the run's history here (default: history/ beside the store); "
            "none: keep no history (the run is still checked, in memory).",
        ),
        json_option,
    ]
    for option in reversed(options):
        f = option(f)
    return f


def workers_options(f: F) -> F:
    """--workers and --concurrency: buyers multiplexed on worker processes."""
    f = click.option(
        "--concurrency",
        type=Count(1, MAX_CONCURRENCY),
        metavar="N",
        help=f"Buyers each worker runs at once, on threads (default {DEFAULT_CONCURRENCY}; "
        f"{NO_DELAY_CONCURRENCY} with --no-delay). One worker running one buyer at a time "
        "races nobody: NOT PROVEN (exit 5).",
    )(f)
    return click.option(
        "--workers",
        type=Count(0, MAX_WORKERS),
        metavar="W",
        help=f"Run the buyers on W worker processes; 0: no workers, a process per buyer (up "
        f"to {MAX_PROCESS_BUYERS:,}). Default: a process each up to {AUTO_WORKERS_ABOVE:,} "
        f"buyers, a worker per core above.",
    )(f)


def chaos_options(f: F) -> F:
    """Fault injection for buy and queue."""
    options = [
        click.option(
            "--chaos",
            is_flag=True,
            help="Inject faults: kill -9 some buyers (clerks) at seeded points, pause others "
            "with SIGSTOP/SIGCONT.",
        ),
        amount_option(
            "--kill-rate",
            Amount(0, 1),
            0.2,
            "With --chaos: the share of buyers (clerks) killed.",
        ),
        amount_option(
            "--pause-rate",
            Amount(0, 1),
            0.2,
            "With --chaos: the share of processes paused for 5-50 ms.",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def pause_length_option(f: F) -> F:
    """``--pause-length``: buyers (clerks) pause at one named point, holding the lock."""
    return click.option(
        "--pause-length",
        type=Amount(0, 3_600_000, min_open=True),
        metavar="MS",
        help="With --chaos: paused buyers (clerks) stop themselves holding the lock, after "
        "their read and before their write, for MS ms (outlive a --lease-ttl), instead of "
        "SIGSTOP at random moments.",
    )(f)


def chaos_from(ctx: click.Context, opts: dict[str, Any]) -> Chaos | None:
    names = ("kill_rate", "pause_rate", "pause_length")
    explicit = any(
        ctx.get_parameter_source(name) not in (None, click.core.ParameterSource.DEFAULT)
        for name in names
    )
    if explicit and not opts["chaos"]:
        raise click.UsageError("--kill-rate, --pause-rate and --pause-length need --chaos")
    if not opts["chaos"]:
        return None
    from ..engine.chaos import Chaos

    length = opts.get("pause_length")
    return Chaos(
        kill_rate=opts["kill_rate"],
        pause_rate=opts["pause_rate"],
        seed=opts["seed"],
        pause_length=None if length is None else length / 1000,
    )


def parse_strategy(ctx: click.Context, param: click.Parameter, value: str) -> Strategy:
    """``--lock NAME``: the strategy itself (the command line's one look at a name)."""
    from ..locking.strategies import get

    return get(value)


def lock_option(default: str = DEFAULT_STRATEGY) -> Callable[[F], F]:
    return click.option(
        "-l",
        "--lock",
        "strategy",
        type=click.Choice(STRATEGY_NAMES),
        callback=parse_strategy,
        default=default,
        show_default=True,
        help="How a buyer (queue: a clerk) protects its read-modify-write. Any store: none, "
        "per-buyer (the tutorial's bug), process (one multiprocessing.Lock), file (filelock "
        "on the lock file: polls), flock (the kernel's blocking flock on the same file). "
        "SQLite: atomic (UPDATE ... WHERE count > 0 RETURNING), transaction (BEGIN "
        "IMMEDIATE), deferred (BEGIN DEFERRED). Redis: atomic (a Lua script), transaction "
        "(WATCH/MULTI/EXEC, retried), lease (SET NX PX; see --fencing). PostgreSQL: atomic "
        "(one conditional UPDATE), read-committed, repeatable-read, serializable (read then "
        "write in a transaction at that level; see --retries), for-update (SELECT ... FOR "
        "UPDATE), advisory (pg_advisory_xact_lock).",
        metavar="STRATEGY",
    )


def stock_to_restock(
    ctx: click.Context, tickets: int | None, keep_stock: bool, spec: StoreSpec
) -> int | None:
    """What to restock to before the run: only what --tickets says; a race
    restocks every trial (its default 10). A missing store file is created
    with the default stock; a missing key on a server is not (a typo in
    ``?key=`` would make a stock of its own on a server others share): the
    run refuses it, and a race checks it once its options are known to be
    good (:func:`refuse_missing_key`). None: sell from the store as it is."""
    import os

    if keep_stock and tickets is not None:
        raise click.UsageError(
            "--tickets and --keep-stock exclude each other: restock or keep the stock"
        )
    if tickets is not None:
        return tickets
    if ctx.command.name == "race":
        return DEFAULT_TICKETS
    if keep_stock or spec.path is None:  # the store must be there
        return None
    return None if os.path.lexists(spec.path) else DEFAULT_TICKETS


def refuse_missing_key(ctx: click.Context, spec: StoreSpec) -> None:
    """A race on a server key that is not there, restocking to the default
    10 (no --tickets): refused, exit 3, as a run with no --tickets is."""
    if spec.path is not None or ctx.params.get("tickets") is not None:
        return
    from ..stores import open_store
    from ..stores.base import StoreError
    from .errors import translate_errors

    with translate_errors():
        store = open_store(spec)
        try:
            if not store.exists():
                missing = "no such key" if spec.kind == "redis" else "no such table or row"
                raise StoreError(spec.label, missing, MISSING_KEY_FIX)
        finally:
            store.close()


#: What a run on a missing server key says to do (a typo in ``?key=``?).
MISSING_KEY_FIX = "create it with `tickets --db URL init -t N`, or give -t N (or is ?key= a typo?)"


def delays_from(no_delay: bool, search_delay: float, write_delay: float) -> Delays:
    from ..engine.child.plan import Delays

    return Delays.none() if no_delay else Delays(search_delay / 1000, write_delay / 1000)


def sale_config(ctx: click.Context, opts: dict[str, Any], on_store: bool = True) -> ConfigFields:
    """The shared SaleConfig fields, from the options of sale_options (and
    chaos_options); ``on_store`` False: the stock is kept elsewhere (an
    --exec sale), and the store is not looked at."""

    obj = ctx.find_object(StoreContext)
    assert obj is not None
    if opts["history"] == "":
        raise click.BadParameter("give a file path, not an empty one", param_hint="--history")
    spec = obj.spec
    if ctx.get_parameter_source("lease_ttl") is not click.core.ParameterSource.DEFAULT and (
        not any(s.leases for s in sale_strategies(ctx))
    ):
        raise click.UsageError("--lease-ttl is for --lock lease (a Redis store)")
    if opts.get("retries") and not any(s.retried for s in sale_strategies(ctx)):
        raise click.UsageError(
            "--retries is for a transaction the database may refuse: PostgreSQL's "
            "repeatable-read, serializable (or another isolation strategy)"
        )
    fields: ConfigFields = {
        "store": spec,
        "tickets": stock_to_restock(ctx, opts["tickets"], opts["keep_stock"], spec)
        if on_store
        else None,
        "seed": opts["seed"],
        "delays": delays_from(opts["no_delay"], opts["search_delay"], opts["write_delay"]),
        "lock_timeout": opts["lock_timeout"],
        "stall_timeout": opts["stall_timeout"],
        "fsync": opts["fsync"],
        "start_method": opts["start_method"],
        "history": None if opts["history"] == NO_HISTORY else as_path(opts["history"]),
        "keep_history": opts["history"] != NO_HISTORY,
        "lease_ttl": opts["lease_ttl"] / 1000,
        "fencing": opts["fencing"],
        "retries": opts["retries"],
    }
    if "chaos" in opts:
        fields["chaos"] = chaos_from(ctx, opts)
    outputs = [ctx.params.get(name) for name in ("junit_xml", "svg", "html")]
    refuse_clobbering(outputs, sale_files(spec, opts["history"]))
    return fields


def sale_files(spec: StoreSpec, history: str | None) -> list[str]:
    """The files a sale writes besides its outputs: the store and its side
    files, its lock and claim, its history."""
    files = [spec.lock_path, spec.sale_path]
    if spec.path is not None:
        files += [spec.path + suffix for suffix in ("", "-wal", "-shm", "-journal")]
    if history and history != NO_HISTORY:
        files += [history, history + ".log"]
    return files


def refuse_clobbering(outputs: list[object], files: list[str]) -> None:
    """An output flag (--junit-xml, --svg, --html) naming a file the run
    itself writes (the store, its lock, the history) would replace it with
    a report: a usage error before anything runs."""
    import os

    mine = {os.path.realpath(f) for f in files}
    for output in outputs:
        if isinstance(output, str) and os.path.realpath(output) in mine:
            raise click.UsageError(
                f"{output} is a file this run writes (its store, lock or history): give the "
                "report another path"
            )


def worker_fields(opts: dict[str, Any]) -> WorkerFields:
    """The BuyConfig fields of ``workers_options``."""
    return {"workers": opts.pop("workers"), "concurrency": opts.pop("concurrency")}


def sale_strategies(ctx: click.Context) -> list[Strategy]:
    """The strategies the command's sales run under: ``--lock``'s, and a
    race's ``--strategies`` (the user's own buyers among them have none of
    their own)."""
    from ..engine.race import is_user_code
    from ..locking.strategies import get

    named = [get(side) for side in ctx.params.get("strategies") or () if not is_user_code(side)]
    lock = ctx.params.get("strategy")
    return named if lock is None else [lock, *named]


def parse_strategies(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> list[str] | None:
    """``--strategies none,file,my_shop/booking.py:take_ticket``: known
    strategies, and the user's own buyers (checked before anything starts)."""
    if value is None:
        return None
    from ..engine.race import is_user_code

    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in STRATEGY_NAMES and not is_user_code(n)]
    if unknown or not names:
        raise click.BadParameter(
            f"{unknown[0] if unknown else value!r} is not a strategy; "
            f"use a comma-separated list of {', '.join(STRATEGY_NAMES)} or FILE.py:FUNC"
        )
    if len(set(names)) != len(names):
        raise click.BadParameter("a strategy is named twice")
    from ..engine.buyer_check import check
    from ..engine.child.user_buyer import BuyerCodeError

    for name in names:
        if is_user_code(name):
            try:
                check(name)
            except BuyerCodeError as exc:
                raise click.BadParameter(str(exc)) from None
    return names
