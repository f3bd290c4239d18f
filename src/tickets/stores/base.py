"""What every store is: the errors, and the interface buyers and clerks use.

A store holds one number, the tickets left. Every engine can read it and
write it (the lock strategies protect that read-modify-write from outside).
What an engine can do beyond that are its capabilities, each a method of
:class:`Store` that the engine implements or not: its own indivisible "take
up to n if any are left" (:meth:`Store.take`), an optimistic take retried
while another writer got in between, a transaction or a lease as the
buyer's lock. A strategy names the capability it needs
(:mod:`tickets.locking.strategies`); a store never hears a strategy's name.
The parent restocks and reads the final count through the same object.

Buyers run this module: it keeps the lean-import rule of
:mod:`tickets.engine.child`.
"""

from __future__ import annotations

import os

from ..constants import TYPE_CHECKING
from ..errors import StoreError as StoreError  # what a store raises

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable

    import psycopg
    import redis

    from ..locking.locks import BuyerLock
    from .spec import StoreSpec

    #: A store as the user's buyer code may use it directly (``--buy``): the
    #: JSON file's path, a SQLite connection, a Redis client, a psycopg connection.
    RawHandle = str | sqlite3.Connection | redis.Redis | psycopg.Connection[tuple[object, ...]]


#: The kinds of :class:`DiskTrouble`.
DISK_FULL = "disk full"
READ_ONLY_FS = "read-only file system"
#: What fills a disk, as its message says it (see :func:`disk_kind`).
FULL_WHY = ("no space left", "no inodes left", "disk quota exceeded")


class DiskTrouble(StoreError):
    """The disk under the store refused a write, whatever the sale did: it
    is full (no space, no inodes, a quota) or a read-only file system. The
    store could not be used (exit 3); no check failed. ``kind`` is
    :data:`DISK_FULL` or :data:`READ_ONLY_FS`."""

    def __init__(self, path: object, problem: str, fix: str = "", kind: str = DISK_FULL) -> None:
        super().__init__(path, problem, fix)
        self.kind = kind


def disk_trouble(path: object, folder: str, err: int | None) -> DiskTrouble | None:
    """What a write under ``folder`` that failed with errno ``err`` says of
    the disk, if it is full or read-only (None: it is neither, or cannot be
    told). ``err`` None: the engine did not say (SQLite), so the file system
    is asked. ENOSPC names neither space nor inodes: the file system does."""
    import errno

    where = os.path.abspath(folder or ".")
    try:
        fs: os.statvfs_result | None = os.statvfs(where)
    except OSError:
        fs = None
    read_only = fs is not None and bool(fs.f_flag & os.ST_RDONLY)
    if err == errno.EROFS or (err is None and read_only):
        fix = "remount it read-write, or point --db elsewhere"
        return DiskTrouble(path, f"{where} is on a read-only file system", fix, READ_ONLY_FS)
    root = os.geteuid() == 0  # root may use the blocks kept back for it
    if err == errno.EDQUOT:
        why = FULL_WHY[2]
    elif err not in (errno.ENOSPC, None) or fs is None:
        return None
    elif fs.f_files and (fs.f_ffree if root else fs.f_favail) == 0:
        why = FULL_WHY[1]
    elif err == errno.ENOSPC or (fs.f_bfree if root else fs.f_bavail) == 0:
        why = FULL_WHY[0]
    else:
        return None
    return DiskTrouble(
        path,
        f"the disk under {where} is full ({why})",
        "free some space there, or point --db elsewhere",
    )


def read_only_fs(path: object, folder: str) -> DiskTrouble | None:
    """The error for a folder that is read-only because its file system is."""
    trouble = disk_trouble(path, folder, None)
    return trouble if trouble is not None and trouble.kind == READ_ONLY_FS else None


def write_error(path: object, folder: str, exc: OSError, what: str) -> StoreError:
    """One line for a write under ``folder`` that failed: a full or read-only
    disk says so; permissions are blamed only when they are the cause."""
    import errno

    trouble = disk_trouble(path, folder, exc.errno)
    if trouble is not None:
        return trouble
    if exc.errno in (errno.EACCES, errno.EPERM):
        return StoreError(path, f"{what} (permission denied)", "check the folder's permissions")
    return StoreError(path, f"{what} ({exc.strerror})", "the store is unchanged")


def disk_kind(text: str) -> str | None:
    """The kind of :class:`DiskTrouble` a message names (a buyer's outcome
    reason carries its error's text), or None: how the parent tells a disk
    that stopped the sale (exit 3) from a sale that failed a check."""
    if "the disk under " in text and any(f" is full ({why})" in text for why in FULL_WHY):
        return DISK_FULL
    if " is on a read-only file system" in text:
        return READ_ONLY_FS
    return None


class NoEffect(Exception):
    """The store refused an operation as a whole, so it changed nothing: a
    transaction rolled back, a fenced write refused. The buyer's outcome is
    a known failure (``fail``), not an unknown one."""


