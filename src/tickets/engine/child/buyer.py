"""A buyer, run in a child process: the tutorial's purchase, watched from outside.

:func:`purchase` is the tutorial's ``Foo`` and ``get()``, nothing more: look
at what is left, and if anything is, take the lock, read the count, wait
out the write delay, write ``count - 1`` and release. Everything else wraps
it from outside: a :class:`Counter` (the store as this buyer sees it) times
every step, reports the buyer's events to the parent and kills the buyer at
a chaos run's kill point; a :class:`WatchedLock` builds the strategy's lock
only when it is first needed and notes when it was taken.

Children never print (see :mod:`tickets.engine.child`): they report over the event
pipe, and their stdout and stderr go to /dev/null.
"""

from __future__ import annotations

import os
import time

from ...constants import TYPE_CHECKING
from ...locking.locks import LockTimeout
from ...stores import NoEffect, StoreError, WriteUnknown, open_store
from .pipe import EventWriter

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractContextManager
    from typing import Any

    from ...locking.locks import BuyerLock
    from ...locking.strategies import Token
    from ...stores import Store
    from .plan import BuyerPlan

    Purchase = Callable[["Counter", "WatchedLock"], "int | None"]

#: Where a chaos run may kill a buyer (see :class:`Counter`).
BUYER_KILL_POINTS = ("search", "locked", "writing", "written")


def purchase(counter: Counter, lock: AbstractContextManager[Any]) -> int | None:
    """One buyer: the seat it got (the count it decremented from), or None."""
    if counter.search() == 0:
        return None  # sold out: walk away rather than queue for the lock
    if counter.takes:
        return counter.take()  # the store's own indivisible take: no lock around it
    with lock:
        count = counter.read()
        if count > 0:
            counter.wait()  # the simulated write delay: the race window
            counter.write(count - 1)
            return count
    return None


def quiet() -> None:
    """Send this process's stdout and stderr to /dev/null."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)


def die() -> None:
    """A chaos kill: SIGKILL, as from outside (no cleanup, no last word)."""
    os.kill(os.getpid(), 9)


_LOOKUPS: dict[int, tuple[Any, dict[int, Any]]] = {}


def lookup(pairs: tuple[tuple[int, Any], ...]) -> dict[int, Any]:
    """A plan's (buyer, value) pairs as a dict, made once per process (a
    worker's buyers share the plan: a dict each would cost them all)."""
    made = _LOOKUPS.get(id(pairs))
    if made is None or made[0] is not pairs:
        made = _LOOKUPS[id(pairs)] = (pairs, dict(pairs))
    return made[1]


class Counter:
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
        self, plan: BuyerPlan, buyer: int, events: EventWriter, delays: tuple[float, float]
    ) -> None:
        self.plan = plan
        self.events = events
        self.kill_at = lookup(plan.kill_at).get(buyer)
        self.pause = lookup(plan.pause_at).get(buyer)
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
        #: how often an optimistic transaction was tried again
        self.retries = 0
        #: when a take began: the store's own critical section (the history's t_locked)
        self.t_taken: float | None = None
        self.base: dict[str, Any] = {"buyer": buyer, "pid": os.getpid()}
        self.timing: dict[str, Any] = {}
        self.held: dict[str, Any] | None = None
        #: says whether the parent has died (see tickets.engine.child.launcher)
        self.orphaned: Any = None

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
        invoke = {"type": "invoke", **self.base, "t": t_search, "t_start": t_start, "seen": seen}
        if seen == 0 and self.kill_at != "search":
            self.held = invoke
            return seen
        self.events.send(invoke)
        if self.kill_at == "search":
            die()
        return seen

    def begin(self) -> None:
        """The user's buyer: its invoke, sent before its function is called
        (it does its own search, if any)."""
        t = time.monotonic()
        self.timing = {"t_start": t, "t_search": t}
        self.events.send({"type": "invoke", **self.base, "t": t, "t_start": t})

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

    def report(self, outcome: dict[str, Any], t_locked: float | None) -> None:
        event = {**outcome, **self.base, **(self.timing if self.repeats_invoke else {})}
        if t_locked is not None:
            event["t_locked"] = t_locked
        if self.retries:
            event["retries"] = self.retries
        if self.pause:
            event["paused"] = self.pause
        event["t"] = time.monotonic()
        if self.held is None:
            self.events.send(event)
        else:  # sold out at the search: both events in one write
            event["t"] = self.timing["t_search"]
            self.events.send_all([self.held, event])


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
        try:
            if exc is None:
                self._lock.release()  # a transaction's commit: may refuse (NoEffect)
            else:
                self._lock.abort()  # a transaction rolls back
        except (NoEffect, WriteUnknown):  # a transaction's commit: its outcome, not a note
            if exc is None:
                raise
        except Exception as error:
            self.release_error = f"lock release failed: {error}"

    def close(self) -> None:
        """Let go of what the lock holds open (a buyer on a thread: its
        process does not end with it)."""
        if self._lock is not None:
            try:
                self._lock.close()
            except Exception:
                pass


