"""``tickets queue``: the producer-consumer model, parent side.

Producers put orders into one bounded queue, clerks sell from it; the parent
starts them behind the gate, shuts them down the way ``shutdown`` says, and
accounts for every order:

- ``sentinel`` (tutorial section 3): once every producer has exited, one
  ``None`` per clerk; then the clerks are joined.
- ``join`` (tutorial section 4): a ``JoinableQueue``; clerks ``task_done()``
  every order, producers ``join()`` the queue after their last; once the
  producers have exited the clerks, daemons in the tutorial, are stopped.

``JoinableQueue.join()`` has no timeout: a clerk that dies with an order in
hand never calls ``task_done()`` for it and the producers would wait forever.
The parent notices the dead clerk (its exit code), records its orders as
unknown and stops the run (exit 4) instead.
"""

from __future__ import annotations

import multiprocessing
import queue as queue_errors
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .channel import Channel
from .chaos import Pauser
from .limits import MAX_BATCH, MAX_CLERKS, MAX_ORDERS, MAX_PRODUCERS, MAX_QUEUE_SIZE
from .orders import CLERK_KILL_POINTS, OrderPlan, run_clerk, run_producer
from .procs import Children, Gate, describe_exit, raise_fd_limit
from .runner import (
    ABANDON_WINDOW,
    ABANDONED,
    REAP_TIMEOUT,
    LockWatch,
    Progress,
    RunError,
    RunResult,
    Sale,
    SaleConfig,
    chaos_report,
)
from .strategies import STRATEGIES

SHUTDOWNS = ("sentinel", "join")
#: After a clerk died under the join shutdown, how long the others get to
#: finish what they hold before the run stops.
JOIN_GRACE = 0.5
BUSY_PREFIX = "busy: the order queue"


@dataclass(frozen=True, kw_only=True)
class QueueConfig(SaleConfig):
    producers: int
    orders: int
    clerks: int
    queue_size: int
    put_timeout: float | None = None
    get_timeout: float | None = None
    shutdown: str = "sentinel"
    batch: int = 1
    kill_at: tuple[tuple[int, int, str], ...] = ()
    mode: str = "queue"

    def validate(self) -> None:
        super().validate()
        for name, value, top in (
            ("producers", self.producers, MAX_PRODUCERS),
            ("orders", self.orders, MAX_ORDERS),
            ("clerks", self.clerks, MAX_CLERKS),
            ("queue size", self.queue_size, MAX_QUEUE_SIZE),
            ("batch", self.batch, MAX_BATCH),
        ):
            if not 1 <= value <= top:
                raise RunError(f"{name} must be from 1 to {top:,}, got {value}")
        if self.producers * self.orders > MAX_ORDERS:
            raise RunError(f"producers x orders must be at most {MAX_ORDERS:,}")
        if self.shutdown not in SHUTDOWNS:
            raise RunError(f"shutdown must be one of {', '.join(SHUTDOWNS)}")
        if self.put_timeout is not None and not 0 <= self.put_timeout <= 86400:
            raise RunError(f"put timeout must be from 0 to a day, got {self.put_timeout}")
        if self.get_timeout is not None and not 0 < self.get_timeout <= 86400:
            raise RunError(
                f"get timeout must be more than 0 and at most a day, got {self.get_timeout}"
            )
        if self.get_timeout is not None and self.shutdown == "join":
            raise RunError(
                "a get timeout does not fit the join shutdown: a clerk that goes home "
                "leaves the producers waiting in join() forever"
            )
        for _, _, point in self.kill_at:
            if point not in CLERK_KILL_POINTS:
                raise RunError(f"unknown clerk kill point {point!r}")


@dataclass(frozen=True)
class QueueStats:
    """Per producer and per clerk figures, and the order accounting."""

    producers: list[dict[str, Any]]
    clerks: list[dict[str, Any]]
    submitted: int
    accepted: int
    rejected: int
    left_in_queue: int
    shutdown: str
    batch: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "producers": self.producers,
            "clerks": self.clerks,
            "submitted": self.submitted,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "left_in_queue": self.left_in_queue,
            "shutdown": self.shutdown,
            "batch": self.batch,
        }


def _stats(
    sale: Sale, config: QueueConfig, children: Children, left: int, daemons: bool
) -> QueueStats:
    rows = list(sale.rows.values())
    producers: list[dict[str, Any]] = []
    for p in range(config.producers):
        mine = [r for r in rows if r.producer == p]
        rejected = sum(1 for r in mine if (r.reason or "").startswith(BUSY_PREFIX))
        producers.append(
            {
                "producer": p,
                "pid": children.pids.get(("producer", p)),
                "submitted": len(mine),
                "accepted": len(mine) - rejected,
                "rejected": rejected,
            }
        )
    clerks: list[dict[str, Any]] = []
    for c in range(config.clerks):
        mine = [r for r in rows if r.clerk == c]
        batches = {(r.t_search, r.t_end) for r in mine if r.t_search is not None and r.t_end}
        code = children.exitcode(("clerk", c)) if ("clerk", c) in children.pids else None
        clerks.append(
            {
                "clerk": c,
                "pid": children.pids.get(("clerk", c)),
                "taken": len(mine),
                "sold": sum(1 for r in mine if r.result == "ok"),
                "busy_s": round(
                    sum(b - a for a, b in batches if a is not None and b is not None), 6
                ),
                "exit": (
                    "stopped at the end (a daemon)"
                    if daemons and code == -signal.SIGKILL
                    else describe_exit(code)
                ),
            }
        )
    submitted = len(rows)
    rejected = sum(int(p["rejected"]) for p in producers)
    return QueueStats(
        producers,
        clerks,
        submitted,
        submitted - rejected,
        rejected,
        left,
        config.shutdown,
        config.batch,
    )


