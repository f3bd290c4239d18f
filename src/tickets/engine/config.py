"""What a run is asked to do: frozen configs that validate themselves.

Every config checks its fields when it is made (``__post_init__``) and
raises :class:`ConfigError` with a one-line message; a config that exists is
a valid one. ``dataclasses.replace`` (the race makes one config per side and
trial) checks again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..constants import (
    AUTO_WORKERS_ABOVE,
    DEFAULT_CONCURRENCY,
    DEFAULT_EXEC_TIMEOUT,
    DEFAULT_LEASE_TTL,
    DEFAULT_LOCK_TIMEOUT,
    DEFAULT_SOLD_OUT_EXIT,
    DEFAULT_STALL_TIMEOUT,
    DEFAULT_STRATEGY,
    DEFAULT_TICKETS,
    MAX_BATCH,
    MAX_BUYERS,
    MAX_CLERKS,
    MAX_CONCURRENCY,
    MAX_COUNT,
    MAX_HOSTS,
    MAX_ORDERS,
    MAX_PROCESS_BUYERS,
    MAX_PRODUCERS,
    MAX_QUEUE_SIZE,
    MAX_RETRIES,
    MAX_WORKER_PRODUCERS,
    MAX_WORKERS,
    NO_DELAY_CONCURRENCY,
    STOCK_SOURCES,
    STRATEGY_NAMES,
    UNREAD_STOCK,
)
from ..errors import ConfigError as ConfigError  # what a config raises
from ..locking.strategies import NO_LOCK, Strategy, get, strategies_for
from ..stores.spec import StoreSpec
from .child.plan import BuyerPlan, Delays

if TYPE_CHECKING:
    from .chaos import Chaos

SHUTDOWNS = ("sentinel", "join")
#: The longest any timeout may be: a day.
MAX_WAIT_S = 86_400


def default_start_method() -> str:
    # fork is by far the cheapest start (~1.5 ms against ~30 ms for spawn) and
    # the parent has no threads when it forks; elsewhere use the platform's.
    import multiprocessing

    methods = multiprocessing.get_all_start_methods()
    return "fork" if "fork" in methods else methods[0]


def _in_range(name: str, value: int, low: int, high: int) -> None:
    if type(value) is not int:  # a library caller's "3" or 3.0 or True
        raise ConfigError(f"{name} must be a whole number, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"{name} must be from {low} to {high:,}, got {value}")


def _timeout(name: str, value: float | None, *, zero_ok: bool = False) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name} must be a number of seconds, got {value!r}")
    if not (0 <= value if zero_ok else 0 < value) or not value <= MAX_WAIT_S:
        allowed = "from 0 to a day" if zero_ok else "more than 0 and at most a day"
        raise ConfigError(f"{name} must be {allowed}, got {value}")


def default_workers() -> int:
    """One worker per core the run may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True, kw_only=True)
