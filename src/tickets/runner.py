"""The parent side of a run, for both modes.

Data flows one way: a frozen config -> children started behind a gate (see
:mod:`tickets.procs`) -> each child sends events over one pipe -> the parent
(:class:`Sale`) writes the history and keeps one row per buyer or order ->
checks -> a :class:`RunResult`. Every wait has a deadline; a child that dies
is noticed and what it had in hand becomes ``info`` (outcome unknown).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import store
from .buyer import BuyerPlan, Delays, run_buyer
from .channel import Channel
from .chaos import Chaos, Pauser
from .checks import Report, evaluate
from .history import HistoryWriter
from .launcher import Launcher
from .limits import (
    DEFAULT_LOCK_TIMEOUT,
    DEFAULT_STALL_TIMEOUT,
    DEFAULT_STRATEGY,
    DEFAULT_TICKETS,
    MAX_BUYERS,
    MAX_COUNT,
)
from .procs import Children, Gate, default_start_method, describe_exit, raise_fd_limit
from .strategies import STRATEGIES, check_lock_path, restock

#: How long finished children get to exit before they are killed.
REAP_TIMEOUT = 5.0
#: How long nobody may get through a process lock after a death before it
#: is taken for abandoned (see LockWatch).
ABANDON_WINDOW = 1.0


def chaos_report(chaos: Chaos, planned: int, killed: int, paused: int) -> dict[str, Any]:
    return {
        "kill_rate": chaos.kill_rate,
        "pause_rate": chaos.pause_rate,
        "seed": chaos.seed,
        "kills_planned": planned,
        "killed": killed,
        "paused": paused,
    }


class RunError(Exception):
    """A run could not be set up (bad configuration). ``str()`` is the message."""


@dataclass(frozen=True, kw_only=True)
class SaleConfig:
    """What every run shares, whichever mode sells."""

    store: Path
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
    chaos: Chaos | None = None
    mode: str = "buy"

    def validate(self) -> None:
        if self.strategy not in STRATEGIES:
            raise RunError(
                f"unknown strategy {self.strategy!r}; choose from {', '.join(STRATEGIES)}"
            )
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

    def plan(self) -> BuyerPlan:
        return BuyerPlan(
            store=self.store,
            strategy=self.strategy,
            seed=self.seed,
            delays=self.delays,
            lock_timeout=self.lock_timeout,
            fsync=self.fsync,
            gate_timeout=max(60.0, self.stall_timeout),
        )


@dataclass(frozen=True, kw_only=True)
class RunConfig(SaleConfig):
    """``tickets buy``: N buyer processes against the store."""

    buyers: int

    def validate(self) -> None:
        super().validate()
        if not 1 <= self.buyers <= MAX_BUYERS:
            raise RunError(f"buyers must be from 1 to {MAX_BUYERS}, got {self.buyers}")


@dataclass
class BuyerRow:
    """One buyer (or, in the queue mode, one order) as the parent saw it."""

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
    producer: int | None = None
    clerk: int | None = None

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
        for key in ("t_start", "t_search", "t_locked", "seen", "producer", "clerk"):
            if key in ev:
                setattr(self, key, ev[key])
        if ev["type"] != "invoke":
            self.result = ev["type"]
            self.seat = ev.get("seat")
            self.reason = ev.get("reason")
            self.t_end = ev.get("t")

    def as_dict(self) -> dict[str, Any]:
        def r(x: float | None) -> float | None:
            return None if x is None else round(x, 6)

        doc = {
            "buyer": self.buyer,
            "pid": self.pid,
            "result": self.result,
            "seat": self.seat,
            "reason": self.reason,
            "seen": self.seen,
            "lock_wait_s": r(self.lock_wait),
            "total_s": r(self.total),
        }
        if self.producer is not None or self.clerk is not None:
            doc |= {"producer": self.producer, "clerk": self.clerk}
        return doc


@dataclass
class Progress:
    """What a live view shows while a run goes on."""

    total: int
    #: what is counted: "buyer", or "order" in the queue mode
    noun: str = "buyer"
    done: int = 0
    sold: int = 0
    double_sold: int = 0
    #: queue mode: orders waiting in the queue, orders submitted so far
    queue_depth: int | None = None
    submitted: int = 0


@dataclass
class RunResult:
    config: SaleConfig
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
    #: what the run noticed on the way (a clerk that died, ...)
    notes: tuple[str, ...] = ()
    #: queue mode: per producer and per clerk figures (see queue_run)
    queue: Any = None
    #: chaos runs: what was done to the run's processes
    chaos: dict[str, Any] | None = None

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


def read_final(path: Path) -> tuple[int | None, str | None]:
    try:
        return store.load(path), None
    except store.StoreError as exc:
        return None, str(exc)


class Sale:
    """The parent's record of one run: history file, rows, live counters.

    Opening it checks the store and the history path before anything is
    created: a run that cannot start changes nothing on disk.
    """

    def __init__(self, config: SaleConfig, total: int, run_fields: dict[str, Any]) -> None:
        config.validate()
        self.config = config
        self.history_path = config.history or default_history_path(
            config.store, config.mode, config.strategy
        )
        store.check_writable(config.store)
        check_lock_path(config.store)
        # A store that exists must parse before anything is created: bad
        # input changes nothing (restocking does not paper over corruption;
        # `tickets init` resets a store).
        if config.tickets is None or config.store.exists():
            store.load(config.store)
        self.writer = HistoryWriter(self.history_path)
        try:
            self.initial = restock(
                config.store, config.tickets, config.lock_timeout, fsync=config.fsync
            )
        except BaseException:
            self.writer.discard()
            raise
        self.run_id = os.urandom(8).hex()
        self.rows: dict[int, BuyerRow] = {}
        self.live = Progress(total=total, noun="order" if config.mode == "queue" else "buyer")
        self.notes: list[str] = []
        self._seats: dict[int, int] = {}
        self.writer.write(
            {
                "type": "run",
                "version": 1,
                "run_id": self.run_id,
                "mode": config.mode,
                "store": str(config.store.resolve()),
                "strategy": config.strategy,
                "initial": self.initial,
                "restocked": config.tickets is not None,
                **run_fields,
                "seed": config.seed,
                "delays": {"search": config.delays.search, "write": config.delays.write},
                "start_method": config.start_method,
                "pid": os.getpid(),
                "wall": datetime.now(UTC).isoformat(),
                "t": time.monotonic(),
            }
        )

    def row(self, key: int) -> BuyerRow:
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = BuyerRow(key)
        return row

    def record(self, ev: dict[str, Any]) -> None:
        """Write one event and fold it into its row (an outcome only once)."""
        row = self.row(ev["buyer"])
        if ev["type"] != "invoke" and row.result != "pending":
            return  # a late duplicate (e.g. the parent already gave up on it)
        self.writer.write(ev)
        row.update(ev)
        if ev["type"] == "invoke":
            self.live.submitted += 1
            return
        self.live.done += 1
        if ev["type"] == "ok":
            self.live.sold += 1
            seat = ev["seat"]
            self._seats[seat] = self._seats.get(seat, 0) + 1
            if self._seats[seat] > 1:
                self.live.double_sold += 1

    def unknown(self, key: int, why: str) -> None:
        row = self.row(key)
        self.record(
            {
                "type": "info",
                "buyer": key,
                "pid": row.pid,
                "reason": f"no outcome reported ({why})",
                "t": time.monotonic(),
            }
        )

    def pending(self) -> list[int]:
        return [k for k, r in self.rows.items() if r.result == "pending"]

    def finish(
        self,
        t0: float,
        aborted: str | None,
        queue: Any = None,
        chaos: dict[str, Any] | None = None,
    ) -> RunResult:
        t_end = time.monotonic()
        remaining, store_error = read_final(self.config.store)
        self.writer.write(
            {
                "type": "end",
                "remaining": remaining,
                "store_error": store_error,
                "aborted": aborted,
                "notes": self.notes,
                "chaos": chaos,
                "duration_s": round(t_end - t0, 6),
                "t": t_end,
            }
        )
        self.writer.close()
        rows = [self.rows[k] for k in sorted(self.rows)]
        report = evaluate(
            self.initial,
            remaining,
            [(str(r.buyer), {"type": r.result, "seat": r.seat}) for r in rows],
            store_problem=store_error,
        )
        return RunResult(
            config=self.config,
            run_id=self.run_id,
            history=self.history_path,
            initial=self.initial,
            remaining=remaining,
            rows=rows,
            report=report,
            duration_s=t_end - t0,
            t0=t0,
            aborted=aborted,
            store_error=store_error,
            notes=tuple(self.notes),
            queue=queue,
            chaos=chaos,
        )


class LockWatch:
    """Notices a ``multiprocessing.Lock`` left held by a dead process.

    Its holder dead, such a lock is never released: everyone else would wait
    out their lock timeouts one by one. Once a process died without an
    outcome, if nobody gets through the lock for ``window`` seconds and no
    non-blocking probe of the lock succeeds, the lock is taken for abandoned
    and the run stops. ``probe(since)`` says whether the lock was found free
    since then (tried by the parent itself, or reported by the launcher that
    holds the lock). A flock is released by the kernel when its holder dies:
    the file strategy never needs this.
    """

    def __init__(self, probe: Callable[[float], bool] | None, window: float) -> None:
        self.probe = probe
        self.window = window
        self.suspect_since: float | None = None
        self.last_through = time.monotonic()
        self.abandoned = False

    def died(self, at: float) -> None:
        """A process died without an outcome at ``at`` (monotonic seconds)."""
        if self.probe is not None and self.suspect_since is None:
            self.suspect_since = at

    def passed(self, ev: dict[str, Any], now: float) -> None:
        if ev["type"] == "ok" or (ev["type"] == "fail" and ev.get("t_locked") is not None):
            self.last_through = now

    def check(self, now: float, waiting: bool) -> str | None:
        if self.probe is None or self.suspect_since is None or not waiting:
            return None
        if self.probe(self.suspect_since):
            self.suspect_since = None  # it was free: the dead one did not hold it
            return None
        if now - max(self.suspect_since, self.last_through) < self.window:
            return None
        self.abandoned = True
        return (
            "a process died holding the run's multiprocessing.Lock, which is never released "
            "for a dead holder; stopped (--lock file survives this: the kernel releases a "
            "flock when its holder dies)"
        )


def local_probe(lock: Any) -> Callable[[float], bool]:
    def probe(since: float) -> bool:
        if lock.acquire(False):
            lock.release()
            return True
        return False

    return probe


ABANDONED = "stopped: the lock was left held by a dead process, so this one never got it"


def drain(channel: Channel, sale: Sale, children: Any = None) -> None:
    """Record every event already in the pipe, the launcher's own to ``children``."""
    for ev in channel.drain():
        if children is None or not children.record(ev):
            sale.record(ev)