def run_queue(
    config: QueueConfig,
    progress: Callable[[Progress], None] | None = None,
) -> RunResult:
    """Run the order queue: producers submit, clerks sell, nothing lost, nothing hangs."""
    sale = Sale(
        config,
        config.producers * config.orders,
        {
            "producers": config.producers,
            "orders": config.orders,
            "clerks": config.clerks,
            "queue_size": config.queue_size,
            "shutdown": config.shutdown,
            "batch": config.batch,
            "put_timeout": config.put_timeout,
            "get_timeout": config.get_timeout,
        },
    )
    try:
        return _sell(config, sale, progress)
    finally:
        sale.writer.close()  # also when the run fails: no history is left open


def _sell(
    config: QueueConfig, sale: Sale, progress: Callable[[Progress], None] | None
) -> RunResult:
    raise_fd_limit(config.producers + config.clerks)
    ctx = multiprocessing.get_context(config.start_method)
    channel = Channel(ctx)
    gate = Gate(ctx)
    join = config.shutdown == "join"
    orders = ctx.JoinableQueue(config.queue_size) if join else ctx.Queue(config.queue_size)
    tokens = STRATEGIES[config.strategy].tokens(ctx)
    children = Children(ctx, config.start_method, close_in_child=[gate.writer, channel.reader])
    kill_at = config.kill_at
    pauser = Pauser([], children.pids)
    if config.chaos is not None:
        kill_at = kill_at or config.chaos.clerk_kills(
            config.clerks, config.producers * config.orders
        )
        keys = [("clerk", c) for c in range(config.clerks)]
        keys += [("producer", p) for p in range(config.producers)]
        pauser = Pauser(config.chaos.pauses(keys), children.pids)
    plan = OrderPlan(
        sale=config.plan(),
        orders=config.orders,
        put_timeout=config.put_timeout,
        get_timeout=config.get_timeout,
        shutdown=config.shutdown,
        batch=config.batch,
        kill_at=kill_at,
    )
    first = next(tokens)
    lock_watch = LockWatch(first if config.strategy == "process" else None, ABANDON_WINDOW)
    watch = _Watch(config, sale, children, orders, pauser, lock_watch)
    aborted: str | None = None
    interrupted = False
    t0 = time.monotonic()
    left = 0
    try:
        for c in range(config.clerks):
            token = first if c == 0 else next(tokens)
            clerk_args = (plan, c, token, channel.writer, gate.reader, orders)
            children.start(("clerk", c), run_clerk, clerk_args)
        for p in range(config.producers):
            producer_args = (plan, p, channel.writer, gate.reader, orders)
            children.start(("producer", p), run_producer, producer_args)
        t0 = time.monotonic()
        gate.open()
        pauser.start(t0)
        aborted = watch.collect(channel, progress)
    except KeyboardInterrupt:
        interrupted = True
        aborted = "interrupted"
    finally:
        pauser.resume_all()
        children.signal(children.alive(), signal.SIGKILL)
        children.reap(time.monotonic() + REAP_TIMEOUT)
        watch.drain(channel)
        left = _drain_queue(orders, sale)
        for oid in sale.pending():
            row = sale.rows[oid]
            if row.clerk is not None and row.clerk in watch.dead_clerks:
                why = f"clerk {row.clerk} {watch.dead_clerks[row.clerk]} with it in hand"
            elif lock_watch.abandoned and row.clerk is not None:
                # Its clerk was waiting for a lock only the dead could hold.
                sale.record(
                    {"type": "fail", "buyer": oid, "reason": ABANDONED, "t": time.monotonic()}
                )
                continue
            elif interrupted:
                why = "interrupted"
            elif aborted:
                why = "stopped by the watchdog"
            else:
                why = "accepted but never answered"
            sale.unknown(oid, why)
        orders.cancel_join_thread()  # the sentinels' feeder has no reader left
        orders.close()
        channel.close()
        gate.close()
    # Under the join shutdown a clean run ends by stopping the daemon clerks.
    daemons = join and aborted is None
    report = None
    if config.chaos is not None:
        doomed = {("clerk", c) for c, _, _ in kill_at}
        killed = sum(1 for k in doomed if children.exitcode(k) == -signal.SIGKILL)
        report = chaos_report(config.chaos, len(doomed), killed, pauser.paused)
    stats = _stats(sale, config, children, left, daemons)
    result = sale.finish(t0, aborted, queue=stats, chaos=report)
    if interrupted:
        raise KeyboardInterrupt
    return result


