"""The strategies: how a buyer protects its read-modify-write, a class each.

Shaped like filelock's ``_api.py`` and ``_unix.py``: one abstract
:class:`Strategy`, a class per ``--lock`` strategy beside it, and one
instance of each in :data:`STRATEGIES`. A name is parsed once (:func:`get`:
the CLI's ``--lock``, a config made from a name, the launcher's orders)
into its object; everything else asks the object and never compares names
(``tests/test_layout.py`` holds the package to that).

A strategy says

- what it needs of a store: a capability (:mod:`tickets.stores.base`), or
  nothing (the lock strategies, which work on any store);
- what the parent makes for each buyer (:meth:`~Strategy.tokens`: the run's
  ``multiprocessing.Lock``, a lock each, or nothing), and the lock a buyer
  builds from it in its own process, on its own store handle
  (:meth:`~Strategy.child_lock`);
- whether a buyer sells by the store's own take instead, with no lock
  around it, and which take (:meth:`~Strategy.sells_by_take`,
  :meth:`~Strategy.takes_optimistically`);
- what the processes that start buyers do for it once, before the buyers
  (:meth:`~Strategy.prepare_launcher`, :meth:`~Strategy.warm_up`,
  :meth:`~Strategy.prepare_worker`);
- what the parent and the output need to know of it (its attributes).

The classes are named ``...Strategy``: :mod:`.locks` holds the locks they
build (``NoLock``, ``ProcessLock``, ``FileLock``, ``FlockLock``), whose
names are the locks' own. Buyers run this module: it keeps the lean-import
rule of :mod:`tickets.engine.child` (plain classes, no ``typing`` at run
time).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from ..constants import LOCK_STRATEGY_NAMES, STRATEGY_NAMES, TYPE_CHECKING
from ..stores import KIND_CAPABILITIES
from ..stores.base import (
    DEFERRED_TRANSACTION,
    ISOLATED_TRANSACTION,
    LEASE_LOCK,
    TAKE,
    TAKE_OPTIMISTIC,
    TRANSACTION_LOCK,
)
from .locks import FileLock, FlockLock, NoLock, ProcessLock, install_alarm, install_wake_signal

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from multiprocessing.context import BaseContext

    from ..stores.base import Store
    from .locks import BuyerLock, SharedLock

    Token = SharedLock | None

__all__ = ["NO_LOCK", "STRATEGIES", "Strategy", "get", "strategies_for"]


class Strategy(ABC):
    """How a buyer protects its read-modify-write. One instance per class,
    made here; a copy that crossed a process boundary is that instance."""

    __slots__ = ()
    #: the ``--lock`` name, and the history's and the JSON documents' word
    name: str
    #: one line for ``--help`` and the docs
    summary: str
    #: is it meant to keep the sale correct (two buyers of one run never
    #: both sell from the same count)?
    excludes = True
    #: ... also against buyers of other, concurrent invocations?
    across_runs = True
    #: the store capabilities it can work with, any one of them (none: any store)
    needs: frozenset[str] = frozenset()
    #: its tokens are ``multiprocessing`` locks the parent makes
    #: (:meth:`tokens` needs a multiprocessing context)
    parent_locks = False
    #: a buyer tells the parent once it holds the lock (the ``locked``
    #: event), so that a holder that died is noticed: the run's one
    #: ``multiprocessing.Lock`` is never let go by the kernel (see
    #: tickets.engine.abandoned_lock)
    reports_holder = False
    #: its lock is a lease: it ends on its own (``--lease-ttl``, ``--fencing``)
    leases = False
    #: a buyer may wait its turn before its critical section (a timeline
    #: draws the wait)
    waits = True
    #: how a race's verdict says a side sold: "with the file lock"
    phrase: str
    #: may the store refuse its transaction as one to run again (a
    #: serialization failure, :class:`tickets.stores.base.Refused`)?
    retried = False

    def usable_with(self, capabilities: frozenset[str]) -> bool:
        """Can a store with these capabilities sell under this strategy?"""
        return not self.needs or not self.needs.isdisjoint(capabilities)

    def sells_by_take(self, store: Store) -> bool:
        """Does a buyer sell with ``store``'s own take, not a locked
        read-modify-write?"""
        return False

    def takes_optimistically(self, store: Store) -> bool:
        """Is its take ``store``'s optimistic one (:meth:`Store.take_optimistic`,
        retried while another writer got in between) rather than the one
        indivisible :meth:`Store.take`? Asked once per buyer: its take is
        then a direct call to the store. A user's buyer may take under any
        strategy (``store.take()``)."""
        return False

    def tokens(self, ctx: BaseContext | None) -> Iterator[Token]:
        """Per-buyer tokens, made in the parent (an endless iterator); ``ctx``
        is the multiprocessing context, needed only if :attr:`parent_locks`."""
        while True:
            yield None

    def hand_out(self, ctx: BaseContext | None, n: int) -> list[Token]:
        """``n`` tokens, for children started by multiprocessing. The caller
        keeps them until its run ends: Process.start() drops its arguments,
        and a per-buyer lock nobody holds any more is unlinked before a
        spawned child can open it (FileNotFoundError in SemLock._rebuild)."""
        tokens = self.tokens(ctx)
        return [next(tokens) for _ in range(n)]

    def thread_tokens(
        self, shared: Token, new_lock: Callable[[], SharedLock]
    ) -> Callable[[], Token]:
        """What each buyer on a worker's thread gets: the token the worker
        was handed, shared (or, under ``per-buyer``, ``new_lock()`` each)."""
        return lambda: shared

    @abstractmethod
    def child_lock(
        self,
        token: Token,
        store: Store,
        timeout: float,
        lease_ttl: float = 1.0,
        fencing: bool = False,
        threaded: bool = False,
    ) -> BuyerLock:
        """Build the buyer's lock inside the child, on its own ``store``
        (``threaded``: on a worker's thread, where no signal can time a wait)."""

    def prepare_launcher(self) -> None:  # noqa: B027 - most need nothing done
        """In the launcher, once, before it forks buyers (they inherit it)."""

    def warm_up(self, store: Store, timeout: float) -> None:  # noqa: B027
        """In the launcher, once: build the lock and let it go, so that what
        building one imports is loaded before the buyers are forked."""

    def prepare_worker(self) -> None:  # noqa: B027
        """In a worker's main thread, once, before its buyer threads start."""

    def __reduce__(self) -> tuple[Callable[[str], Strategy], tuple[str]]:
        return (get, (self.name,))

    def __repr__(self) -> str:
        return f"<strategy {self.name}>"


class NoneStrategy(Strategy):
    __slots__ = ()
    name = "none"
    summary = "no lock at all: the read-modify-write races"
    excludes = False
    across_runs = False
    waits = False
    phrase = "without a lock"

    def child_lock(
        self,
        token: Token,
        store: Store,
        timeout: float,
        lease_ttl: float = 1.0,
        fencing: bool = False,
        threaded: bool = False,
    ) -> BuyerLock:
        return NoLock(timeout)


class MultiprocessingLockStrategy(Strategy):
    """A ``multiprocessing.Lock`` made in the parent, handed to the buyer."""

    __slots__ = ()
    parent_locks = True
    across_runs = False  # another invocation has locks of its own

    def child_lock(
        self,
        token: Token,
        store: Store,
        timeout: float,
        lease_ttl: float = 1.0,
        fencing: bool = False,
        threaded: bool = False,
    ) -> BuyerLock:
        assert token is not None, f"--lock {self.name} needs the parent's lock"
        return ProcessLock(token, timeout)


class PerBuyerStrategy(MultiprocessingLockStrategy):
    __slots__ = ()
    name = "per-buyer"
    summary = "the tutorial's bug: a new Lock() per buyer, so no exclusion"
    excludes = False
    phrase = "with a lock per buyer"

    def tokens(self, ctx: BaseContext | None) -> Iterator[Token]:
        # The tutorial's mistake, kept on purpose: Lock() inside the loop
        # gives every buyer its own lock, which excludes nobody.
        assert ctx is not None
        while True:
            yield ctx.Lock()

    def thread_tokens(
        self, shared: Token, new_lock: Callable[[], SharedLock]
    ) -> Callable[[], Token]:
        return new_lock  # threads need no semaphore for a lock nobody shares


class ProcessStrategy(MultiprocessingLockStrategy):
    __slots__ = ()
    name = "process"
    summary = "one multiprocessing.Lock shared by the run's buyers"
    reports_holder = True
    phrase = "with one process lock"

    def tokens(self, ctx: BaseContext | None) -> Iterator[Token]:
        assert ctx is not None
        shared = ctx.Lock()  # one lock, created once per run, shared by all
        while True:
            yield shared


class LockFileStrategy(Strategy):
    """A ``flock(2)`` on ``<store>.lock``, taken by a descriptor the buyer opens."""

    __slots__ = ()

    def warm_up(self, store: Store, timeout: float) -> None:
        self.child_lock(None, store, timeout).close()


class FileStrategy(LockFileStrategy):
    __slots__ = ()
    name = "file"
    summary = "filelock.FileLock on <store>.lock: polls"
    phrase = "with the file lock"

    def child_lock(
        self,
        token: Token,
        store: Store,
        timeout: float,
        lease_ttl: float = 1.0,
        fencing: bool = False,
        threaded: bool = False,
    ) -> BuyerLock:
        return FileLock(store.spec.lock_path, timeout)


class FlockStrategy(LockFileStrategy):
    __slots__ = ()
    name = "flock"
    summary = "the kernel's blocking flock on <store>.lock: no polling"
    phrase = "with the kernel's flock"

    def child_lock(
        self,
        token: Token,
        store: Store,
        timeout: float,
        lease_ttl: float = 1.0,
        fencing: bool = False,
        threaded: bool = False,
    ) -> BuyerLock:
        return FlockLock(store.spec.lock_path, timeout, timer=not threaded)

    def prepare_launcher(self) -> None:
        install_alarm()  # every buyer inherits its lock timer's handler

    def prepare_worker(self) -> None:
        install_wake_signal()  # a thread's flock wait ends at its deadline


class AtomicStrategy(Strategy):
    __slots__ = ()
    name = "atomic"
    summary = "one indivisible conditional decrement in the store"
    needs = frozenset({TAKE})
    phrase = "with atomic"

    def sells_by_take(self, store: Store) -> bool:
        return True

    def child_lock(
        self,
        token: Token,
        store: Store,
        timeout: float,
        lease_ttl: float = 1.0,
        fencing: bool = False,
        threaded: bool = False,
    ) -> BuyerLock:
        return NoLock(timeout)  # the take is the critical section


class TransactionStrategy(Strategy):
    """SQLite: a transaction that holds the write lock from its start, as
    the buyer's lock. Redis: an optimistic take, retried (no lock at all)."""

    __slots__ = ()
    name = "transaction"
    summary = "SQLite BEGIN IMMEDIATE; Redis WATCH/MULTI/EXEC, retried"
    needs = frozenset({TAKE_OPTIMISTIC, TRANSACTION_LOCK})
    phrase = "with transaction"

    def sells_by_take(self, store: Store) -> bool:
        return TAKE_OPTIMISTIC in store.capabilities

    def takes_optimistically(self, store: Store) -> bool:
        return TAKE_OPTIMISTIC in store.capabilities  # on SQLite a user's take is the plain one

    def child_lock(
        self,
        token: Token,
        store: Store,
        timeout: float,
        lease_ttl: float = 1.0,
        fencing: bool = False,
        threaded: bool = False,
    ) -> BuyerLock:
        if self.sells_by_take(store):
            return NoLock(timeout)  # WATCH ... EXEC is the critical section
        return store.transaction_lock(timeout)


class DeferredStrategy(Strategy):
    __slots__ = ()
    name = "deferred"
    summary = "SQLite BEGIN DEFERRED: a losing writer gets 'database is locked'"
    needs = frozenset({DEFERRED_TRANSACTION})
    phrase = "with deferred"

    def child_lock(
        self,
        token: Token,
        store: Store,
        timeout: float,
        lease_ttl: float = 1.0,
        fencing: bool = False,
        threaded: bool = False,
    ) -> BuyerLock:
        return store.deferred_transaction(timeout)


class LeaseStrategy(Strategy):
    __slots__ = ()
    name = "lease"
    summary = "a Redis lock with a time to live (SET NX PX); --fencing"
    needs = frozenset({LEASE_LOCK})
    leases = True
    phrase = "with lease"

    def child_lock(
        self,
        token: Token,
        store: Store,
        timeout: float,
        lease_ttl: float = 1.0,
        fencing: bool = False,
        threaded: bool = False,
    ) -> BuyerLock:
        return store.lease_lock(timeout, ttl=lease_ttl, fencing=fencing)


class IsolationStrategy(Strategy):
    """PostgreSQL: the read-modify-write in a transaction at an isolation
    level, as the buyer's lock (see tickets.stores.postgres.IsolatedTransaction)."""

    __slots__ = ()
    needs = frozenset({ISOLATED_TRANSACTION})
    #: BEGIN ISOLATION LEVEL's words
    level = "read committed"
    #: the read is SELECT ... FOR UPDATE
    row_lock = False
    #: pg_advisory_xact_lock first
    advisory = False
    #: the database may refuse it as unserializable: --retries runs it again
    retried = True

    def child_lock(
        self,
        token: Token,
        store: Store,
        timeout: float,
        lease_ttl: float = 1.0,
        fencing: bool = False,
        threaded: bool = False,
    ) -> BuyerLock:
        return store.isolated_transaction(
            timeout, level=self.level, row_lock=self.row_lock, advisory=self.advisory
        )


class ReadCommittedStrategy(IsolationStrategy):
    __slots__ = ()
    name = "read-committed"
    summary = "PostgreSQL: read then write in a READ COMMITTED transaction (loses updates)"
    excludes = False
    across_runs = False
    phrase = "under READ COMMITTED"


class RepeatableReadStrategy(IsolationStrategy):
    __slots__ = ()
    name = "repeatable-read"
    summary = "PostgreSQL REPEATABLE READ: the second writer is refused (--retries)"
    level = "repeatable read"
    phrase = "under REPEATABLE READ"


class SerializableStrategy(IsolationStrategy):
    __slots__ = ()
    name = "serializable"
    summary = "PostgreSQL SERIALIZABLE: unserializable transactions refused (--retries)"
    level = "serializable"
    phrase = "under SERIALIZABLE"


class ForUpdateStrategy(IsolationStrategy):
    __slots__ = ()
    name = "for-update"
    summary = "PostgreSQL SELECT ... FOR UPDATE, then UPDATE: the row locked to the commit"
    row_lock = True
    phrase = "with SELECT FOR UPDATE"


class AdvisoryStrategy(IsolationStrategy):
    __slots__ = ()
    name = "advisory"
    summary = "PostgreSQL pg_advisory_xact_lock around the read-modify-write"
    advisory = True
    phrase = "with an advisory lock"


#: The strategy that takes no lock: a race's unlocked side, and an ``--exec``
#: sale's (the command locks as it will).
NO_LOCK: Strategy = NoneStrategy()

#: Every strategy by name, in the order tables show them.
STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (
        NO_LOCK,
        PerBuyerStrategy(),
        ProcessStrategy(),
        FileStrategy(),
        FlockStrategy(),
        AtomicStrategy(),
        TransactionStrategy(),
        DeferredStrategy(),
        LeaseStrategy(),
        ReadCommittedStrategy(),
        RepeatableReadStrategy(),
        SerializableStrategy(),
        ForUpdateStrategy(),
        AdvisoryStrategy(),
    )
}
# The CLI builds --lock from the constants without loading this module.
assert tuple(STRATEGIES) == STRATEGY_NAMES
assert tuple(n for n, s in STRATEGIES.items() if not s.needs) == LOCK_STRATEGY_NAMES


def get(name: str) -> Strategy:
    """The strategy called ``name`` (a ``--lock`` word, a history's)."""
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ValueError(
            f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}"
        ) from None


def strategies_for(kind: str) -> tuple[Strategy, ...]:
    """The strategies a store of ``kind`` can sell with, from its capabilities."""
    capabilities = KIND_CAPABILITIES[kind]
    return tuple(s for s in STRATEGIES.values() if s.usable_with(capabilities))
