"""A buyer's session with the store, run in a child process: what wraps the
tutorial's purchase from outside.

A :class:`BuyerSession` is the store as one buyer sees it: it times every
step, reports the buyer's events to the parent and kills the buyer at a
chaos run's kill point. A :class:`WatchedLock` builds the strategy's lock
only when it is first needed and notes when it was taken. The purchase
itself (:func:`tickets.engine.child.buyer.purchase`), the user's own
(:mod:`tickets.engine.child.user_buyer`) and a worker's buyers on threads
(:mod:`tickets.engine.child.worker`) all buy through them.
"""

from __future__ import annotations

import os
import time

from ...check.events import LOCK_RELEASE_FAILED, NO_FIELDS, completed, invoke
from ...constants import TYPE_CHECKING
from ...stores import NoEffect, StoreError, WriteUnknown, open_store

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Protocol, TypeVar

    from ...check.events import Invoke, Message, Outcome, Phases, Who
    from ...locking.locks import BuyerLock
    from ...locking.strategies import Token
    from ...stores import Store
    from .plan import BuyerPlan

    class Sender(Protocol):
        """Where a session's events go: the event pipe, or a worker's shared batch."""

        def send(self, event: Message) -> None: ...

        def send_all(self, events: list[Message]) -> None: ...

    #: What a plan pairs with buyers: a kill point (str), a pause (float).
    Value = TypeVar("Value")
    #: The pairs of one plan field, and the dict made of them, by the pairs' id.
    Lookups = dict[int, tuple[tuple[tuple[int, Value], ...], dict[int, Value]]]


#: Where a chaos run may kill a buyer (see :class:`BuyerSession`).
BUYER_KILL_POINTS = ("search", "locked", "writing", "written")


def die() -> None:
    """A chaos kill: SIGKILL, as from outside (no cleanup, no last word)."""
    os.kill(os.getpid(), 9)


_KILL_AT: Lookups[str] = {}
_PAUSE_AT: Lookups[float] = {}


def lookup(pairs: tuple[tuple[int, Value], ...], made: Lookups[Value]) -> dict[int, Value]:
    """A plan's (buyer, value) pairs as a dict, made once per process (a
    worker's buyers share the plan: a dict each would cost them all) and
    kept in ``made``, one for each plan field."""
    known = made.get(id(pairs))
    if known is None or known[0] is not pairs:
        known = made[id(pairs)] = (pairs, dict(pairs))
    return known[1]


