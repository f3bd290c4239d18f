"""The order queue's producer and clerk bodies (the tutorial's sections 2-4).

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
from dataclasses import dataclass
from typing import Any

from . import store
from .buyer import BuyerPlan, Draws, _die, _quiet
from .channel import Batcher
from .strategies import LockTimeout, get

SENTINEL = None
#: Where a chaos run may kill a clerk (see ``OrderPlan.kill_at``).
CLERK_KILL_POINTS = ("took", "locked", "written")


@dataclass(frozen=True)
class OrderPlan:
    """What producers and clerks of a run share."""

    sale: BuyerPlan
    orders: int  # per producer
    put_timeout: float | None  # None: block; 0: put_nowait
    get_timeout: float | None  # None: block until a sentinel
    shutdown: str  # "sentinel" | "join"
    batch: int
    #: (clerk, order count after which it dies, kill point)
    kill_at: tuple[tuple[int, int, str], ...] = ()


def order_id(plan: OrderPlan, producer: int, i: int) -> int:
    return producer * plan.orders + i


def run_producer(plan: OrderPlan, producer: int, events: Any, gate: Any, orders: Any) -> None:
    """Submit ``plan.orders`` orders; with the join shutdown, wait until all are handled."""
    _quiet()
    out = Batcher(events)
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
    _quiet()
    sale = plan.sale
    out = Batcher(events)
    base = {"pid": os.getpid(), "clerk": clerk}
    lock = get(sale.strategy).child_lock(token, sale.store, sale.lock_timeout)
    rng = Draws(sale.seed, 2, clerk)
    die = {after: point for c, after, point in plan.kill_at if c == clerk}
    handled = 0
    join = plan.shutdown == "join"
    if not gate.poll(sale.gate_timeout):
        return
    while True:
        try:
            if plan.get_timeout is None:
                first = orders.get()
            else:
                first = orders.get(timeout=plan.get_timeout)
        except queue_errors.Empty:
            return  # idle for get_timeout: this clerk goes home
        if first is SENTINEL:
            if join:
                orders.task_done()
            return
        taken = [first]
        stop = False
        while len(taken) < plan.batch:
            try:
                more = orders.get_nowait()
            except queue_errors.Empty:
                break
            if more is SENTINEL:
                if join:
                    orders.task_done()
                stop = True
                break
            taken.append(more)
        point = next((die[n] for n in range(handled, handled + len(taken)) if n in die), None)
        if point == "took":
            _die()
        # Said before selling, so a clerk that dies is known to have held these.
        out.add(
            {
                "type": "take",
                "clerk": clerk,
                "pid": base["pid"],
                "orders": taken,
                "t": time.monotonic(),
            }
        )
        out.flush()
        sell(sale, lock, taken, point, base, out, rng)
        out.flush()  # every confirmation leaves only after the write that records it
        handled += len(taken)
        if join:
            for _ in taken:
                orders.task_done()
        if stop:
            return


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
            out.add(
                {
                    "type": "fail",
                    "buyer": oid,
                    **base,
                    "reason": "busy",
                    "t_search": t_take,
                    "t": time.monotonic(),
                }
            )
        return
    t_locked = time.monotonic()
    outcomes: list[dict[str, Any]] = []
    try:
        count = store.load(sale.store)
        if point == "locked":
            _die()
        left = count
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
                _die()
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
