"""All process handling: start method, start gate, deadlines, watchdog, events, cleanup.

Data flows one way: a frozen :class:`RunConfig` -> buyers started behind a
gate -> each child sends events over one queue -> the parent writes the
history and builds a :class:`RunResult` -> checks. Every wait in the parent
has a deadline; a child that dies is noticed and its outcome is ``info``.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.process
import os
import resource
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from . import store
from .buyer import BuyerPlan, Delays, run_buyer
from .channel import Channel
from .checks import Report, evaluate
from .history import HistoryWriter
from .limits import (
    DEFAULT_LOCK_TIMEOUT,
    DEFAULT_STALL_TIMEOUT,
    DEFAULT_STRATEGY,
    DEFAULT_TICKETS,
    MAX_BUYERS,
    MAX_COUNT,
)
from .strategies import STRATEGIES, check_lock_path, get, store_lock

#: How long finished children get to exit before they are killed.
REAP_TIMEOUT = 5.0


class RunError(Exception):
    """A run could not be set up (bad configuration). ``str()`` is the message."""


def default_start_method() -> str:
    # fork is by far the cheapest start (~1.5 ms against ~30 ms for spawn) and
    # the parent has no threads when it forks; elsewhere use the platform's.
    methods = multiprocessing.get_all_start_methods()
    return "fork" if "fork" in methods else methods[0]


@dataclass(frozen=True)
class RunConfig:
    store: Path
    buyers: int
    strategy: str = DEFAULT_STRATEGY
    #: restock to this many tickets before the run; None keeps the stock as it is
    tickets: int | None = DEFAULT_TICKETS
    seed: int = 0
    delays: Delays = field(default_factory=Delays)
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    fsync: bool = False
    start_method: str = field(default_factory=default_start_method)
    history: Path | None = None
    stall_timeout: float = DEFAULT_STALL_TIMEOUT
    mode: str = "buy"

    def validate(self) -> None:
        if self.strategy not in STRATEGIES:
            raise RunError(
                f"unknown strategy {self.strategy!r}; choose from {', '.join(STRATEGIES)}"
            )
        if not 1 <= self.buyers <= MAX_BUYERS:
            raise RunError(f"buyers must be from 1 to {MAX_BUYERS}, got {self.buyers}")
        if self.tickets is not None and not 0 <= self.tickets <= MAX_COUNT:
            raise RunError(f"tickets must be from 0 to {MAX_COUNT:,}, got {self.tickets}")
        if self.start_method not in multiprocessing.get_all_start_methods():
            raise RunError(f"start method {self.start_method!r} is not available here")
        for name, value in (
            ("lock timeout", self.lock_timeout),
            ("stall timeout", self.stall_timeout),
        ):
            if not 0 < value <= 86400:
                raise RunError(f"{name} must be more than 0 and at most a day, got {value}")


@dataclass
class BuyerRow:
    """One buyer as the parent saw it."""

    buyer: int
    pid: int | None = None
    result: str = "pending"  # ok | fail | info | pending
    seat: int | None = None
    reason: str | None = None
    seen: int | None = None
    t_start: float | None = None
    t_search: float | None = None
    t_locked: float | None = None
    t_end: float | None = None

    @property
    def lock_wait(self) -> float | None:
        if self.t_locked is None or self.t_search is None:
            return None
        return self.t_locked - self.t_search

    @property
    def total(self) -> float | None:
        if self.t_end is None or self.t_start is None:
            return None
        return self.t_end - self.t_start

    def update(self, ev: dict[str, Any]) -> None:
        self.pid = ev.get("pid", self.pid)
        for key in ("t_start", "t_search", "t_locked"):
            if key in ev:
                setattr(self, key, ev[key])
        if "seen" in ev:
            self.seen = ev["seen"]
        if ev["type"] != "invoke":
            self.result = ev["type"]
            self.seat = ev.get("seat")
            self.reason = ev.get("reason")
            self.t_end = ev.get("t")

    def as_dict(self) -> dict[str, Any]:
        def r(x: float | None) -> float | None:
            return None if x is None else round(x, 6)

        return {
            "buyer": self.buyer,
            "pid": self.pid,
            "result": self.result,
            "seat": self.seat,
            "reason": self.reason,
            "seen": self.seen,
            "lock_wait_s": r(self.lock_wait),
            "total_s": r(self.total),
        }


@dataclass
class Progress:
    """What a live view shows while a run goes on."""

    total: int
    done: int = 0
    sold: int = 0
    double_sold: int = 0


@dataclass
class RunResult:
    config: RunConfig
    run_id: str
    history: Path
    initial: int
    remaining: int | None
    rows: list[BuyerRow]
    report: Report
    duration_s: float
    t0: float
    aborted: str | None = None
    store_error: str | None = None

    @property
    def purchases_per_s(self) -> float:
        return self.report.sold / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def passed(self) -> bool:
        return self.report.passed and self.aborted is None


def default_history_path(store_path: Path, mode: str, strategy: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    name = f"{store_path.stem}-{stamp}-{mode}-{strategy}-{os.getpid()}.jsonl"
    return store_path.parent / "history" / name


def _raise_fd_limit(children: int) -> None:
    # Each live child holds a sentinel pipe in the parent.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = children + 256
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))


def prepare_store(config: RunConfig) -> int:
    """Under the store lock: clean orphan temp files, restock if asked, read the stock."""
    store.check_writable(config.store)
    check_lock_path(config.store)
    with store_lock(config.store, config.lock_timeout):
        store.remove_orphan_temps(config.store)
        if config.tickets is not None:
            store.save(config.store, config.tickets, fsync=config.fsync)
        return store.load(config.store)


def read_final(path: Path) -> tuple[int | None, str | None]:
    try:
        return store.load(path), None
    except store.StoreError as exc:
        return None, str(exc)


def _child_main(
    target: Callable[..., None], args: tuple[Any, ...], close: Iterable[Any]
) -> NoReturn:
    """A forked child: run the target, then leave at once (no atexit, no flush)."""
    code = 1
    try:
        # Ctrl-C goes to the whole process group: the parent decides.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for conn in close:
            conn.close()
        target(*args)
        code = 0
    finally:
        os._exit(code)


class Gate:
    """Holds every child back until all are started, then lets them go at once.

    A pipe nobody writes to: children wait for it to become readable, which it
    does, for all of them in one go, when the parent closes the write end.
    (A ``multiprocessing.Event`` wakes its waiters one by one, each waiting
    for the last to acknowledge: 1,000 buyers trickled out over 1.2 s.)
    """

    def __init__(self, ctx: Any) -> None:
        self.reader, self.writer = ctx.Pipe(duplex=False)

    def open(self) -> None:
        self.writer.close()

    def close(self) -> None:
        self.reader.close()
        if not self.writer.closed:
            self.writer.close()


def wait_at_gate(reader: Any, timeout: float) -> bool:
    """Child side: True once the gate opens (EOF on the pipe), False on timeout."""
    return bool(reader.poll(timeout))


class Children:
    """Start, watch and reap a run's child processes.

    With the fork start method the parent forks its children itself:
    ``multiprocessing.Process.start()`` polls every live child it knows of
    (``multiprocessing.process._cleanup``), which makes starting N children
    that all wait behind the gate O(N^2) (1,000 buyers took 5.6 s), and its
    child bootstrap costs ~1 ms more per child. Forkserver and spawn go
    through multiprocessing, which pickles the arguments for them.
    """

    def __init__(self, ctx: Any, method: str, close_in_child: Iterable[Any] = ()) -> None:
        self.ctx = ctx
        self.raw_fork = method == "fork"
        #: parent-only pipe ends a forked child must not keep open
        self.close_in_child = tuple(close_in_child)
        self.pids: dict[Any, int] = {}
        self.codes: dict[Any, int | None] = {}
        self._procs: dict[Any, Any] = {}

    def start(self, key: Any, target: Callable[..., None], args: Iterable[Any]) -> None:
        args = tuple(args)
        if self.raw_fork:
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the child
                _child_main(target, args, self.close_in_child)
        else:
            p = self.ctx.Process(target=target, args=args, daemon=True)
            p.start()
            children = getattr(multiprocessing.process, "_children", None)
            if isinstance(children, set):
                children.discard(p)  # we reap it ourselves (see the class doc)
            self._procs[key] = p
            pid = p.pid
        self.pids[key] = pid
        self.codes[key] = None

    def exitcode(self, key: Any) -> int | None:
        """The child's exit code (negative: killed by that signal), None while it runs."""
        if self.codes[key] is None:
            try:
                pid, status = os.waitpid(self.pids[key], os.WNOHANG)
            except ChildProcessError:
                # Reaped elsewhere (multiprocessing's own bookkeeping): ask it.
                proc = self._procs.get(key)
                self.codes[key] = proc.exitcode if proc is not None else -1
                return self.codes[key]
            if pid:
                self.codes[key] = os.waitstatus_to_exitcode(status)
        return self.codes[key]

    def alive(self) -> list[Any]:
        return [key for key in self.pids if self.exitcode(key) is None]

    def signal(self, keys: Iterable[Any], sig: int = signal.SIGKILL) -> None:
        for key in keys:
            if self.exitcode(key) is None:
                try:
                    os.kill(self.pids[key], sig)
                except ProcessLookupError:
                    pass

    def reap(self, deadline: float) -> list[Any]:
        """Wait for every child until the deadline, kill the rest; return the killed keys."""
        pause = 0.001
        while self.alive() and time.monotonic() < deadline:
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
        killed = self.alive()
        self.signal(killed, signal.SIGKILL)
        end = time.monotonic() + 2.0
        while self.alive() and time.monotonic() < end:
            time.sleep(0.01)
        for proc in self._procs.values():
            if proc.exitcode is not None:
                proc.close()
        return killed


def describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


def run_buy(
    config: RunConfig,
    progress: Callable[[Progress], None] | None = None,
) -> RunResult:
    """Run one sale: N buyer processes against the store. Raises StoreError,
    HistoryError or RunError before anything changes when the run cannot start."""
    config.validate()
    strategy = get(config.strategy)
    history_path = config.history or default_history_path(config.store, config.mode, strategy.name)
    store.check_writable(config.store)
    check_lock_path(config.store)
    # A store that exists must parse before anything is created: bad input
    # changes nothing on disk (restocking does not paper over corruption;
    # `tickets init` resets a store).
    if config.tickets is None or config.store.exists():
        store.load(config.store)
    writer = HistoryWriter(history_path)
    try:
        initial = prepare_store(config)
    except BaseException:
        writer.discard()
        raise
    _raise_fd_limit(config.buyers)
    run_id = os.urandom(8).hex()
    t_setup = time.monotonic()
    writer.write(
        {
            "type": "run",
            "version": 1,
            "run_id": run_id,
            "mode": config.mode,
            "store": str(config.store.resolve()),
            "strategy": strategy.name,
            "initial": initial,
            "restocked": config.tickets is not None,
            "buyers": config.buyers,
            "seed": config.seed,
            "delays": {"search": config.delays.search, "write": config.delays.write},
            "start_method": config.start_method,
            "pid": os.getpid(),
            "wall": datetime.now(UTC).isoformat(),
            "t": t_setup,
        }
    )
    plan = BuyerPlan(
        store=config.store,
        strategy=strategy.name,
        seed=config.seed,
        delays=config.delays,
        lock_timeout=config.lock_timeout,
        fsync=config.fsync,
        gate_timeout=max(60.0, config.stall_timeout),
    )
    ctx = multiprocessing.get_context(config.start_method)
    channel = Channel(ctx)
    gate = Gate(ctx)
    tokens = strategy.tokens(ctx)
    children = Children(ctx, config.start_method, close_in_child=[gate.writer, channel.reader])
    rows = [BuyerRow(b) for b in range(config.buyers)]
    live = Progress(total=config.buyers)
    seats: dict[int, int] = {}
    aborted: str | None = None
    interrupted = False

    def record(ev: dict[str, Any]) -> None:
        writer.write(ev)
        row = rows[ev["buyer"]]
        row.update(ev)
        if ev["type"] == "invoke":
            return
        live.done += 1
        if ev["type"] == "ok":
            live.sold += 1
            seats[ev["seat"]] = seats.get(ev["seat"], 0) + 1
            if seats[ev["seat"]] > 1:
                live.double_sold += 1

    def unknown(buyer: int, why: str) -> None:
        pid = rows[buyer].pid or children.pids.get(buyer)
        reason = f"no outcome reported ({why})"
        record(
            {"type": "info", "buyer": buyer, "pid": pid, "reason": reason, "t": time.monotonic()}
        )

    t0 = time.monotonic()
    try:
        for b in range(config.buyers):
            children.start(b, run_buyer, (plan, b, next(tokens), channel.writer, gate.reader))
        t0 = time.monotonic()
        gate.open()
        aborted = _collect(config, children, channel, rows, record, unknown, live, progress)
    except KeyboardInterrupt:
        interrupted = True
        aborted = "interrupted"
    finally:
        pending = [r.buyer for r in rows if r.result == "pending"]
        children.signal(pending, signal.SIGKILL)
        killed = set(children.reap(time.monotonic() + REAP_TIMEOUT))
        _drain(channel, rows, record)
        for row in rows:
            if row.result == "pending":
                if interrupted:
                    why = "interrupted"
                elif row.buyer in killed or aborted:
                    why = "stopped by the watchdog"
                elif row.buyer in children.pids:
                    why = describe_exit(children.exitcode(row.buyer))
                else:
                    why = "never started"
                unknown(row.buyer, why)
        channel.close()
        gate.close()
    t_end = time.monotonic()
    remaining, store_error = read_final(config.store)
    writer.write(
        {
            "type": "end",
            "remaining": remaining,
            "store_error": store_error,
            "aborted": aborted,
            "duration_s": round(t_end - t0, 6),
            "t": t_end,
        }
    )
    writer.close()
    report = evaluate(
        initial,
        remaining,
        [(str(r.buyer), {"type": r.result, "seat": r.seat}) for r in rows],
        store_problem=store_error,
    )
    if interrupted:
        raise KeyboardInterrupt
    return RunResult(
        config=config,
        run_id=run_id,
        history=history_path,
        initial=initial,
        remaining=remaining,
        rows=rows,
        report=report,
        duration_s=t_end - t0,
        t0=t0,
        aborted=aborted,
        store_error=store_error,
    )


