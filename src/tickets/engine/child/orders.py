"""The order queue's producer and clerk bodies (the tutorial's sections 2-4).

Run in producer and clerk processes, which the parent forks itself (this
module may import ``queue`` and ``typing``: the launcher never loads it).
Producers are the buyers' front doors: each submits its orders to one
bounded ``multiprocessing.Queue`` (or ``JoinableQueue``). Clerks take orders
off the queue and sell from the store under the run's lock strategy, one
order at a time or, with ``batch``, every order already waiting under one
lock acquire and one write (group commit), confirming each only after that
write. Like buyers, they never print and report over the event pipe.

An order's events use the history's buyer model with the order number as
``buyer``: ``invoke`` when its producer submits it, then ``fail`` (``busy``:
the queue stayed full) from the producer, or ``ok`` / ``fail`` from the clerk
that sold it.
"""

from __future__ import annotations

import os
import queue as queue_errors
import time
from multiprocessing.queues import JoinableQueue
from typing import TYPE_CHECKING

from ...check.events import (
    classify,
    completed,
    invoke,
    locked,
    queue_full,
    sold,
    sold_out,
    take,
)
from ...locking.locks import BuyerLock, LockTimeout
from ...stores import NoEffect, Store, WriteUnknown, open_store
from ...stores.base import Refused
from .buyer import quiet
from .pipe import Batcher, EventWriter
from .plan import BuyerPlan, Draws, OrderPlan
from .session import die

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.queues import Queue

    from ...check.events import Outcome, Phases, Who

if TYPE_CHECKING:
    from ...locking.locks import BuyerLock
    from ...locking.strategies import Token

SENTINEL = None
#: Where a chaos run may kill a clerk (see ``OrderPlan.kill_at``).
CLERK_KILL_POINTS = ("took", "locked", "written")


def order_id(plan: OrderPlan, producer: int, i: int) -> int:
    return producer * plan.orders + i


def run_producer(
    plan: OrderPlan, producer: int, events: Connection, gate: Connection, orders: Queue[int | None]
) -> None:
    """Submit ``plan.orders`` orders; with the join shutdown, wait until all are handled."""
    quiet()
    if not gate.poll(plan.sale.gate_timeout):
        return
    produce(plan, producer, EventWriter.over(events), orders)
    leave(orders)


