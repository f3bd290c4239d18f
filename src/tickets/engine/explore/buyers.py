"""A buyer under the explorer: the store and the lock as it sees them, each
operation a switch point (see tickets.engine.explore.scheduler).

:class:`ExploredSession` stands where a buyer process's
:class:`~tickets.engine.child.session.BuyerSession` stands, so the very
same purchase runs: the tutorial's (:func:`tickets.engine.child.buyer.purchase`)
or the user's ``--buy`` function through its
:class:`~tickets.engine.child.user_buyer.StoreHandle`. Its events go into
a list, stamped with the scheduler's logical clock. :class:`ExploredLock`
is the strategy's real lock, each acquire and release a step that names
the lock, so that the scheduler knows who holds what.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...check.events import completed, invoke, sold_out
from ...locking.locks import FileLock, FlockLock, LockTimeout, NoLock, ProcessLock
from ...stores import StoreError
from ..child.session import let_go
from . import steps
from .scheduler import Abandoned

if TYPE_CHECKING:
    from collections.abc import Callable

    from ...check.events import Message, Outcome, Phases, Who
    from ...locking.locks import BuyerLock
    from ...stores import Store
    from ...stores.base import RawHandle
    from .scheduler import Controller


def lock_steps(lock: BuyerLock, shared: bool, buyer: int) -> tuple[steps.Step, steps.Step]:
    """A buyer's lock as the scheduler sees it: the step that takes it and
    the one that lets it go, naming the lock (one name for a lock every
    buyer shares, one per buyer for the tutorial's lock per buyer, none for
    no lock: stable from one schedule to the next, no object ids). A
    transaction's begin and commit are steps on the store itself: its
    commit is what makes its write seen."""
    if isinstance(lock, NoLock):
        name = None
    elif isinstance(lock, ProcessLock):
        name = "the process lock" if shared else f"buyer {buyer}'s own lock"
    elif isinstance(lock, FileLock | FlockLock):
        name = "the lock file"
    elif getattr(lock, "ttl_ms", None) is not None:  # a Redis lease (see ExploredSale.expire)
        name = steps.LEASE
    elif getattr(lock, "immediate", True):  # a transaction holding the write lock from its start
        name = steps.STORE
    else:  # BEGIN DEFERRED: takes nothing until it writes, refused there if it lost
        return steps.Step(buyer, "begin", steps.STORE, False), steps.commit(buyer)
    return steps.lock(buyer, name), steps.unlock(buyer, name)


class ExploredStore:
    """The buyer's store with a switch point before each operation."""

    def __init__(self, store: Store, ctl: Controller, buyer: int) -> None:
        self.store = store
        self.ctl = ctl
        self.buyer = buyer
        self.kind = store.kind
        self.spec = store.spec

    def load(self, step: steps.Step) -> int:
        if getattr(self.store, "row_lock", False):  # SELECT ... FOR UPDATE
            self.row_lock()
        self.ctl.point(step)
        count = self.store.load()
        self.ctl.say(f"{'sees' if step.kind == 'search' else 'reads'} {count}")
        return count

    def save(self, count: int) -> None:
        self.row_lock()
        self.ctl.point(steps.write(self.buyer))
        self.store.save(count)
        self.ctl.say(f"writes {count}")

    def row_lock(self) -> None:
        """PostgreSQL: inside a transaction, a write (or a read FOR UPDATE)
        takes the row's lock, held to the transaction's end: a step of its
        own, on the store, that waits while another buyer's transaction
        holds it, as the server makes it wait. (Without it the statement
        would wait on the server, and the explorer's one thread with it.)"""
        if not getattr(self.store, "in_transaction", False):
            return
        if self.ctl.holders.get(steps.STORE) == self.buyer:
            return  # its own: taken by an earlier write, or the advisory lock
        self.ctl.point(steps.lock(self.buyer, steps.STORE))
        self.ctl.holders[steps.STORE] = self.buyer
        self.ctl.say("locks the row")

    def raw_handle(self) -> RawHandle:
        """The user's own connection: its operations are no switch points,
        and what it does the scheduler cannot order (never PASSED)."""
        self.ctl.uncontrolled.add(self.buyer)
        return self.store.raw_handle()


