"""``tickets queue``: the producer-consumer model, parent side.

Producers put orders into one bounded queue, clerks sell from it (bodies in
:mod:`tickets.engine.child.orders`); the parent starts them behind the gate, shuts
them down the way ``shutdown`` says, and accounts for every order:

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

import queue as queue_errors
import signal
import time
from collections.abc import Callable, Hashable, Iterable
from typing import TYPE_CHECKING

from ..check.events import OPERATION_KINDS, QUEUE_FULL, abandoned, no_outcome, unsold
from ..errors import ConfigError
from .child.orders import run_clerk, run_producer, run_producers
from .child.plan import OrderPlan
from .children import Children, describe_exit
from .config import QueueConfig
from .harness import FINISHED, REAP_TIMEOUT, Harness, SaleMode, sell
from .ledger import OperationRow, Progress, RunResult
from .rows import QueueStats

if TYPE_CHECKING:
    from multiprocessing.queues import Queue

    from ..check.events import Message, ModeFields, Outcome
    from ..locking.strategies import Token
    from .rows import ClerkStats, ProducerStats

#: After a clerk died under the join shutdown, how long the others get to
#: finish what they hold before the run stops.
JOIN_GRACE = 0.5
#: Producers blocked on a full queue that no clerk reads go quiet: stop after this.
ORPHANED_PRODUCERS = 1.0


def run_queue(config: QueueConfig, progress: Callable[[Progress], None] | None = None) -> RunResult:
    """Run the order queue: producers submit, clerks sell, nothing lost, nothing hangs."""
    if not isinstance(config, QueueConfig):
        raise ConfigError(f"run_queue takes a QueueConfig, not a {type(config).__name__}")
    return sell(QueueMode(config), progress)


class QueueMode(SaleMode):
    config: QueueConfig
    tick = 0.02

    def __init__(self, config: QueueConfig) -> None:
        super().__init__(config)
        kill_at = config.kill_at
        if config.chaos is not None and not kill_at:
            kill_at = config.chaos.clerk_kills(config.clerks, self.total)
        sale = config.plan()
        if config.chaos is not None:  # clerks that pause holding the lock, by clerk
            sale = sale._replace(pause_at=config.chaos.held_pauses(config.clerks))
        self.plan = OrderPlan(
            sale,
            config.orders,
            config.put_timeout,
            config.get_timeout,
            config.shutdown,
            config.batch,
            kill_at,
        )
        self.join = config.shutdown == "join"
        self.orders: Queue[int | None] | None = None
        self.tokens: list[Token] = []
        self.dead_clerks: dict[int, str] = {}
        self.sentinels = 0
        self.clerks_done = False
        self.left_in_queue = 0

    @property
    def total(self) -> int:
        return self.config.producers * self.config.orders

    @property
    def processes(self) -> int:
        return (self.config.workers or self.config.producers) + self.config.clerks

    def producer_key(self, p: int) -> tuple[str, int]:
        """The process a producer runs in: its own, or its worker (``p % W``)."""
        workers = self.config.workers or 0
        return ("producers", p % workers) if workers else ("producer", p)

    def producer_keys(self) -> list[tuple[str, int]]:
        workers = self.config.workers or 0
        if workers:
            return [("producers", w) for w in range(workers)]
        return [("producer", p) for p in range(self.config.producers)]

    def run_fields(self) -> ModeFields:
        c = self.config
        return {
            "workers": c.workers,
            "producers": c.producers,
            "orders": c.orders,
            "clerks": c.clerks,
            "queue_size": c.queue_size,
            "shutdown": c.shutdown,
            "batch": c.batch,
            "put_timeout": c.put_timeout,
            "get_timeout": c.get_timeout,
        }

    @property
    def queue(self) -> Queue[int | None]:
        """The order queue (made with the children, before the run starts)."""
        assert self.orders is not None, "no queue before make_children"
        return self.orders

    def make_children(self, run: Harness) -> Children:
        size = self.config.queue_size
        self.orders = run.ctx.JoinableQueue(size) if self.join else run.ctx.Queue(size)
        self.tokens = self.config.strategy.hand_out(run.ctx, self.config.clerks)
        close = [run.gate.writer, run.events.reader]
        return Children(run.ctx, self.config.start_method, close_in_child=close)

    def start(self, run: Harness) -> str | None:
        gate, events, orders = run.gate.reader, run.events.writer, self.orders
        for c, token in enumerate(self.tokens):
            run.children.start(("clerk", c), run_clerk, (self.plan, c, token, events, gate, orders))
        workers = self.config.workers or 0
        for w in range(workers):  # producers on workers, a thread each
            share = range(w, self.config.producers, workers)
            run.children.start(
                ("producers", w), run_producers, (self.plan, share, events, gate, orders)
            )
        for p in range(0 if workers else self.config.producers):
            run.children.start(("producer", p), run_producer, (self.plan, p, events, gate, orders))
        return None

    def on_event(self, run: Harness, ev: Message, now: float, live: bool) -> None:
        if run.detector.heard(ev):
            return
        if ev["type"] == "take":
            run.ledger.write(ev)
            for oid in ev["orders"]:
                run.ledger.row(oid).clerk = ev["clerk"]
        elif ev["type"] in OPERATION_KINDS:  # no launcher here: nothing else comes
            run.ledger.record(ev)

    def _exits(self, run: Harness, kind: str, n: int) -> list[int | None]:
        return [run.children.exitcode((kind, i)) for i in range(n)]

    def _note_deaths(self, run: Harness, now: float) -> tuple[bool, bool]:
        """Note clerks and producers that died; are all producers, all clerks done?"""
        keys = self.producer_keys()
        producers = [run.children.exitcode(key) for key in keys]
        clerks = self._exits(run, "clerk", self.config.clerks)
        for c, code in enumerate(clerks):
            if code not in (None, 0) and c not in self.dead_clerks:
                self.dead_clerks[c] = f"died ({describe_exit(code)})"
                run.ledger.notes.append(f"clerk {c} {self.dead_clerks[c]}")
                run.drain()  # what it said before it died, "locked" among it
                run.detector.died(run.children.pids.get(("clerk", c)))
        for (kind, p), code in zip(keys, producers, strict=True):
            who = f"producer {p}" if kind == "producer" else f"the worker of producers {p}, …"
            note = f"{who} died ({describe_exit(code)})"
            if code not in (None, 0) and note not in run.ledger.notes:
                run.ledger.notes.append(note)
        self.clerks_done = all(code is not None for code in clerks)
        return all(code is not None for code in producers), self.clerks_done

    def step(self, run: Harness, now: float, quiet: float, heard: bool) -> str | None:
        producers_done, clerks_done = self._note_deaths(run, now)
        if self.join:
            if producers_done:
                run.drain()
                return FINISHED  # every order is task_done(): the daemon clerks go
            if self.dead_clerks and quiet > JOIN_GRACE:
                dead = ", ".join(f"clerk {c} {why}" for c, why in self.dead_clerks.items())
                return (
                    f"{dead} with orders in hand: JoinableQueue.join() would wait forever "
                    "for their task_done(); stopped"
                )
        else:
            if producers_done and self.sentinels < self.config.clerks and not clerks_done:
                self._send_sentinels()
            if producers_done and clerks_done:
                run.drain()
                return FINISHED
        # Producers go quiet only when blocked on a full queue nobody reads.
        if clerks_done and not producers_done and quiet > ORPHANED_PRODUCERS:
            return "every clerk has stopped but producers are still waiting to submit; stopped"
        return None

    def _send_sentinels(self) -> None:
        """One None per clerk (tutorial section 3), without ever blocking."""
        while self.sentinels < self.config.clerks:
            try:
                self.queue.put(None, timeout=0.01)
            except queue_errors.Full:
                return  # the clerks are still busy; try again next round
            self.sentinels += 1

    def stall_message(self, seconds: float) -> str:
        return f"nothing reported for {seconds:g}s; stopped by the watchdog"

    def before_progress(self, run: Harness) -> None:
        try:
            run.ledger.live.queue_depth = self.queue.qsize()
        except NotImplementedError:  # macOS has no sem_getvalue
            run.ledger.live.queue_depth = None

    def held_pauses(self) -> int:
        return len(self.plan.sale.pause_at)

    def pause_keys(self) -> Iterable[Hashable]:
        keys: list[Hashable] = [("clerk", c) for c in range(self.config.clerks)]
        return keys + list(self.producer_keys())

    def doomed(self) -> Iterable[Hashable]:
        return {("clerk", c) for c, _, _ in self.plan.kill_at}

    def stop(self, run: Harness, aborted: str | None) -> Iterable[Hashable]:
        # Everyone still running is killed at once: under the join shutdown
        # the clerks are daemons waiting for more, and they are done.
        killed: list[Hashable] = run.children.stop(time.monotonic() + REAP_TIMEOUT, kill_now=True)
        return killed

    def after_stop(self, run: Harness) -> None:
        """Orders still in the queue when everyone has stopped: sold to nobody."""
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            try:
                oid = self.queue.get(timeout=0.05)
            except (queue_errors.Empty, OSError, EOFError, ValueError):
                break
            if oid is None:
                continue
            self.left_in_queue += 1
            if run.ledger.row(oid).result == "pending":
                run.ledger.conclude(oid, unsold())

    def fate(self, run: Harness, number: int, killed: set[Hashable]) -> Outcome | None:
        clerk = run.ledger.rows[number].clerk
        if clerk is not None and clerk in self.dead_clerks:
            return no_outcome(f"clerk {clerk} {self.dead_clerks[clerk]} with it in hand")
        if run.detector.abandoned and clerk is not None:
            return abandoned()  # its clerk waited for a lock only the dead could hold
        return None

    def last_word(self, run: Harness, number: int, killed: set[Hashable]) -> str:
        return "accepted but never answered"

    def close(self) -> None:
        if self.orders is not None:
            self.orders.cancel_join_thread()  # the sentinels' feeder has no reader left
            self.orders.close()

    def stats(self, run: Harness, aborted: str | None) -> QueueStats:
        rows = list(run.ledger.rows.values())
        mine: dict[int, list[OperationRow]] = {}
        for r in rows:
            if r.producer is not None:
                mine.setdefault(r.producer, []).append(r)
        producers = [self._producer(run, p, mine.get(p, [])) for p in range(self.config.producers)]
        # Under the join shutdown a clean run ends by stopping the daemon clerks.
        daemons = self.join and aborted is None
        clerks = [self._clerk(run, c, rows, daemons) for c in range(self.config.clerks)]
        rejected = sum(int(p["rejected"]) for p in producers)
        return QueueStats(
            producers,
            clerks,
            len(rows),
            len(rows) - rejected,
            rejected,
            self.left_in_queue,
            self.config.shutdown,
            self.config.batch,
        )

    def _producer(self, run: Harness, p: int, mine: list[OperationRow]) -> ProducerStats:
        rejected = sum(1 for r in mine if r.reason == QUEUE_FULL)
        return {
            "producer": p,
            "pid": run.children.pids.get(self.producer_key(p)),
            "submitted": len(mine),
            "accepted": len(mine) - rejected,
            "rejected": rejected,
        }

    def _clerk(self, run: Harness, c: int, rows: list[OperationRow], daemons: bool) -> ClerkStats:
        mine = [r for r in rows if r.clerk == c]
        batches = {(r.t_search, r.t_end) for r in mine if r.t_search is not None and r.t_end}
        key = ("clerk", c)
        code = run.children.exitcode(key) if key in run.children.pids else None
        stopped = daemons and code == -signal.SIGKILL
        return {
            "clerk": c,
            "pid": run.children.pids.get(key),
            "taken": len(mine),
            "sold": sum(1 for r in mine if r.result == "ok"),
            "busy_s": round(sum(b - a for a, b in batches if a is not None and b is not None), 6),
            "exit": "stopped at the end (a daemon)" if stopped else describe_exit(code),
        }