def run_producers(
    plan: OrderPlan,
    producers: range,
    events: Connection,
    gate: Connection,
    orders: Queue[int | None],
) -> None:
    """A worker's producers (``queue --workers``), each on a thread of its
    own, all submitting at once as producer processes do; then the worker
    leaves as one producer would."""
    import threading  # a worker's only: see tickets.engine.child.worker

    quiet()
    if not gate.poll(plan.sale.gate_timeout):
        return
    writer = EventWriter.over(events)  # each producer's batches: one atomic write each
    threading.stack_size(256 * 1024)
    threads = [
        threading.Thread(target=produce, args=(plan, p, writer, orders), daemon=True)
        for p in producers
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    leave(orders)


def leave(orders: Queue[int | None]) -> None:
    """A producer's (or a worker's) last steps, once every order is submitted."""
    if isinstance(orders, JoinableQueue):  # the join shutdown's queue
        orders.join()  # tutorial section 4: wait until every order is task_done()
    # The queue's feeder thread must hand over every order before this
    # process leaves with os._exit (no atexit runs in a forked child).
    orders.close()
    orders.join_thread()


def produce(plan: OrderPlan, producer: int, writer: EventWriter, orders: Queue[int | None]) -> None:
    """One producer's orders into the queue, each invoked first."""
    out = Batcher(writer)
    pid = os.getpid()
    rng = Draws(plan.sale.seed, 1, producer)
    # Every order's invoke leaves before the order goes into the queue, so
    # an order a clerk or the parent finds is always one the history knows.
    # Without arrival gaps they go 32 at a time (a pipe write per order
    # would cap the queue mode's throughput).
    chunk = 1 if plan.sale.delays.search else 32
    for first in range(0, plan.orders, chunk):
        ids = [order_id(plan, producer, i) for i in range(first, min(first + chunk, plan.orders))]
        if plan.sale.delays.search:
            time.sleep(rng.uniform(0, plan.sale.delays.search))
        t = time.monotonic()
        submitted: Phases = {"producer": producer, "t_start": t}
        for oid in ids:
            out.add(invoke({"buyer": oid, "pid": pid}, t, submitted))
        out.flush()
        for oid in ids:
            try:
                if plan.put_timeout == 0:
                    orders.put_nowait(oid)
                elif plan.put_timeout is None:
                    orders.put(oid)
                else:
                    orders.put(oid, timeout=plan.put_timeout)
            except queue_errors.Full:
                who: Who = {"buyer": oid, "pid": pid}
                out.add(completed(queue_full(), who, time.monotonic(), {"producer": producer}))
    out.flush()


def run_clerk(
    plan: OrderPlan,
    clerk: int,
    token: Token,
    events: Connection,
    gate: Connection,
    orders: Queue[int | None],
) -> None:
    """Sell orders from the queue until a sentinel, an idle timeout, or being killed."""
    quiet()
    sale = plan.sale
    out = Batcher(EventWriter.over(events))
    pid = os.getpid()
    store = open_store(sale.store, sale.lock_timeout, sale.fsync)
    lock = sale.strategy.child_lock(token, store, sale.lock_timeout, sale.lease_ttl, sale.fencing)
    pause = dict(sale.pause_at).get(clerk)
    session = ClerkSession(sale, store, lock, Draws(sale.seed, 2, clerk), pid, clerk, pause)
    die_at = {after: point for c, after, point in plan.kill_at if c == clerk}
    handled = 0
    if not gate.poll(sale.gate_timeout):
        return
    while True:
        taken, stop = take_orders(plan, orders)
        if taken:
            batch = range(handled, handled + len(taken))
            point = next((die_at[n] for n in batch if n in die_at), None)
            if point == "took":
                die()
            # Said before selling, so a clerk that dies is known to have held these.
            out.add(take(clerk, pid, taken, time.monotonic()))
            out.flush()
            sell(session, taken, point, out)
            out.flush()  # every confirmation leaves only after the write that records it
            handled += len(taken)
            if isinstance(orders, JoinableQueue):  # the join shutdown's queue
                for _ in taken:
                    orders.task_done()
        if stop:
            return


def take_orders(plan: OrderPlan, orders: Queue[int | None]) -> tuple[list[int], bool]:
    """The next order and up to ``batch - 1`` more already waiting, and whether
    to stop after them (a sentinel, or idle for ``get_timeout``)."""
    taken: list[int] = []
    while len(taken) < plan.batch:
        try:
            if taken:
                oid = orders.get_nowait()
            elif plan.get_timeout is None:
                oid = orders.get()
            else:
                oid = orders.get(timeout=plan.get_timeout)
        except queue_errors.Empty:
            return taken, not taken  # idle for get_timeout: this clerk goes home
        if oid is SENTINEL:
            if isinstance(orders, JoinableQueue):  # the join shutdown's queue
                orders.task_done()
            return taken, True
        taken.append(oid)
    return taken, False


class ClerkSession:
    """What a clerk sells with: its own store handle, the strategy's lock,
    its seeded write delays, and how long a chaos run pauses it holding the
    lock between its read and its write (None: not at all)."""

    def __init__(
        self,
        sale: BuyerPlan,
        store: Store,
        lock: BuyerLock,
        rng: Draws,
        pid: int,
        clerk: int,
        pause: float | None = None,
    ) -> None:
        self.sale = sale
        self.store = store
        self.lock = lock
        self.rng = rng
        self.pause = pause
        self.takes = sale.strategy.sells_by_take(store)
        #: does its take go WATCH ... EXEC, retried (Redis transaction)? Decided once
        self.optimistic = self.takes and sale.strategy.takes_optimistically(store)
        self.pid = pid
        self.clerk = clerk
        #: the last batch's optimistic transaction: how often it was tried again
        self.retries = 0
        #: was its last batch refused as unserializable (PostgreSQL)? Then
        #: it may run again (``--retries``)
        self.refused = False

    def wait(self) -> None:
        if self.sale.delays.write:
            time.sleep(self.rng.uniform(self.sale.delays.write / 2, self.sale.delays.write))
        if self.pause:  # chaos: holding the lock (or the lease) far too long
            time.sleep(self.pause)


def sell(session: ClerkSession, taken: list[int], point: str | None, out: Batcher) -> None:
    """Sell ``taken`` under one lock acquire and (at most) one write; or, with
    a store's own take, in one call to the store (a script, a transaction)."""
    t_take = time.monotonic()
    tried_again = 0
    while True:
        try:
            if not session.takes:
                session.lock.acquire()
        except LockTimeout as exc:
            busy = classify(exc, in_critical_section=False)
            turned_away: Phases = {"clerk": session.clerk, "t_search": t_take}
            t_busy = time.monotonic()  # one batch, one span (see tickets.check.contention)
            for oid in taken:
                who: Who = {"buyer": oid, "pid": session.pid}
                out.add(completed(busy, who, t_busy, turned_away))
            return
        t_locked = time.monotonic()
        if session.sale.strategy.reports_holder:  # who holds it (tickets.engine.abandoned_lock)
            out.add(locked(session.pid))
            out.flush()
        outcomes = sell_guarded(session, taken, point)
        # The database could not serialize the batch: run it again, as real code does.
        if not session.refused or tried_again >= session.sale.retries:
            break
        tried_again += 1
    session.retries += tried_again
    t = time.monotonic()
    pid = session.pid
    sold_by: Phases = {"clerk": session.clerk, "t_search": t_take, "t_locked": t_locked}
    for oid, outcome in zip(taken, outcomes, strict=True):
        event = completed(outcome, {"buyer": oid, "pid": pid}, t, sold_by)
        if session.retries:  # the batch's WATCH retries, on each of its orders
            event["retries"] = session.retries
        out.add(event)


def sell_guarded(session: ClerkSession, taken: list[int], point: str | None) -> list[Outcome]:
    """Sell, and say what is known when it failed: refused (nothing
    changed), or unknown (inside the critical section, the write may have
    landed). The lock is let go (a transaction committed) before anyone
    is told they have a ticket."""
    failed = True
    session.refused = False
    try:
        outcomes = sell_locked(session, taken, point)
        failed = False
    except Exception as exc:  # refused; busy (an optimistic take that never got through); unknown
        session.refused = isinstance(exc, Refused)
        outcome = classify(exc, in_critical_section=True)
        outcomes = [outcome for _ in taken]
        session.retries = 0  # no sale to note them on
    if session.takes:
        return outcomes
    try:
        if failed:
            session.lock.abort()  # a transaction rolls back
        else:
            session.lock.release()  # a transaction commits: it may be refused
    except (NoEffect, WriteUnknown) as exc:  # nobody got a ticket; the sales may or may not stand
        session.refused = isinstance(exc, Refused)
        outcome = classify(exc, in_critical_section=True)
        return [outcome for _ in taken]
    except Exception:
        pass  # a lock that failed to let go: the write itself is done
    return outcomes


def sell_locked(session: ClerkSession, taken: list[int], point: str | None) -> list[Outcome]:
    """Holding the lock: read the count, give each order a seat while any is
    left, and write what is left once (group commit). With a store's own
    take, one call does the read and the write."""
    store = session.store
    session.retries = 0
    if session.takes:
        if point == "locked":
            die()
        if session.optimistic:
            count, session.retries = store.take_optimistic(
                len(taken), session.wait, session.sale.lock_timeout
            )
        else:
            count = store.take(len(taken))
        left = count - min(count, len(taken))
    else:
        count = store.load()
        if point == "locked":
            die()
        left = max(0, count - len(taken))
    outcomes: list[Outcome] = []
    seat = count
    for _ in taken:
        if seat > left:
            outcomes.append(sold(seat))
            seat -= 1
        else:
            outcomes.append(sold_out())
    if left != count and not session.takes:
        session.wait()
        store.save(left)
    if left != count and point == "written":
        die()
    return outcomes