class ExploredSession:
    """What a buyer's purchase calls (see BuyerSession), each store
    operation a step; events into ``events``, on the logical clock."""

    def __init__(
        self,
        ctl: Controller,
        buyer: int,
        store: Store,
        events: list[Message],
        retries: int,
        takes: bool,
        optimistic: bool,
    ) -> None:
        self.ctl = ctl
        self.store = ExploredStore(store, ctl, buyer)
        self.events = events
        self.base: Who = {"buyer": buyer, "pid": 0}
        self.buyer = buyer
        self.takes = takes
        self.optimistic = optimistic
        self.max_retries = retries
        self.retries = 0
        self.changing = False
        self.t_taken: float | None = None
        self.timing: Phases = {}
        self._invoked = False

    def invoke_once(self) -> None:
        self._invoke({})

    def _invoke(self, fields: Phases) -> None:
        if not self._invoked:
            # from its first step, or from when it first waited for a lock
            # another buyer held (a purchase waiting at a lock is under way)
            t = min(self.ctl.now, self.ctl.blocked_since.get(self.buyer, self.ctl.now))
            self.timing = {"t_start": t, "t_search": t, **fields}
            self.events.append(invoke(self.base, t, self.timing))
            self._invoked = True

    def search(self) -> int | None:
        step = steps.search(self.buyer)
        try:
            seen: int | None = self.store.load(step)
        except StoreError:
            seen = None
        self._invoke({"seen": seen})
        return seen

    def begin(self) -> None:
        """The user's buyer: invoked at its first step (it searches, if at all, itself)."""

    # Each operation is invoked when its buyer's first step has run (or it
    # first waited at a lock another held), not when the buyer reached it:
    # every buyer reaches its first switch point at once, and an invoke
    # stamped there would make every schedule, even one that ran the buyers
    # one after another, look contended.

    def read(self) -> int:
        try:
            return self.store.load(steps.read(self.buyer))
        finally:
            self._invoke({})

    def wait(self) -> None:
        self.ctl.point(steps.wait(self.buyer))
        self._invoke({})
        self.ctl.say("waits (the write delay)")

    def write(self, count: int) -> None:
        self.changing = True
        try:
            self.store.save(count)
        finally:
            self._invoke({})

    def take(self) -> int | None:
        self.changing = True
        if self.optimistic:
            self.t_taken = self.ctl.now
            try:
                return self._take_optimistic()
            finally:
                self._invoke({})
        self.ctl.point(steps.take(self.buyer))
        self._invoke({})
        self.t_taken = self.ctl.now
        seat = self.store.store.take(1)
        self.ctl.say(f"takes: seat {seat}" if seat else "takes: sold out")
        return seat or None

    def _take_optimistic(self) -> int | None:
        """WATCH, read, (the race window), MULTI, write, EXEC, retried: the
        watch and read one step, the window and the EXEC another."""
        tries = 0

        def window() -> None:
            nonlocal tries
            self.ctl.say("watches and reads")
            tries += 1
            if tries > self.max_retries + 1:  # turned away: nothing was written
                raise LockTimeout(f"an unchanged count after {self.max_retries} retries", 0.0)
            self.ctl.point(steps.write(self.buyer))
            self.ctl.say("EXEC")

        self.ctl.point(steps.take(self.buyer))
        seat, self.retries = self.store.store.take_optimistic(1, window, 3600.0)
        return seat or None

    def again(self) -> bool:
        """The database refused the transaction: run it again, up to
        ``--retries`` times (each try's steps are steps of the schedule)."""
        if self.retries >= self.max_retries:
            return False
        self.retries += 1
        self.changing = False
        self.ctl.say("is refused: tries again")
        return True

    def report(self, outcome: Outcome, t_locked: float | None) -> None:
        self._invoke({})
        event = completed(outcome, self.base, round(self.ctl.now + 0.0005, 6), self.timing)
        locked = t_locked if self.t_taken is None else self.t_taken
        if locked is not None:
            event["t_locked"] = locked
        if self.retries:
            event["retries"] = self.retries
        self.events.append(event)