def _drain_queue(orders: Any, sale: Sale) -> int:
    """Orders still in the queue when everyone has stopped: sold to nobody."""
    left = 0
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        try:
            oid = orders.get(timeout=0.05)
        except (queue_errors.Empty, OSError, EOFError, ValueError):
            break
        if oid is None:
            continue
        left += 1
        if sale.row(oid).result == "pending":
            sale.record(
                {
                    "type": "fail",
                    "buyer": oid,
                    "reason": "unsold: left in the queue when the clerks stopped",
                    "t": time.monotonic(),
                }
            )
    return left


class _Watch:
    """The parent's loop: record events, shut down in order, notice deaths, keep deadlines."""

    def __init__(
        self,
        config: QueueConfig,
        sale: Sale,
        children: Children,
        orders: Any,
        pauser: Pauser,
        lock_watch: LockWatch,
    ) -> None:
        self.pauser = pauser
        self.lock_watch = lock_watch
        self.config = config
        self.sale = sale
        self.children = children
        self.orders = orders
        self.dead_clerks: dict[int, str] = {}
        self.sentinels = 0

    def record(self, events: list[dict[str, Any]]) -> None:
        for ev in events:
            if ev["type"] == "take":
                self.sale.writer.write(ev)
                for oid in ev["orders"]:
                    self.sale.row(oid).clerk = ev["clerk"]
            else:
                self.sale.record(ev)
                self.lock_watch.passed(ev, time.monotonic())

    def drain(self, channel: Channel) -> None:
        self.record(channel.drain())

    def _exited(self, kind: str, n: int) -> list[int | None]:
        return [self.children.exitcode((kind, i)) for i in range(n)]

    def collect(self, channel: Channel, progress: Callable[[Progress], None] | None) -> str | None:
        cfg = self.config
        join = cfg.shutdown == "join"
        last_event = time.monotonic()
        last_shown = 0.0
        while True:
            self.pauser.tick()
            wait = self.pauser.next_in()
            events = channel.get(timeout=0.02 if wait is None else min(0.02, wait))
            now = time.monotonic()
            if events:
                self.record(events)
                last_event = now
            producers = self._exited("producer", cfg.producers)
            clerks = self._exited("clerk", cfg.clerks)
            for c, code in enumerate(clerks):
                if code not in (None, 0) and c not in self.dead_clerks:
                    self.dead_clerks[c] = f"died ({describe_exit(code)})"
                    self.sale.notes.append(f"clerk {c} {self.dead_clerks[c]}")
                    self.lock_watch.died(now)
            for p, code in enumerate(producers):
                note = f"producer {p} died ({describe_exit(code)})"
                if code not in (None, 0) and note not in self.sale.notes:
                    self.sale.notes.append(note)
            producers_done = all(code is not None for code in producers)
            clerks_done = all(code is not None for code in clerks)
            quiet = now - last_event
            if join:
                if producers_done:
                    self.drain(channel)
                    return None  # every order is task_done(): the daemon clerks go
                if self.dead_clerks and quiet > JOIN_GRACE:
                    dead = ", ".join(f"clerk {c} {why}" for c, why in self.dead_clerks.items())
                    return (
                        f"{dead} with orders in hand: JoinableQueue.join() would wait forever "
                        "for their task_done(); stopped"
                    )
            else:
                if producers_done and self.sentinels < cfg.clerks:
                    self._send_sentinels(clerks)
                if producers_done and clerks_done:
                    self.drain(channel)
                    return None
            # Producers go quiet only when blocked on a full queue nobody reads.
            if clerks_done and not producers_done and quiet > 1.0:
                return "every clerk has stopped but producers are still waiting to submit; stopped"
            live = self.sale.live  # counters: sale.pending() is O(orders) per message
            waiting = live.done < live.submitted and not clerks_done
            if message := self.lock_watch.check(now, waiting):
                return message
            if quiet > cfg.stall_timeout:
                return f"nothing reported for {cfg.stall_timeout:g}s; stopped by the watchdog"
            if progress is not None and now - last_shown > 0.05:
                try:
                    self.sale.live.queue_depth = self.orders.qsize()
                except NotImplementedError:  # macOS has no sem_getvalue
                    self.sale.live.queue_depth = None
                progress(self.sale.live)
                last_shown = now

    def _send_sentinels(self, clerks: list[int | None]) -> None:
        """One None per clerk (tutorial section 3), without ever blocking."""
        if all(code is not None for code in clerks):
            return  # nobody left to read them
        while self.sentinels < self.config.clerks:
            try:
                self.orders.put(None, timeout=0.01)
            except queue_errors.Full:
                return  # the clerks are still busy; try again next round
            self.sentinels += 1
