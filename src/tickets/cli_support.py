"""What the commands share: errors as exit codes, consoles, option bundles,
the sale configuration they build, and the live progress line.

Only click is imported at module level (see :mod:`tickets.cli`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import click

from .limits import (
    DEFAULT_LOCK_TIMEOUT,
    DEFAULT_STALL_TIMEOUT,
    DEFAULT_STRATEGY,
    DEFAULT_TICKETS,
    EXIT_ABORTED,
    EXIT_CHECK_FAILED,
    EXIT_INTERRUPTED,
    EXIT_STORE,
    MAX_COUNT,
    STRATEGY_NAMES,
)

if TYPE_CHECKING:
    from pathlib import Path

    from rich.console import Console

F = TypeVar("F", bound=Callable[..., Any])


class UnusableFile(click.ClickException):
    """The store, its lock or a history file cannot be used (exit 3)."""

    exit_code = EXIT_STORE


@contextmanager
def translate_errors() -> Iterator[None]:
    """Core exceptions -> one-line click errors with the documented exit code."""
    from .history import HistoryError
    from .runner import RunError
    from .store import StoreError

    try:
        yield
    except (StoreError, HistoryError) as exc:
        raise UnusableFile(str(exc)) from None
    except RunError as exc:
        raise click.UsageError(str(exc)) from None


def make_console(stderr: bool = False, width: int | None = None) -> Console:
    from rich.console import Console

    # Plain text when the stream is not a terminal (rich's own rule) or when
    # NO_COLOR is set: rich would drop only the colours and keep bold.
    plain = bool(os.environ.get("NO_COLOR"))
    return Console(
        stderr=stderr,
        highlight=False,
        soft_wrap=False,
        width=width,
        color_system=None if plain else "auto",
    )


def emit_json(doc: Any) -> None:
    import json

    click.echo(json.dumps(doc, indent=2))


def as_path(value: str | None) -> Path | None:
    # pathlib is imported here, not at the top: it costs `tickets --help` ~8 ms.
    from pathlib import Path

    return None if value is None else Path(value)


class StoreContext:
    def __init__(self, db: str) -> None:
        from pathlib import Path

        self.db = Path(db)


# -- shared options -------------------------------------------------------


def json_option(f: F) -> F:
    return click.option(
        "json_", "--json", is_flag=True, help="Print one JSON document, nothing else."
    )(f)


def lock_timeout_option(help: str) -> Callable[[F], F]:
    return click.option(
        "--lock-timeout",
        type=click.FloatRange(0, 86_400, min_open=True),
        default=DEFAULT_LOCK_TIMEOUT,
        show_default=True,
        metavar="S",
        help=help,
    )


def sale_options(f: F) -> F:
    """Options every selling command shares."""
    # Not multiprocessing.get_all_start_methods(): importing multiprocessing
    # costs --help ~20 ms; the runner checks availability.
    methods = ["spawn"] if sys.platform == "win32" else ["fork", "forkserver", "spawn"]
    options = [
        click.option(
            "--tickets",
            type=click.IntRange(0, MAX_COUNT),
            default=DEFAULT_TICKETS,
            show_default=True,
            help="Restock the store to this many tickets before the run.",
        ),
        click.option(
            "--keep-stock",
            is_flag=True,
            help="Sell from the store as it is (share one sale across runs).",
        ),
        click.option(
            "--seed", type=int, default=0, show_default=True, help="Seed of the simulated delays."
        ),
        click.option("--no-delay", is_flag=True, help="No simulated network delays at all."),
        click.option(
            "--search-delay",
            type=click.FloatRange(0, 10_000),
            default=20.0,
            show_default=True,
            metavar="MS",
            help="Upper bound of a buyer's search delay.",
        ),
        click.option(
            "--write-delay",
            type=click.FloatRange(0, 10_000),
            default=4.0,
            show_default=True,
            metavar="MS",
            help="Upper bound of the delay between read and write (the race window).",
        ),
        lock_timeout_option(
            "Give up on the lock after S seconds (a buyer: 'busy'; the store: exit 3)."
        ),
        click.option(
            "--stall-timeout",
            type=click.FloatRange(0, 86_400, min_open=True),
            default=DEFAULT_STALL_TIMEOUT,
            show_default=True,
            metavar="S",
            help="Watchdog: stop the run when no process has reported for S seconds (exit 4).",
        ),
        click.option("--fsync", is_flag=True, help="fsync every write (file and folder)."),
        click.option(
            "--start-method",
            type=click.Choice(methods),
            default="fork" if "fork" in methods else methods[0],
            show_default=True,
            help="How child processes start.",
        ),
        click.option(
            "--history",
            type=click.Path(dir_okay=False, path_type=str),
            help="Write the run's history here (default: history/ beside the store).",
        ),
        json_option,
    ]
    for option in reversed(options):
        f = option(f)
    return f


def chaos_options(f: F) -> F:
    """Fault injection for buy and queue."""
    options = [
        click.option(
            "--chaos",
            is_flag=True,
            help="Inject faults: kill -9 some buyers (clerks) at seeded points, pause others "
            "with SIGSTOP/SIGCONT.",
        ),
        click.option(
            "--kill-rate",
            type=click.FloatRange(0, 1),
            default=0.2,
            show_default=True,
            help="With --chaos: the share of buyers (clerks) killed.",
        ),
        click.option(
            "--pause-rate",
            type=click.FloatRange(0, 1),
            default=0.2,
            show_default=True,
            help="With --chaos: the share of processes paused for 5-50 ms.",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def chaos_from(
    ctx: click.Context, chaos: bool, kill_rate: float, pause_rate: float, seed: int
) -> Any:
    explicit = any(
        ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT
        for name in ("kill_rate", "pause_rate")
    )
    if explicit and not chaos:
        raise click.UsageError("--kill-rate and --pause-rate need --chaos")
    if not chaos:
        return None
    from .chaos import Chaos

    return Chaos(kill_rate=kill_rate, pause_rate=pause_rate, seed=seed)


def lock_option(default: str = DEFAULT_STRATEGY) -> Callable[[F], F]:
    return click.option(
        "--lock",
        "strategy",
        type=click.Choice(STRATEGY_NAMES),
        default=default,
        show_default=True,
        help="How a buyer protects its read-modify-write: none, per-buyer (the tutorial's bug), "
        "process (one multiprocessing.Lock), file (flock on <store>.lock).",
    )


def stock_to_restock(ctx: click.Context, tickets: int, keep_stock: bool) -> int | None:
    explicit = ctx.get_parameter_source("tickets") is not click.core.ParameterSource.DEFAULT
    if keep_stock and explicit:
        raise click.UsageError(
            "--tickets and --keep-stock exclude each other: restock or keep the stock"
        )
    return None if keep_stock else tickets


def delays_from(no_delay: bool, search_delay: float, write_delay: float) -> Any:
    from .buyer import Delays

    return Delays.none() if no_delay else Delays(search_delay / 1000, write_delay / 1000)


def sale_config(ctx: click.Context, opts: dict[str, Any]) -> dict[str, Any]:
    """The shared SaleConfig fields, from the options of sale_options (and chaos_options)."""
    obj = ctx.find_object(StoreContext)
    assert obj is not None
    fields = {
        "store": obj.db,
        "tickets": stock_to_restock(ctx, opts["tickets"], opts["keep_stock"]),
        "seed": opts["seed"],
        "delays": delays_from(opts["no_delay"], opts["search_delay"], opts["write_delay"]),
        "lock_timeout": opts["lock_timeout"],
        "stall_timeout": opts["stall_timeout"],
        "fsync": opts["fsync"],
        "start_method": opts["start_method"],
        "history": as_path(opts["history"]),
    }
    if "chaos" in opts:
        fields["chaos"] = chaos_from(
            ctx, opts["chaos"], opts["kill_rate"], opts["pause_rate"], opts["seed"]
        )
    return fields


def run_live(label: str, what: str, run: Callable[[LiveProgress], Any]) -> Any:
    """Run with a live line on a terminal; Ctrl-C and core errors as exit codes."""
    live = LiveProgress(True, label)
    try:
        with translate_errors():
            return run(live)
    except KeyboardInterrupt:
        live.stop()
        click.echo(f"interrupted; the history records the {what} stopped as unknown", err=True)
        sys.exit(EXIT_INTERRUPTED)
    finally:
        live.stop()


class LiveProgress:
    """A live line on a terminal while a run goes on; nothing when piped or with --json
    (an empty label)."""

    def __init__(self, enabled: bool, label: str) -> None:
        self.enabled = enabled and bool(label) and sys.stdout.isatty()
        self.label = label
        self._live: Any = None

    def __call__(self, p: Any, label: str | None = None) -> None:
        if not self.enabled:
            return
        from rich.live import Live
        from rich.text import Text

        if p.noun == "order":
            line = f"{p.submitted}/{p.total} orders submitted, {p.done} done"
            if p.queue_depth is not None:
                line += f", queue depth {p.queue_depth}"
        else:
            line = f"{p.done}/{p.total} buyers done"
        text = Text(
            f"{label or self.label}: {line}, {p.sold} sold, {p.double_sold} oversold so far"
        )
        if self._live is None:
            # Started only now, after every child is forked, and without a
            # refresh thread: the parent never forks with threads running.
            self._live = Live(text, auto_refresh=False, transient=True, console=make_console())
            self._live.start()
        self._live.update(text, refresh=True)

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


def finish(code: int) -> None:
    if code:
        sys.exit(code)


def exit_code_for(passed: bool, aborted: str | None) -> int:
    if aborted:
        return EXIT_ABORTED
    return 0 if passed else EXIT_CHECK_FAILED