class WriteUnknown(Exception):
    """A write that may or may not have landed: a commit that failed for a
    reason other than a lock. The buyer's outcome is unknown (``info``)."""


#: The capabilities: what a store can do beyond reading and writing its
#: count, each named after the :class:`Store` method that does it.
TAKE = "take"
TAKE_OPTIMISTIC = "take_optimistic"
TRANSACTION_LOCK = "transaction_lock"
DEFERRED_TRANSACTION = "deferred_transaction"
LEASE_LOCK = "lease_lock"
ISOLATED_TRANSACTION = "isolated_transaction"
CAPABILITIES = (
    TAKE,
    TAKE_OPTIMISTIC,
    TRANSACTION_LOCK,
    DEFERRED_TRANSACTION,
    LEASE_LOCK,
    ISOLATED_TRANSACTION,
)


class Refused(NoEffect):
    """The database refused a transaction it could not serialize (a
    serialization failure, a deadlock) and rolled it back: the sale is a
    known failure, and real code runs the transaction again (``--retries``)."""


class Store:
    """One store, opened in the process that uses it (a connection or a file
    descriptor is never shared across a fork)."""

    #: "json", "sqlite", "redis" or "postgres"
    kind = ""
    #: does :meth:`cleanup` have files to look at (a run's end then sweeps too)?
    sweeps = False
    #: the capabilities this engine has: the methods of :data:`CAPABILITIES`
    #: it implements (found, not declared: see ``__init_subclass__``)
    capabilities: frozenset[str] = frozenset()

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        cls.capabilities = frozenset(
            name for name in CAPABILITIES if getattr(cls, name) is not getattr(Store, name)
        )

    def __init__(self, spec: StoreSpec) -> None:
        self.spec = spec
        self.fsync = False

    @property
    def label(self) -> str:
        """How messages name the store (a password never shows)."""
        return self.spec.label

    def exists(self) -> bool:
        """Is there a store to sell from (or must a run create one)?"""
        raise NotImplementedError

    def check_ready(self) -> None:
        """Fail early, before anything changes, when the run could not sell
        here: unreachable, read-only, not a store, a refused password."""
        raise NotImplementedError

    def load(self) -> int:
        """The count, read and checked strictly. Never changes anything."""
        raise NotImplementedError

    def save(self, count: int, before_write: Callable[[], None] | None = None) -> None:
        """Write the count; ``before_write`` runs just before it lands (chaos)."""
        raise NotImplementedError

    def restock(self, count: int) -> None:
        """Create the store if it is missing, and set the count."""
        self.save(count)

    def raw_handle(self) -> RawHandle:
        """What the user's buyer code gets as ``raw``, to go round the store's
        methods: the JSON file's path, a ``sqlite3.Connection`` (autocommit)
        or a ``redis.Redis``."""
        raise NotImplementedError

    # -- the capabilities: an engine implements those it has -------------

    def take(self, n: int, before_write: Callable[[], None] | None = None) -> int:
        """Indivisibly take up to ``n`` tickets if any are left; return the
        count before (seats ``count … count - min(n, count) + 1`` are sold)."""
        raise NotImplementedError(f"{self.kind} store has no native take")

    def take_optimistic(self, n: int, wait: Callable[[], None], timeout: float) -> tuple[int, int]:
        """Take up to ``n`` by an optimistic transaction, retried while
        another writer got in between; the count before, and the retries."""
        raise NotImplementedError(f"{self.kind} store has no optimistic take")

    def transaction_lock(self, timeout: float) -> BuyerLock:
        """A transaction as the buyer's lock, holding the store's write lock
        from the start (waited for up to ``timeout``)."""
        raise NotImplementedError(f"{self.kind} store has no transaction lock")

    def deferred_transaction(self, timeout: float) -> BuyerLock:
        """A transaction as the buyer's lock that takes the write lock only
        at the write, and is refused there if another writer got in first."""
        raise NotImplementedError(f"{self.kind} store has no deferred transaction")

    def lease_lock(self, timeout: float, *, ttl: float, fencing: bool) -> BuyerLock:
        """A lock that ends after ``ttl`` seconds whether or not its holder
        is done; with ``fencing`` the store refuses a holder past its lease."""
        raise NotImplementedError(f"{self.kind} store has no lease lock")

    def isolated_transaction(
        self, timeout: float, *, level: str, row_lock: bool = False, advisory: bool = False
    ) -> BuyerLock:
        """A transaction at isolation ``level`` (``read committed``,
        ``repeatable read``, ``serializable``) as the buyer's lock, taking
        nothing at its start; ``row_lock``: its read locks the row (``SELECT
        … FOR UPDATE``); ``advisory``: it first takes the store's advisory
        lock, held to its end. Lock waits are bounded by ``timeout``."""
        raise NotImplementedError(f"{self.kind} store has no isolation levels")

    def cleanup(self) -> int:
        """Remove what killed writers left behind (held under the store lock)."""
        return 0

    def close(self) -> None:  # noqa: B027 - a file store holds nothing open
        """Let go of connections."""