def _drain(
    channel: Channel, rows: list[BuyerRow], record: Callable[[dict[str, Any]], None]
) -> None:
    """Take every event already in the pipe (children that exited wrote theirs)."""
    while True:
        try:
            ev = channel.get(timeout=0.01)
        except (EOFError, OSError, ValueError):
            return
        if ev is None:
            return
        if 0 <= ev.get("buyer", -1) < len(rows):
            record(ev)


def _collect(
    config: RunConfig,
    children: Children,
    channel: Channel,
    rows: list[BuyerRow],
    record: Callable[[dict[str, Any]], None],
    unknown: Callable[[int, str], None],
    live: Progress,
    progress: Callable[[Progress], None] | None,
) -> str | None:
    """Read events until every buyer has an outcome or the watchdog fires."""
    last_progress = time.monotonic()
    last_shown = 0.0
    while live.done < len(rows):
        ev = channel.get(timeout=0.05)
        now = time.monotonic()
        if ev is not None:
            record(ev)
            last_progress = now
        else:
            # Quiet: look for children that died without a word. Their last
            # event may still be in the pipe, so drain before judging.
            dead = [
                r.buyer
                for r in rows
                if r.result == "pending" and children.exitcode(r.buyer) is not None
            ]
            if dead:
                _drain(channel, rows, record)
                for b in dead:
                    if rows[b].result == "pending":
                        unknown(b, describe_exit(children.exitcode(b)))
                last_progress = time.monotonic()
            elif now - last_progress > config.stall_timeout:
                return f"no buyer reported for {config.stall_timeout:g}s; stopped by the watchdog"
        if progress is not None and (now - last_shown > 0.05 or live.done == len(rows)):
            progress(live)
            last_shown = now
    if progress is not None:
        progress(live)
    return None


__all__ = [
    "MAX_BUYERS",
    "BuyerRow",
    "Progress",
    "RunConfig",
    "RunError",
    "RunResult",
    "default_start_method",
    "run_buy",
]