class SaleConfig:
    """What every run shares, whichever mode sells."""

    #: where the stock is (a path is taken as a JSON file, or a URL: see tickets.stores.spec)
    store: StoreSpec
    #: how buyers protect their read-modify-write (a name is taken as the strategy's)
    strategy: Strategy = get(DEFAULT_STRATEGY)
    #: restock to this many tickets before the run; None keeps the stock as it is
    tickets: int | None = DEFAULT_TICKETS
    seed: int = 0
    delays: Delays = field(default_factory=Delays)
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    fsync: bool = False
    start_method: str = field(default_factory=default_start_method)
    history: Path | None = None
    #: False (``--history none``): no history is kept; the run is checked in memory
    keep_history: bool = True
    stall_timeout: float = DEFAULT_STALL_TIMEOUT
    chaos: Chaos | None = None
    mode: str = "buy"
    #: a Redis lease's time to live, in seconds (the ``lease`` strategy)
    lease_ttl: float = DEFAULT_LEASE_TTL
    #: the ``lease`` strategy's holders read and write through fencing tokens
    fencing: bool = False
    #: how often a buyer runs a transaction again that the database refused
    #: as unserializable (PostgreSQL's isolation strategies: ``--retries``;
    #: a race's other sides have nothing to retry)
    retries: int = 0

    def _check_kinds(self) -> None:
        """What a library caller may hand in wrong, refused in words."""
        if type(self.seed) is not int:
            raise ConfigError(f"seed must be a whole number, got {self.seed!r}")
        if not isinstance(self.delays, Delays):
            raise ConfigError(f"delays must be a Delays, got {self.delays!r}")
        for part, seconds in (("search", self.delays.search), ("write", self.delays.write)):
            if isinstance(seconds, bool) or not isinstance(seconds, int | float):
                raise ConfigError(f"the {part} delay must be a number of seconds, got {seconds!r}")
            if not 0 <= seconds <= MAX_WAIT_S:  # NaN fails both
                raise ConfigError(f"the {part} delay must be from 0 to a day, got {seconds!r}")
        for name in ("fsync", "keep_history", "fencing"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be True or False, got {getattr(self, name)!r}")
        for name, what in (("buy", "FILE.py:FUNC or MODULE:FUNC"), ("command", "a shell command")):
            given = getattr(self, name, None)
            if given is not None and not isinstance(given, str):
                raise ConfigError(f"{name} must be text, {what}: got {given!r}")
        if self.history is not None and not isinstance(self.history, str | os.PathLike):
            raise ConfigError(f"history must be a path, got {self.history!r}")
        if self.history is not None and not isinstance(self.history, Path):
            object.__setattr__(self, "history", Path(self.history))

    def __post_init__(self) -> None:
        import multiprocessing

        from ..stores.spec import BadStoreURL, parse_db

        if not isinstance(self.store, StoreSpec | str | os.PathLike):
            raise ConfigError(
                f"store must be a path, a store URL or a StoreSpec, got {self.store!r}"
            )
        if not isinstance(self.store, StoreSpec):  # a path, as the library's callers give it
            try:
                object.__setattr__(self, "store", parse_db(str(self.store)))
            except BadStoreURL as exc:
                raise ConfigError(str(exc)) from None
        if not isinstance(self.strategy, Strategy):  # a name, as the library's callers give it
            try:
                object.__setattr__(self, "strategy", get(str(self.strategy)))
            except ValueError:
                names = ", ".join(STRATEGY_NAMES)
                raise ConfigError(
                    f"unknown strategy {self.strategy!r}; choose from {names}"
                ) from None
        self._check_kinds()
        usable = strategies_for(self.store.kind)
        if self.strategy not in usable:
            raise ConfigError(
                f"--lock {self.strategy.name} does not apply to a {self.store.kind} store; "
                f"it takes {', '.join(s.name for s in usable)}"
            )
        if self.fencing and not self.strategy.leases:
            raise ConfigError("--fencing is for --lock lease (a Redis store)")
        _in_range("retries", self.retries, 0, MAX_RETRIES)
        if not 0.001 <= self.lease_ttl <= MAX_WAIT_S:
            raise ConfigError(f"lease ttl must be from 1 ms to a day, got {self.lease_ttl}")
        if self.tickets is not None:
            _in_range("tickets", self.tickets, 0, MAX_COUNT)
        if self.start_method not in multiprocessing.get_all_start_methods():
            raise ConfigError(f"start method {self.start_method!r} is not available here")
        _timeout("lock timeout", self.lock_timeout)
        _timeout("stall timeout", self.stall_timeout)

    def plan(self) -> BuyerPlan:
        """What the run's children share."""
        return BuyerPlan(
            store=self.store,
            strategy=self.strategy,
            seed=self.seed,
            delays=self.delays,
            lock_timeout=self.lock_timeout,
            fsync=self.fsync,
            gate_timeout=max(60.0, self.stall_timeout),
            lease_ttl=self.lease_ttl,
            fencing=self.fencing,
            retries=self.retries,
        )


@dataclass(frozen=True, kw_only=True)
class BuyConfig(SaleConfig):
    """``tickets buy``: N buyer processes against the store."""

    buyers: int
    #: the user's own buyer, ``FILE.py:FUNC`` or ``MODULE:FUNC`` (None: the built-in purchase)
    buy: str | None = None
    #: a buyer still buying this long after the start is stopped (its outcome:
    #: unknown); a command buyer's default is DEFAULT_EXEC_TIMEOUT
    buyer_timeout: float | None = None
    #: the user's command as the buyer (``--exec``): one run per buyer
    command: str | None = None
    #: the exit code of a command buyer that means "sold out"
    sold_out_exit: int = DEFAULT_SOLD_OUT_EXIT
    #: every ticket a command prints is an id, never a seat
    ticket_ids: bool = False
    #: a command that prints the stock, read before and after the sale
    stock_cmd: str | None = None
    #: where the stock is read: "store", "command" (``stock_cmd``) or "none"
    #: (a command buyer's sale on a stock nobody can read)
    stock: str = "store"
    #: a named sale on Redis that this run joins as one of ``hosts``
    #: (see tickets.named_sale.registry)
    sale: str | None = None
    hosts: int = 1
    #: how long a host waits for the others to join (seconds)
    join_timeout: float = 60.0
    #: worker processes the buyers run on, 0 for a process per buyer; None:
    #: a process each up to AUTO_WORKERS_ABOVE buyers, a worker per core above
    workers: int | None = None
    #: buyers each worker runs at once (threads); None: DEFAULT_CONCURRENCY,
    #: or NO_DELAY_CONCURRENCY with no simulated delays
    concurrency: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _in_range("buyers", self.buyers, 1, MAX_BUYERS)
        _timeout("buyer timeout", self.buyer_timeout)
        self._check_command()
        self._resolve_workers()
        self._check_sale()
        if self.buy is not None:
            from .buyer_check import check
            from .child.user_buyer import BuyerCodeError

            try:
                check(self.buy)
            except BuyerCodeError as exc:
                raise ConfigError(f"--buy {exc}") from None

    def _check_command(self) -> None:
        """--exec, --stock-cmd and where the stock is read."""
        from .shell_commands import CommandError, check_command

        if self.stock_cmd is not None and self.stock == "store":
            object.__setattr__(self, "stock", "command")
        if self.stock not in STOCK_SOURCES:
            raise ConfigError(f"stock must be one of {', '.join(STOCK_SOURCES)}")
        if self.stock == "command" and self.stock_cmd is None:
            raise ConfigError("a stock read by a command needs --stock-cmd CMD")
        if self.stock == UNREAD_STOCK and self.command is None:
            raise ConfigError("only a command buyer's sale (--exec) may go without a stock")
        if self.command is not None and self.buy is not None:
            raise ConfigError("--buy and --exec both name the buyer; give one")
        if self.command is not None and self.strategy is not NO_LOCK:
            raise ConfigError("--lock does not apply to --exec: the command does its own locking")
        if self.command is not None:
            _check_fd_limit(self.buyers)
        if not 1 <= self.sold_out_exit <= 255:
            raise ConfigError(f"--sold-out-exit must be from 1 to 255, got {self.sold_out_exit}")
        try:
            for flag, text in (("--exec", self.command), ("--stock-cmd", self.stock_cmd)):
                if text is not None:
                    check_command(flag, text)
        except CommandError as exc:
            raise ConfigError(str(exc)) from None

    def _resolve_workers(self) -> None:
        """A process per buyer, or workers: what --workers says, else by size."""
        concurrency = self.concurrency
        given = concurrency is not None
        if concurrency is None:
            delayed = self.delays.search or self.delays.write
            concurrency = DEFAULT_CONCURRENCY if delayed else NO_DELAY_CONCURRENCY
        _in_range("concurrency", concurrency, 1, MAX_CONCURRENCY)
        object.__setattr__(self, "concurrency", concurrency)
        workers = self.workers
        if workers is None:
            big = self.buyers > AUTO_WORKERS_ABOVE and self.command is None
            workers = default_workers() if big and self.start_method == "fork" else 0
        _in_range("workers", workers, 0, MAX_WORKERS)
        if workers and self.command is not None:
            raise ConfigError("--workers does not apply to --exec: every command is a process")
        if workers and self.start_method != "fork":
            raise ConfigError(
                f"--workers needs --start-method fork (workers are forked), not {self.start_method}"
            )
        if not workers and self.buyers > MAX_PROCESS_BUYERS:
            how = "--exec runs" if self.command is not None else "a process per buyer takes"
            raise ConfigError(
                f"--buyers {self.buyers:,}: {how} at most {MAX_PROCESS_BUYERS:,} buyers; "
                + ("give fewer" if self.command is not None else "run them on --workers")
            )
        if given and not workers:
            raise ConfigError(
                "--concurrency is for buyers on workers: give --workers W "
                f"(or over {AUTO_WORKERS_ABOVE:,} buyers, they are by default)"
            )
        object.__setattr__(self, "workers", min(workers, self.buyers))
        # None without workers: a copy (dataclasses.replace) validates the same
        object.__setattr__(self, "concurrency", concurrency if workers else None)

    def _check_sale(self) -> None:
        if self.sale is None:
            if self.hosts != 1:
                raise ConfigError("--hosts is for a named sale (--sale NAME)")
            return
        from ..named_sale.registry import check_name

        try:
            check_name(self.sale)
        except ValueError as exc:
            raise ConfigError(f"--sale {exc}") from None
        if self.store.kind != "redis":
            raise ConfigError(
                "--sale needs a Redis store that every host reaches (--db redis://HOST...)"
            )
        if self.stock != "store":
            raise ConfigError("--sale sells the store's stock; --stock-cmd does not apply")
        _in_range("hosts", self.hosts, 1, MAX_HOSTS)
        _timeout("join timeout", self.join_timeout)

    @property
    def exec_timeout(self) -> float:
        return self.buyer_timeout or DEFAULT_EXEC_TIMEOUT


def _check_fd_limit(buyers: int) -> None:
    """Command buyers run at once, two pipes each, all read by the launcher."""
    import resource

    from .child.commands import fds_needed

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and fds_needed(buyers) > hard:
        raise ConfigError(
            f"--buyers {buyers} with --exec needs {fds_needed(buyers):,} open files, and this "
            f"process may open {hard:,} (ulimit -Hn): give fewer buyers or raise the limit"
        )


@dataclass(frozen=True, kw_only=True)
class QueueConfig(SaleConfig):
    """``tickets queue``: producers submit orders to a bounded queue, clerks sell."""

    producers: int
    orders: int
    clerks: int
    queue_size: int
    #: None: a producer waits on a full queue; 0: put_nowait
    put_timeout: float | None = None
    #: None: a clerk waits for a sentinel; else it goes home when idle this long
    get_timeout: float | None = None
    shutdown: str = "sentinel"
    batch: int = 1
    #: (clerk, after how many orders, kill point): clerks a test kills on purpose
    kill_at: tuple[tuple[int, int, str], ...] = ()
    mode: str = "queue"
    #: worker processes the producers run on, a thread each (0: a process
    #: each); None: a process each up to MAX_PRODUCERS, a worker per core above
    workers: int | None = None

    def __post_init__(self) -> None:
        from .child.orders import CLERK_KILL_POINTS

        super().__post_init__()
        _in_range("producers", self.producers, 1, MAX_WORKER_PRODUCERS)
        workers = self.workers
        if workers is None:
            workers = default_workers() if self.producers > MAX_PRODUCERS else 0
        _in_range("workers", workers, 0, MAX_WORKERS)
        if not workers and self.producers > MAX_PRODUCERS:
            raise ConfigError(
                f"--producers {self.producers}: a process per producer takes at "
                f"most {MAX_PRODUCERS}; run them on --workers"
            )
        _in_range("producers", self.producers, 1, MAX_WORKER_PRODUCERS)
        object.__setattr__(self, "workers", min(workers, self.producers))
        _in_range("orders", self.orders, 1, MAX_ORDERS)
        _in_range("clerks", self.clerks, 1, MAX_CLERKS)
        _in_range("queue size", self.queue_size, 1, MAX_QUEUE_SIZE)
        _in_range("batch", self.batch, 1, MAX_BATCH)
        if self.producers * self.orders > MAX_ORDERS:
            raise ConfigError(f"producers x orders must be at most {MAX_ORDERS:,}")
        if self.shutdown not in SHUTDOWNS:
            raise ConfigError(f"shutdown must be one of {', '.join(SHUTDOWNS)}")
        _timeout("put timeout", self.put_timeout, zero_ok=True)
        _timeout("get timeout", self.get_timeout)
        if self.get_timeout is not None and self.shutdown == "join":
            raise ConfigError(
                "a get timeout does not fit the join shutdown: a clerk that goes home "
                "leaves the producers waiting in join() forever"
            )
        for _, _, point in self.kill_at:
            if point not in CLERK_KILL_POINTS:
                raise ConfigError(f"unknown clerk kill point {point!r}")
