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
from typing import Any

from .. import store
from ..locks import LockTimeout, get
from .buyer import die, quiet
from .events import Batcher, EventWriter
from .plan import BuyerPlan, Draws, OrderPlan

SENTINEL = None
#: Where a chaos run may kill a clerk (see ``OrderPlan.kill_at``).
CLERK_KILL_POINTS = ("took", "locked", "written")


def order_id(plan: OrderPlan, producer: int, i: int) -> int:
    return producer * plan.orders + i


def run_producer(plan: OrderPlan, producer: int, events: Any, gate: Any, orders: Any) -> None:
    """Submit ``plan.orders`` orders; with the join shutdown, wait until all are handled."""
    quiet()
    out = Batcher(EventWriter.over(events))
    base = {"pid": os.getpid(), "producer": producer}
    rng = Draws(plan.sale.seed, 1, producer)
    if not gate.poll(plan.sale.gate_timeout):
        return
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
        for oid in ids:
            out.add({"type": "invoke", "buyer": oid, **base, "t_start": t, "t": t})
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
                reason = "busy: the order queue stayed full, try again"
                t_fail = time.monotonic()
                out.add({"type": "fail", "buyer": oid, **base, "reason": reason, "t": t_fail})
    out.flush()
    if plan.shutdown == "join":
        orders.join()  # tutorial section 4: wait until every order is task_done()
    # The queue's feeder thread must hand over every order before this
    # process leaves with os._exit (no atexit runs in a forked child).
    orders.close()
    orders.join_thread()


def run_clerk(plan: OrderPlan, clerk: int, token: Any, events: Any, gate: Any, orders: Any) -> None:
    """Sell orders from the queue until a sentinel, an idle timeout, or being killed."""
    quiet()
    sale = plan.sale
    out = Batcher(EventWriter.over(events))
    base = {"pid": os.getpid(), "clerk": clerk}
    lock = get(sale.strategy).child_lock(token, sale.store, sale.lock_timeout)
    rng = Draws(sale.seed, 2, clerk)
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
            out.add({"type": "take", "clerk": clerk, "pid": base["pid"], "orders": taken,
                     "t": time.monotonic()})  # fmt: skip
            out.flush()
            sell(sale, lock, taken, point, base, out, rng)
            out.flush()  # every confirmation leaves only after the write that records it
            handled += len(taken)
            if plan.shutdown == "join":
                for _ in taken:
                    orders.task_done()
        if stop:
            return


def take_orders(plan: OrderPlan, orders: Any) -> tuple[list[int], bool]:
    """The next order and up to ``batch - 1`` more already waiting, and whether
    to stop after them (a sentinel, or idle for ``get_timeout``)."""
    join = plan.shutdown == "join"
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
            if join:
                orders.task_done()
            return taken, True
        taken.append(oid)
    return taken, False


def sell(
    sale: BuyerPlan,
    lock: Any,
    taken: list[int],
    point: str | None,
    base: dict[str, Any],
    out: Batcher,
    rng: Draws,
) -> None:
    """Sell ``taken`` under one lock acquire and (at most) one write."""
    t_take = time.monotonic()
    try:
        lock.acquire()
    except LockTimeout:
        for oid in taken:
            busy = {"type": "fail", "buyer": oid, **base, "reason": "busy", "t_search": t_take}
            out.add({**busy, "t": time.monotonic()})
        return
    t_locked = time.monotonic()
    if sale.strategy == "process":  # who holds the run's lock (tickets.run.abandoned_lock)
        out.add({"type": "locked", "pid": base["pid"]})
        out.flush()
    try:
        outcomes = sell_locked(sale, taken, point, rng)
    except Exception as exc:
        # Inside the critical section: whether the write landed is unknown.
        outcomes = [{"type": "info", "buyer": oid, "reason": f"error: {exc}"} for oid in taken]
    try:
        lock.release()
    except Exception:
        pass
    t = time.monotonic()
    for ev in outcomes:
        out.add({**ev, **base, "t_search": t_take, "t_locked": t_locked, "t": t})


def sell_locked(
    sale: BuyerPlan, taken: list[int], point: str | None, rng: Draws
) -> list[dict[str, Any]]:
    """Holding the lock: read the count, give each order a seat while any is
    left, and write what is left once (group commit)."""
    count = store.load(sale.store)
    if point == "locked":
        die()
    left = count
    outcomes: list[dict[str, Any]] = []
    for oid in taken:
        if left > 0:
            outcomes.append({"type": "ok", "buyer": oid, "seat": left})
            left -= 1
        else:
            outcomes.append({"type": "fail", "buyer": oid, "reason": "sold out"})
    if left != count:
        if sale.delays.write:
            time.sleep(rng.uniform(sale.delays.write / 2, sale.delays.write))
        store.save(sale.store, left, fsync=sale.fsync)
        if point == "written":
            die()
    return outcomes
