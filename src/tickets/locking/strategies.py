"""The strategies: how a buyer protects its read-modify-write, by name.

A :class:`Strategy` makes, in the parent, the token each buyer gets
(:meth:`Strategy.tokens`: the run's ``multiprocessing.Lock``, a lock each,
or nothing), and turns it into a lock inside the child
(:meth:`Strategy.child_lock`), on the child's own store handle. The lock
strategies work on any store; the store-native ones are the engine's own
(see :mod:`tickets.stores`). Buyers run this module (the lean-import rule
of :mod:`tickets.engine.child`).
"""

from __future__ import annotations

from collections import namedtuple

from ..constants import STRATEGY_NAMES, TYPE_CHECKING
from .locks import FileLock, FlockLock, NoLock, ProcessLock

if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

    from ..stores.base import Store
    from .locks import BuyerLock


#: Strategies whose token is a ``multiprocessing.Lock`` made in the parent.
MP_LOCK_STRATEGIES = ("process", "per-buyer")
#: Store-native strategies that sell in one call to the store, with no lock
#: around it: ``atomic`` everywhere, ``transaction`` on Redis (WATCH/MULTI).
#: The others are locks, the store's own (a SQLite transaction, a Redis lease)
#: or not.
TAKE_STRATEGIES = {"sqlite": ("atomic",), "redis": ("atomic", "transaction")}


def sells_by_take(strategy: str, kind: str) -> bool:
    """Does this strategy sell with the store's own take, not a locked read-modify-write?"""
    return strategy in TAKE_STRATEGIES.get(kind, ())


class Strategy(namedtuple("Strategy", "name summary excludes across_runs")):
    """A strategy. ``excludes``: is it meant to keep the sale correct (two
    buyers of one run never both sell from the same count)? ``across_runs``:
    also against buyers of other, concurrent invocations?"""

    __slots__ = ()
    name: str
    summary: str
    excludes: bool
    across_runs: bool

    def tokens(self, ctx: Any) -> Iterator[Any]:
        """Per-buyer tokens, made in the parent (an endless iterator); ``ctx``
        is the multiprocessing context, needed only by MP_LOCK_STRATEGIES."""
        if self.name == "process":
            shared = ctx.Lock()  # one lock, created once per run, shared by all
            while True:
                yield shared
        elif self.name == "per-buyer":
            # The tutorial's mistake, kept on purpose: Lock() inside the loop
            # gives every buyer its own lock, which excludes nobody.
            while True:
                yield ctx.Lock()
        else:
            while True:
                yield None

    def hand_out(self, ctx: Any, n: int) -> list[Any]:
        """``n`` tokens, for children started by multiprocessing. The caller
        keeps them until its run ends: Process.start() drops its arguments,
        and a per-buyer lock nobody holds any more is unlinked before a
        spawned child can open it (FileNotFoundError in SemLock._rebuild)."""
        tokens = self.tokens(ctx)
        return [next(tokens) for _ in range(n)]

    def child_lock(
        self,
        token: Any,
        store: Store,
        timeout: float,
        lease_ttl: float = 1.0,
        fencing: bool = False,
        threaded: bool = False,
    ) -> BuyerLock:
        """Build the buyer's lock inside the child, on its own ``store``
        (``threaded``: on a worker's thread, where no signal can time a wait)."""
        if self.name == "file":
            return FileLock(store.spec.lock_path, timeout)
        if self.name == "flock":
            return FlockLock(store.spec.lock_path, timeout, timer=not threaded)
        if self.name in MP_LOCK_STRATEGIES:
            return ProcessLock(token, timeout)
        if self.name == "transaction" and not sells_by_take(self.name, store.kind):
            return store.transaction_lock(timeout)
        if self.name == "deferred":
            return store.deferred_transaction(timeout)
        if self.name == "lease":
            return store.lease_lock(timeout, ttl=lease_ttl, fencing=fencing)
        return NoLock(timeout)


STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (
        Strategy("none", "no lock at all: the read-modify-write races", False, False),
        Strategy(
            "per-buyer", "the tutorial's bug: a new Lock() per buyer, so no exclusion", False, False
        ),
        Strategy("process", "one multiprocessing.Lock shared by the run's buyers", True, False),
        Strategy("file", "filelock.FileLock on <store>.lock: polls", True, True),
        Strategy("flock", "the kernel's blocking flock on <store>.lock: no polling", True, True),
        Strategy("atomic", "one indivisible conditional decrement in the store", True, True),
        Strategy(
            "transaction", "SQLite BEGIN IMMEDIATE; Redis WATCH/MULTI/EXEC, retried", True, True
        ),
        Strategy(
            "deferred",
            "SQLite BEGIN DEFERRED: a losing writer gets 'database is locked'",
            True,
            True,
        ),
        Strategy("lease", "a Redis lock with a time to live (SET NX PX); --fencing", True, True),
    )
}
assert tuple(STRATEGIES) == STRATEGY_NAMES


def get(name: str) -> Strategy:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ValueError(
            f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}"
        ) from None
