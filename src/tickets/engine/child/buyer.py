"""A buyer, run in a child process: the tutorial's purchase, watched from outside.

:func:`purchase` is the tutorial's ``Foo`` and ``get()``, nothing more: look
at what is left, and if anything is, take the lock, read the count, wait
out the write delay, write ``count - 1`` and release. Everything else wraps
it from outside (:mod:`tickets.engine.child.session`): a
:class:`~tickets.engine.child.session.BuyerSession` (the store as this buyer
sees it) times every step, reports the buyer's events to the parent and
kills the buyer at a chaos run's kill point; a
:class:`~tickets.engine.child.session.WatchedLock` builds the strategy's lock
only when it is first needed and notes when it was taken. How the purchase
ended is said in the words of :mod:`tickets.check.events`.

Children never print (see :mod:`tickets.engine.child`): they report over the event
pipe, and their stdout and stderr go to /dev/null.
"""

from __future__ import annotations

import os
import time

from ...check.events import classify, completed, invoke, locked, never_started, sold, sold_out
from ...constants import TYPE_CHECKING
from ...stores import StoreError
from ...stores.base import Refused
from .pipe import EventWriter
from .session import BuyerSession, WatchedLock

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractContextManager
    from multiprocessing.connection import Connection
    from typing import Protocol

    from ...check.events import Completion, Outcome
    from ...locking.strategies import Token
    from .plan import BuyerPlan

    Purchase = Callable[[BuyerSession, WatchedLock], "int | None"]

    class GateEnd(Protocol):
        """The start gate: readable once every buyer has started."""

        def poll(self, timeout: float) -> bool: ...


def purchase(session: BuyerSession, lock: AbstractContextManager[object]) -> int | None:
    """One buyer: the seat it got (the count it decremented from), or None."""
    if session.search() == 0:
        return None  # sold out: walk away rather than queue for the lock
    if session.takes:
        return session.take()  # the store's own indivisible take: no lock around it
    while True:
        try:
            with lock:
                count = session.read()
                if count > 0:
                    session.wait()  # the simulated write delay: the race window
                    session.write(count - 1)
                    return count
            return None
        except Refused:  # the database could not serialize it: real code runs it again
            if not session.again():
                raise


def quiet() -> None:
    """Send this process's stdout and stderr to /dev/null."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)


def outcome_of(buy: Purchase, session: BuyerSession, lock: WatchedLock) -> Outcome:
    """Run a purchase and say how it ended, as a history event's fields."""
    try:
        seat = buy(session, lock)
    except Exception as exc:
        # Inside the critical section a failure may or may not have reached
        # the store: the outcome is unknown, not a failure.
        return classify(exc, lock.t_locked is not None or session.changing)
    outcome = sold_out() if seat is None else sold(seat)
    if lock.release_error is not None:
        outcome.setdefault("reason", lock.release_error)
    return outcome


def buy_and_report(plan: BuyerPlan, session: BuyerSession, lock: WatchedLock) -> None:
    """One purchase, the built-in one or the user's (``--buy``), and its outcome sent."""
    if plan.buy is not None:  # the user's own code buys
        from .user_buyer import load
        from .user_buyer import outcome as user_outcome

        strategy = plan.strategy
        hollow = strategy.name if strategy.sells_by_take(session.store) else None
        outcome = user_outcome(load(plan.buy), session, lock, plan.log, hollow)
    else:
        outcome = outcome_of(purchase, session, lock)
    session.report(outcome, lock.t_locked if session.t_taken is None else session.t_taken)


def failure(session: BuyerSession | None, buyer: int, exc: Exception) -> Completion:
    """The outcome of a buyer stopped by an error outside its purchase: past
    the point where it may have changed the store, unknown; before it, a fail."""
    began = session is not None and (session.changing or session.t_taken is not None)
    return completed(classify(exc, began), {"buyer": buyer}, time.monotonic())


def run_buyer(
    plan: BuyerPlan,
    buyer: int,
    token: Token,
    events: int | Connection,
    gate: GateEnd,
    *,
    silence: bool = True,
    orphaned: Callable[[], bool] | None = None,
) -> None:
    """Entry point of a buyer process. ``events`` is the event pipe's write
    end, ``gate`` the start gate (see tickets.engine.children); ``silence=False``
    when stdout and stderr already go nowhere, as under the launcher;
    ``orphaned()`` says whether the parent has died (checked just before
    the store is written: a sale the parent cannot record is not made)."""
    if silence:
        quiet()
    writer = EventWriter.over(events)
    session: BuyerSession | None = None
    try:
        session = BuyerSession(plan, buyer, writer, plan.delays.for_buyer(plan.seed, buyer))
        session.orphaned = orphaned
        # EOF on the gate pipe: every buyer has started.
        if not gate.poll(plan.gate_timeout):
            writer.send(completed(never_started(), session.base, time.monotonic()))
            return
        holder = locked(os.getpid())
        announce = (lambda: writer.send(holder)) if plan.strategy.reports_holder else None
        buy_and_report(plan, session, WatchedLock(plan, session.store, token, announce))
    except Exception as exc:  # reported, never printed: the parent renders
        event = failure(session, buyer, exc)
        event["pid"] = os.getpid()
        writer.send(event)


class _SoldOutSession(BuyerSession):
    """A session that always finds the sale sold out: the warm-up's, which
    runs a buyer's whole path without ever taking the lock or writing."""

    def search(self) -> int | None:
        super().search()  # sends its invoke to /dev/null, or holds it back
        self.held = self.held or invoke(self.base, self.timing["t_search"])
        return 0


def warm_up(plan: BuyerPlan, events: EventWriter, gate: GateEnd, rounds: int = 10) -> None:
    """Run a buyer's steps a few times in the process that forks buyers.

    CPython 3.11 rewrites a function's bytecode in place ("quickening") and
    fills its caches as the function runs. Done here once, every buyer
    inherits the result; otherwise each buyer does that work itself and
    copies every page it writes (a buyer's search cost ~0.7 ms less, warm).
    Nothing is changed: the store is only read, the lock is built but never
    taken (which also imports what it needs), and the events go to
    ``events``, which the caller points at /dev/null; ``gate`` must be ready.
    """
    calm = plan._replace(kill_at=())
    for _ in range(rounds):
        plan.delays.for_buyer(plan.seed, 0)
        session = _SoldOutSession(calm, 0, events, (0.0, 0.0))
        gate.poll(0)
        lock = WatchedLock(calm, session.store, None)
        session.report(outcome_of(purchase, session, lock), lock.t_locked)
        try:
            plan.strategy.warm_up(session.store, plan.lock_timeout)
        except StoreError:
            pass
        session.store.close()  # no connection crosses a fork