def run_buy(
    config: RunConfig,
    progress: Callable[[Progress], None] | None = None,
) -> RunResult:
    """Run one sale: N buyer processes against the store.

    Raises StoreError, HistoryError or RunError before anything changes when
    the run cannot start; KeyboardInterrupt after recording the buyers it
    stopped as unknown.
    """
    sale = Sale(config, config.buyers, {"buyers": config.buyers})
    try:
        return _sell(config, sale, progress)
    finally:
        sale.writer.close()  # also when the run fails: no history is left open


def _sell(config: RunConfig, sale: Sale, progress: Callable[[Progress], None] | None) -> RunResult:
    raise_fd_limit(config.buyers)
    ctx = multiprocessing.get_context(config.start_method)
    channel = Channel(ctx)
    gate = Gate(ctx)
    plan = config.plan()
    chaos = config.chaos
    if chaos is not None:
        plan = plan.replace(kill_at=chaos.buyer_kills(config.buyers))
    for b in range(config.buyers):
        sale.row(b)
    aborted: str | None = None
    interrupted = False
    t0 = time.monotonic()
    children: Children | Launcher
    if config.start_method == "fork":
        children = Launcher(plan, config.buyers, channel.writer.fileno(), gate.reader.fileno())
        launcher = children
        probe = (
            (lambda since: launcher.lock_free_at > since) if plan.strategy == "process" else None
        )
    else:
        children = Children(ctx, config.start_method)
        tokens = STRATEGIES[config.strategy].tokens(ctx)
        first = next(tokens)
        probe = local_probe(first) if plan.strategy == "process" else None
    lock_watch = LockWatch(probe, ABANDON_WINDOW)
    pauser = Pauser(chaos.pauses(range(config.buyers)) if chaos else [], children.pids)
    try:
        if isinstance(children, Launcher):
            aborted = _launch(children, channel, sale, config.stall_timeout)
        else:
            for b in range(config.buyers):
                token = first if b == 0 else next(tokens)
                children.start(b, run_buyer, (plan, b, token, channel.writer, gate.reader))
        t0 = time.monotonic()
        if aborted is None:
            gate.open()
            pauser.start(t0)
            aborted = _collect(config, children, channel, sale, progress, pauser, lock_watch)
    except KeyboardInterrupt:
        interrupted = True
        aborted = "interrupted"
    finally:
        pauser.resume_all()
        _stop(children, channel, sale, range(config.buyers), interrupted, aborted, lock_watch)
        gate.close()
    report = None
    if chaos is not None:
        victims = {b for b, _ in plan.kill_at}
        killed = sum(1 for b in victims if children.exitcode(b) == -signal.SIGKILL)
        report = chaos_report(chaos, len(victims), killed, pauser.paused)
    result = sale.finish(t0, aborted, chaos=report)
    if interrupted:
        raise KeyboardInterrupt
    return result