class ExploredLock:
    """The strategy's real lock, built lazily as a buyer's is; taking and
    letting go of it are steps that name it."""

    def __init__(self, ctl: Controller, buyer: int, build: Callable[[], BuyerLock], shared: bool):
        self.ctl = ctl
        self.buyer = buyer
        self.build = build
        self.shared = shared
        self.t_locked: float | None = None
        self.release_error: str | None = None
        self._lock: BuyerLock | None = None
        self.name: str | None = None
        #: taken and not let go (a buyer's code that left it held is let go at the end)
        self.held = False
        #: nested entries of a re-entrant lock beyond the first
        self.depth = 0
        #: the buyer's session, invoked at its first step
        self.session: ExploredSession | None = None
        self._steps: tuple[steps.Step, steps.Step] | None = None

    def __enter__(self) -> ExploredLock:
        if self.held and isinstance(self._lock, FileLock):
            # filelock's lock is re-entrant (a count): a nested ``with
            # store.lock`` takes nothing more and lets go of nothing, as in a sale
            self.depth += 1
            return self
        if self._lock is None or self._steps is None:
            self._lock = self.build()
            self._steps = lock_steps(self._lock, self.shared, self.buyer)
            self.name = self._steps[0].obj if self._steps[0].takes_lock else None
        self.ctl.point(self._steps[0])
        if self.session is not None:
            self.session.invoke_once()  # a buyer's first step may be to take the lock
        self._lock.acquire()
        self.held = True
        if self.name is not None:
            self.ctl.holders[self.name] = self.buyer
        self.t_locked = self.ctl.now
        self.ctl.say(_words(self._steps[0], "locks"))
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        assert self._lock is not None and self._steps is not None
        if self.depth:
            self.depth -= 1
            return
        abandoned = isinstance(exc, Abandoned)
        stopped: Abandoned | None = None
        if not abandoned:
            try:
                self.ctl.point(self._steps[1])
            except Abandoned as dropped:  # the schedule ends here: let go all the same
                stopped = dropped
                abandoned = True
        stray = not self.held  # let go of without being held (misused)
        self.held = False
        if stray and isinstance(self._lock, ProcessLock) and self.name is not None:
            # A semaphore let go of by anyone is free: whoever held it no longer excludes.
            self.ctl.holders.pop(self.name, None)
        try:
            if (why := let_go(self._lock, failed=exc is not None or abandoned)) is not None:
                self.release_error = why
        finally:
            if self.name is not None and self.ctl.holders.get(self.name) == self.buyer:
                del self.ctl.holders[self.name]
            if self.ctl.holders.get(steps.STORE) == self.buyer:  # a row lock, to the commit
                del self.ctl.holders[steps.STORE]
            if not abandoned:
                self.ctl.say(_words(self._steps[1], "unlocks"))
        if stopped is not None:
            raise stopped

    def close(self) -> None:
        if self._lock is not None:
            try:
                if self.held:  # left held by the buyer's code: the next schedule starts free
                    self.held = False
                    self._lock.abort()
                self._lock.close()
            except Exception:
                pass


def _words(step: steps.Step, verb: str) -> str:
    """What taking or letting go of a lock did, in the schedule's words: a
    deferred transaction begins and commits; no lock takes nothing."""
    if step.kind in ("begin", "commit"):
        return f"{step.kind}s"
    return verb if step.takes_lock else f"{verb} (no lock)"


def outcome_words(outcome: Outcome) -> str:
    """``gets seat 2``, ``sold out``, ``busy: …``: how a buyer ended, in words."""
    if outcome["type"] == "ok":
        return f"gets seat {outcome.get('seat')}"
    reason = outcome.get("reason") or ""
    return "finds it sold out" if reason == sold_out()["reason"] else reason