def outcome_of(buy: Purchase, counter: Counter, lock: WatchedLock) -> dict[str, Any]:
    """Run a purchase and say how it ended, as a history event's fields."""
    try:
        seat = buy(counter, lock)
    except LockTimeout as exc:  # which lock, held how long: a sale of only these tested nothing
        return {"type": "fail", "reason": f"busy: {exc}"}
    except NoEffect as exc:  # rolled back, refused: the store is as it was
        return {"type": "fail", "reason": f"refused: {exc}"}
    except Exception as exc:
        # Inside the critical section a failure may or may not have reached
        # the store: the outcome is unknown, not a failure.
        kind = "fail" if lock.t_locked is None and not counter.changing else "info"
        return {"type": kind, "reason": f"error: {exc}"}
    if seat is None:
        outcome: dict[str, Any] = {"type": "fail", "reason": "sold out"}
    else:
        outcome = {"type": "ok", "seat": seat}
    if lock.release_error is not None:
        outcome.setdefault("reason", lock.release_error)
    return outcome


def buy_and_report(plan: BuyerPlan, counter: Counter, lock: WatchedLock) -> None:
    """One purchase, the built-in one or the user's (``--buy``), and its outcome sent."""
    if plan.buy is not None:  # the user's own code buys
        from .user_buyer import load
        from .user_buyer import outcome as user_outcome

        outcome = user_outcome(load(plan.buy), counter, lock, plan.log)
    else:
        outcome = outcome_of(purchase, counter, lock)
    counter.report(outcome, lock.t_locked if counter.t_taken is None else counter.t_taken)


def failure(counter: Counter | None, buyer: int, exc: Exception) -> dict[str, Any]:
    """The outcome of a buyer stopped by an error outside its purchase: past
    the point where it may have changed the store, unknown; before it, a fail."""
    began = counter is not None and (counter.changing or counter.t_taken is not None)
    return {
        "type": "info" if began else "fail",
        "buyer": buyer,
        "reason": f"error: {exc}",
        "t": time.monotonic(),
    }


def run_buyer(
    plan: BuyerPlan,
    buyer: int,
    token: Token,
    events: Any,
    gate: Any,
    *,
    silence: bool = True,
    orphaned: Any = None,
) -> None:
    """Entry point of a buyer process. ``events`` is the event pipe's write
    end, ``gate`` the start gate (see tickets.engine.children); ``silence=False``
    when stdout and stderr already go nowhere, as under the launcher;
    ``orphaned()`` says whether the parent has died (checked just before
    the store is written: a sale the parent cannot record is not made)."""
    if silence:
        quiet()
    writer = EventWriter.over(events)
    counter: Counter | None = None
    try:
        counter = Counter(plan, buyer, writer, plan.delays.for_buyer(plan.seed, buyer))
        counter.orphaned = orphaned
        # EOF on the gate pipe: every buyer has started.
        if not gate.poll(plan.gate_timeout):
            never = {"type": "fail", **counter.base, "reason": "never started"}
            writer.send({**never, "t": time.monotonic()})
            return
        holder = {"type": "locked", "pid": counter.base["pid"]}
        announce = (lambda: writer.send(holder)) if plan.strategy.reports_holder else None
        buy_and_report(plan, counter, WatchedLock(plan, counter.store, token, announce))
    except Exception as exc:  # reported, never printed: the parent renders
        writer.send({**failure(counter, buyer, exc), "pid": os.getpid()})


class _SoldOutCounter(Counter):
    """A counter that always finds the sale sold out: the warm-up's, which
    runs a buyer's whole path without ever taking the lock or writing."""

    def search(self) -> int | None:
        super().search()  # sends its invoke to /dev/null, or holds it back
        self.held = self.held or {"type": "invoke", **self.base}
        return 0


def warm_up(plan: BuyerPlan, events: EventWriter, gate: Any, rounds: int = 10) -> None:
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
        counter = _SoldOutCounter(calm, 0, events, (0.0, 0.0))
        gate.poll(0)
        lock = WatchedLock(calm, counter.store, None)
        counter.report(outcome_of(purchase, counter, lock), lock.t_locked)
        try:
            plan.strategy.warm_up(counter.store, plan.lock_timeout)
        except StoreError:
            pass
        counter.store.close()  # no connection crosses a fork