def _launch(launcher: Launcher, channel: Channel, sale: Sale, deadline_s: float) -> str | None:
    """Wait, with a deadline, until the launcher has forked every buyer."""
    deadline = time.monotonic() + max(60.0, deadline_s)
    while not launcher.launched:
        for ev in channel.get(timeout=0.05):
            if not launcher.record(ev):
                sale.record(ev)
        if failure := launcher.failed():
            return failure
        if time.monotonic() > deadline:
            return "the buyer launcher did not start every buyer in time; stopped"
    return None


def _stop(
    children: Children | Launcher,
    channel: Channel,
    sale: Sale,
    keys: Iterable[int],
    interrupted: bool,
    aborted: str | None,
    lock_watch: LockWatch | None = None,
) -> None:
    """Kill whoever is still running, reap everyone, and settle every pending row."""
    killed = set(children.stop(time.monotonic() + REAP_TIMEOUT, kill_now=aborted is not None))
    drain(channel, sale, children)
    for key in keys:
        if sale.rows[key].result != "pending":
            continue
        if lock_watch is not None and lock_watch.abandoned and key in killed:
            # Nobody could hold the lock but the dead: this one never wrote.
            sale.record({"type": "fail", "buyer": key, "reason": ABANDONED, "t": time.monotonic()})
            continue
        if key not in children.pids:
            why = "never started"
        elif interrupted:
            why = "interrupted"
        elif key in killed or aborted:
            why = "stopped by the watchdog"
        else:
            why = describe_exit(children.exitcode(key))
        sale.unknown(key, why)
    channel.close()