class BuyerSession:
    """The store as one buyer sees it: reads and writes, timed and reported.

    ``search()`` sends the buyer's ``invoke`` (held back when it sees none
    left, to go in one write with its ``fail``: one write, one wake-up of the
    parent); ``report()`` sends its outcome. A chaos run kills the buyer at
    ``kill_at``: after its search (``search``), holding the lock before it
    writes (``locked``), just before the write lands (``writing``: for the
    JSON file, with the new count in the temp file), or after the write
    (``written``); it pauses a buyer of ``pause_at`` between read and write.
    Under a strategy that sells by the store's own take (``atomic``, Redis
    ``transaction``) the buyer takes no lock: :meth:`take` is its sale.
    """

    def __init__(
        self, plan: BuyerPlan, buyer: int, events: Sender, delays: tuple[float, float]
    ) -> None:
        self.plan = plan
        self.events = events
        self.kill_at: str | None = lookup(plan.kill_at, _KILL_AT).get(buyer)
        self.pause: float | None = lookup(plan.pause_at, _PAUSE_AT).get(buyer)
        self.search_delay, self.write_delay = delays
        #: this buyer's own handle on the store (a connection is never shared)
        self.store: Store = open_store(plan.store, plan.lock_timeout, plan.fsync)
        self.takes = plan.strategy.sells_by_take(self.store)
        #: does its take go WATCH ... EXEC, retried (Redis transaction)? Decided
        #: once: a take is a direct call to the store
        self.optimistic = self.takes and plan.strategy.takes_optimistically(self.store)
        #: has it begun a call that may change the store? (then a failure is
        #: an unknown outcome, not a known one)
        self.changing = False
        #: how often an optimistic transaction (or a refused one) was tried again
        self.retries = 0
        #: when a take began: the store's own critical section (the history's t_locked)
        self.t_taken: float | None = None
        self.base: Who = {"buyer": buyer, "pid": os.getpid()}
        #: its search, repeated by its outcome
        self.timing: Phases = {}
        self.held: Invoke | None = None
        #: says whether the parent has died (see tickets.engine.child.launcher)
        self.orphaned: Callable[[], bool] | None = None

    def search(self) -> int | None:
        """The unlocked look after the network delay (None: unreadable)."""
        t_start = time.monotonic()
        if self.search_delay:
            time.sleep(self.search_delay)
        try:
            seen: int | None = self.store.load()
        except StoreError:
            seen = None
        t_search = time.monotonic()
        self.timing = {"t_start": t_start, "t_search": t_search, "seen": seen}
        invoked = invoke(self.base, t_search, {"t_start": t_start, "seen": seen})
        if seen == 0 and self.kill_at != "search":
            self.held = invoked
            return seen
        self.events.send(invoked)
        if self.kill_at == "search":
            die()
        return seen

    def begin(self) -> None:
        """The user's buyer: its invoke, sent before its function is called
        (it does its own search, if any)."""
        t = time.monotonic()
        self.timing = {"t_start": t, "t_search": t}
        self.events.send(invoke(self.base, t, {"t_start": t}))

    def read(self) -> int:
        count = self.store.load()
        if self.kill_at == "locked":
            die()
        return count

    def wait(self) -> None:
        if self.write_delay:
            time.sleep(self.write_delay)
        if self.pause:  # chaos: holding the lock (or the lease) far too long
            time.sleep(self.pause)

    def again(self) -> bool:
        """After the database refused the transaction: may it run again
        (``--retries``)? Counted on the outcome."""
        if self.retries >= self.plan.retries:
            return False
        self.retries += 1
        self.changing = False
        return True

    def _last_look(self) -> None:
        if self.orphaned is not None and self.orphaned():
            # The parent is gone: nobody would record this sale. Not made.
            os._exit(1)
        self.changing = True

    def write(self, count: int) -> None:
        self._last_look()
        dying = die if self.kill_at == "writing" else None
        self.store.save(count, before_write=dying)
        if self.kill_at == "written":
            die()

    def take(self) -> int | None:
        """Sell by the store's own take: the seat, or None when sold out."""
        if self.kill_at == "locked":
            die()
        self._last_look()
        self.t_taken = time.monotonic()
        if self.optimistic:  # WATCH ... EXEC
            seat, self.retries = self.store.take_optimistic(1, self.wait, self.plan.lock_timeout)
        else:
            seat = self.store.take(1, before_write=die if self.kill_at == "writing" else None)
        if self.kill_at == "written":
            die()
        return seat or None

    #: does an outcome repeat its invoke's start, search and what it saw?
    #: (A worker's buyers do not: see tickets.engine.child.worker.)
    repeats_invoke = True

    def report(self, outcome: Outcome, t_locked: float | None) -> None:
        """Send the buyer's outcome (with its invoke, if that was held back)."""
        held = self.held
        # Sold out at the search: dated then, and both events go in one write.
        t = time.monotonic() if held is None else self.timing["t_search"]
        event = completed(outcome, self.base, t, self.timing if self.repeats_invoke else NO_FIELDS)
        if t_locked is not None:
            event["t_locked"] = t_locked
        if self.retries:
            event["retries"] = self.retries
        if self.pause:
            event["paused"] = self.pause
        if held is None:
            self.events.send(event)
        else:
            self.events.send_all([held, event])


def let_go(lock: BuyerLock, failed: bool) -> str | None:
    """Let go of a buyer's lock after its critical section: released (a
    transaction commits, and may be refused: NoEffect, WriteUnknown, raised
    as the sale's outcome), or, ``failed``, aborted (a transaction rolls
    back). Any other failure to let go is returned, as the note the buyer's
    outcome carries: the sale itself is done."""
    try:
        if failed:
            lock.abort()
        else:
            lock.release()
    except (NoEffect, WriteUnknown):
        if not failed:
            raise
    except Exception as error:
        return f"{LOCK_RELEASE_FAILED}{error}"
    return None


class WatchedLock:
    """The strategy's lock, built when first taken (a buyer who walks away
    never opens ``<store>.lock``), with the time it was taken and any
    failure to release it (the sale, if any, is done: the buyer says so)."""

    def __init__(
        self,
        plan: BuyerPlan,
        store: Store,
        token: Token,
        announce: Callable[[], None] | None = None,
        threaded: bool = False,
    ) -> None:
        self.plan = plan
        #: on a worker's thread (see tickets.engine.child.worker): no signal timer
        self.threaded = threaded
        self.store = store
        self.token = token
        #: under the process strategy, tell the parent who holds the lock
        #: (see tickets.engine.abandoned_lock)
        self.announce = announce
        self.t_locked: float | None = None
        self.release_error: str | None = None
        self._lock: BuyerLock | None = None

    def __enter__(self) -> WatchedLock:
        if self._lock is None:
            self._lock = self.plan.strategy.child_lock(
                self.token,
                self.store,
                self.plan.lock_timeout,
                self.plan.lease_ttl,
                self.plan.fencing,
                threaded=self.threaded,
            )
        self._lock.acquire()
        self.t_locked = time.monotonic()
        if self.announce is not None:
            self.announce()
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        assert self._lock is not None
        if (why := let_go(self._lock, failed=exc is not None)) is not None:
            self.release_error = why

    def close(self) -> None:
        """Let go of what the lock holds open (a buyer on a thread: its
        process does not end with it)."""
        if self._lock is not None:
            try:
                self._lock.close()
            except Exception:
                pass