def _collect(
    config: RunConfig,
    children: Children | Launcher,
    channel: Channel,
    sale: Sale,
    progress: Callable[[Progress], None] | None,
    pauser: Pauser,
    lock_watch: LockWatch,
) -> str | None:
    """Read events until every buyer has an outcome or the watchdog fires."""
    live = sale.live
    last_event = time.monotonic()
    last_shown = 0.0
    while live.done < config.buyers:
        pauser.tick()
        wait = pauser.next_in()
        events = channel.get(timeout=0.05 if wait is None else min(0.05, wait))
        now = time.monotonic()
        for ev in events:
            if children.record(ev):
                if ev["type"] == "exit" and sale.rows[ev["buyer"]].result == "pending":
                    # Its outcome would have come before its exit: there is none.
                    sale.unknown(ev["buyer"], describe_exit(ev["code"]))
                    lock_watch.died(ev["t"])
                continue
            sale.record(ev)
            lock_watch.passed(ev, now)
        if events:
            last_event = now
        else:
            # Quiet: look for buyers that died without a word. Their last
            # event may still be in the pipe, so drain before judging.
            dead = [b for b in sale.pending() if children.exitcode(b) is not None]
            if dead:
                drain(channel, sale, children)
                for b in dead:
                    if sale.rows[b].result == "pending":
                        sale.unknown(b, describe_exit(children.exitcode(b)))
                        lock_watch.died(now)
                last_event = time.monotonic()
            elif message := lock_watch.check(now, live.done < config.buyers):
                return message
            elif now - last_event > config.stall_timeout:
                return f"no buyer reported for {config.stall_timeout:g}s; stopped by the watchdog"
        if progress is not None and now - last_shown > 0.05:
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
    "Sale",
    "SaleConfig",
    "default_start_method",
    "run_buy",
]
