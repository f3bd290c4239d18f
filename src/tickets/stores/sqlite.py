"""A SQLite database as the store: one row of one table, in WAL mode.

``tickets init --db sqlite:sale.db`` creates ``tickets_stock(id, count)``
with its one row and puts the database in WAL mode (readers never block the
writer). Every process opens its own connection in autocommit mode; the
capabilities begin transactions themselves:

- :meth:`~SqliteStore.take` (the ``atomic`` strategy): one statement,
  ``UPDATE … SET count = count - 1 WHERE count > 0 RETURNING count + 1``
  (the seat), or, for a clerk's batch, one ``BEGIN IMMEDIATE`` transaction;
- :meth:`~SqliteStore.transaction_lock` (``transaction``): ``BEGIN
  IMMEDIATE`` around the read and the write: SQLite's own write lock,
  waited for up to ``--lock-timeout``;
- :meth:`~SqliteStore.deferred_transaction` (``deferred``): ``BEGIN``
  (deferred) around them: two buyers both read, and the second to write
  gets "database is locked" and rolls back: no oversell, but a failed sale
  (it fails safe).

A file that is not a database, lacks the table, is read-only, or is not a
regular file is refused before anything changes. A database is opened with
``mode=rw``, so a missing one is never created behind the user's back.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import stat
import time
from urllib.parse import quote

from ..constants import MAX_COUNT, TYPE_CHECKING
from ..locking.locks import BuyerLock, LockTimeout
from .base import NoEffect, Store, StoreError, WriteUnknown, disk_trouble, read_only_fs

if TYPE_CHECKING:
    from collections.abc import Callable

    from .spec import StoreSpec

TABLE = "tickets_stock"
INIT_FIX = "create it with `tickets init --db sqlite:PATH`"
#: The files SQLite writes: the database, its WAL and shared memory, and the
#: rollback journal of a database not yet in WAL mode.
SUFFIXES = ("", "-wal", "-shm", "-journal")
#: setuid, setgid, sticky: never kept on a file tickets writes (see json_file.save)
SPECIAL_BITS = 0o7000


class SqliteStore(Store):
    kind = "sqlite"
    sweeps = True

    def __init__(self, spec: StoreSpec, lock_timeout: float = 10.0) -> None:
        super().__init__(spec)
        self.path = str(spec.path)
        self.lock_timeout = lock_timeout
        self._conn: sqlite3.Connection | None = None

    # -- connecting ------------------------------------------------------

    def _refuse_odd_files(self) -> None:
        """Never open a FIFO (the open would block), a device or a symlink."""
        try:
            mode = os.lstat(self.path).st_mode
        except FileNotFoundError:
            return
        if stat.S_ISLNK(mode):
            raise StoreError(self.label, "is a symbolic link", "point --db at the real file")
        if stat.S_ISDIR(mode):
            raise StoreError(self.label, "is a folder, not a database", "point --db at a file")
        if not stat.S_ISREG(mode):
            raise StoreError(self.label, "is not a regular file", "point --db at a database")

    def connect(self, create: bool = False) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        self._refuse_odd_files()
        if not create and not os.path.exists(self.path):
            raise StoreError(self.label, "no such database", INIT_FIX)
        mode = "rwc" if create else "rw"
        # file:// and an empty host: a path of any bytes, never read as a host
        uri = f"file://{quote(os.fsencode(os.path.abspath(self.path)))}?mode={mode}"
        try:
            conn = sqlite3.connect(
                uri,
                uri=True,
                timeout=self.lock_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute(f"PRAGMA synchronous={'FULL' if self.fsync else 'NORMAL'}")
        except sqlite3.Error as exc:
            # Not even connected: held by another connection is a store that
            # cannot be used now (exit 3), never a refused sale.
            raise _as_store_error(self._error(exc), self.label) from None
        self._conn = conn
        return conn

    def raw_handle(self) -> sqlite3.Connection:
        return self.connect()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _error(self, exc: sqlite3.Error) -> Exception:
        """One line for what SQLite said; "locked" is a refusal that changed nothing."""
        text = str(exc)
        if "locked" in text or "busy" in text:
            return NoEffect(text)  # "database is locked": the statement changed nothing
        if "not a database" in text or "malformed" in text:
            return StoreError(self.label, "is not a SQLite database", INIT_FIX)
        if "no such table" in text:
            return StoreError(self.label, f"has no {TABLE} table", INIT_FIX)
        # SQLite names no errno: a full or read-only disk is asked of the file system.
        folder = os.path.dirname(self.path) or "."
        full = "full" in text  # SQLITE_FULL: no room for a page, or for the WAL to grow
        if full or any(w in text for w in ("readonly", "read-only", "unable to open", "I/O")):
            trouble = disk_trouble(self.label, folder, errno.ENOSPC if full else None)
            if trouble is not None:
                return trouble
        if "readonly" in text or "read-only" in text:
            return StoreError(self.label, "is read-only", "make it and its folder writable")
        if "unable to open" in text:
            return StoreError(self.label, "cannot be opened", "check the path and permissions")
        if "disk I/O error" in text:
            return StoreError(self.label, f"cannot be used ({text})", "check its disk")
        return StoreError(self.label, f"failed: {text}")

    # -- the interface ---------------------------------------------------

    def exists(self) -> bool:
        return os.path.lexists(self.path)

    def check_ready(self) -> None:
        self._refuse_odd_files()
        folder = os.path.dirname(self.path) or "."
        if not os.path.isdir(folder):
            raise StoreError(self.label, f"folder {folder} does not exist", "create it first")
        if not _writable(folder):
            raise read_only_fs(self.label, folder) or StoreError(
                self.label,
                f"folder {folder} is read-only",
                "make it writable: SQLite keeps its journal there",
            )
        if not os.path.exists(self.path):
            return
        if not _writable(self.path):
            raise StoreError(self.label, "is read-only", "make it writable (chmod u+w)")
        if os.path.getsize(self.path) == 0:
            return  # an empty database (`touch`, another connection's): init makes the table
        self.load()

    def load(self) -> int:
        try:
            row = self.connect().execute(f"SELECT count FROM {TABLE} WHERE id = 1").fetchone()
        except sqlite3.Error as exc:
            raise _as_store_error(self._error(exc), self.label) from None
        if row is None:
            raise StoreError(self.label, f"{TABLE} has no row", INIT_FIX)
        return self._count(row[0])

    def _count(self, value: object) -> int:
        """The count column's value, whatever the database holds there."""
        if type(value) is not int:
            raise StoreError(
                self.label,
                f"count is {str(value)[:40]!r}, not a whole number",
                "repair it or recreate it with `tickets init`",
            )
        if not 0 <= value <= MAX_COUNT:
            raise StoreError(
                self.label,
                f"count {value} is out of range 0..{MAX_COUNT:,}",
                "repair it or recreate it with `tickets init`",
            )
        return value

    def save(self, count: int, before_write: Callable[[], None] | None = None) -> None:
        conn = self.connect()
        if before_write is not None:
            before_write()
        try:
            conn.execute(f"UPDATE {TABLE} SET count = ? WHERE id = 1", (count,))
        except sqlite3.Error as exc:
            raise self._error(exc) from None

    def restock(self, count: int) -> None:
        conn = self.connect(create=True)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {TABLE} "
                "(id INTEGER PRIMARY KEY CHECK (id = 1), count INTEGER NOT NULL)"
            )
            conn.execute(f"INSERT OR REPLACE INTO {TABLE} (id, count) VALUES (1, ?)", (count,))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise _as_store_error(self._error(exc), self.label) from None

    def take(self, n: int, before_write: Callable[[], None] | None = None) -> int:
        conn = self.connect()
        if before_write is not None:
            before_write()
        try:
            if n == 1:
                row = conn.execute(
                    f"UPDATE {TABLE} SET count = count - 1 WHERE id = 1 AND count > 0 "
                    "RETURNING count + 1"
                ).fetchone()
                return 0 if row is None else self._count(row[0])
            conn.execute("BEGIN IMMEDIATE")
            try:
                count = self.load()
                if count:
                    conn.execute(
                        f"UPDATE {TABLE} SET count = ? WHERE id = 1", (count - min(n, count),)
                    )
                conn.execute("COMMIT")
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            return count
        except sqlite3.Error as exc:
            raise self._error(exc) from None

    def transaction_lock(self, timeout: float) -> BuyerLock:
        return Transaction(self, immediate=True, timeout=timeout)

    def deferred_transaction(self, timeout: float) -> BuyerLock:
        return Transaction(self, immediate=False, timeout=timeout)

    def cleanup(self) -> int:
        """Drop setuid, setgid and sticky bits from the files SQLite writes,
        as every write of the JSON store does (under the store lock, at
        ``tickets init`` and a run's start and end: SQLite writes in place,
        so this is where the tool can). The connection is closed first:
        closing another descriptor of the database would drop the POSIX
        locks SQLite holds on it through this process."""
        self.close()
        for suffix in SUFFIXES:
            _drop_special_bits(self.path + suffix)
        return 0


def _drop_special_bits(path: str) -> None:
    """Through a descriptor, never a link; a file that is not ours stays as
    it is (the kernel drops these bits when another user writes it)."""
    try:
        if not os.lstat(path).st_mode & SPECIAL_BITS:
            return
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISREG(mode) and mode & SPECIAL_BITS:
            os.fchmod(fd, stat.S_IMODE(mode) & ~SPECIAL_BITS)
    except OSError:
        pass
    finally:
        os.close(fd)


def _writable(path: str) -> bool:
    """Writable by permission bits too: as root, access() allows everything."""
    return os.access(path, os.W_OK) and bool(os.stat(path).st_mode & stat.S_IWUSR)


def _as_store_error(exc: Exception, label: str) -> StoreError:
    if isinstance(exc, StoreError):
        return exc
    fix = "wait for the other writer or raise --lock-timeout"
    return StoreError(label, f"is busy ({exc})", fix)


class Transaction(BuyerLock):
    """A SQLite transaction as the buyer's "lock": begun on acquire, committed
    on release, rolled back when the critical section failed. ``immediate``
    takes the database's write lock at once (waiting up to ``timeout``);
    a deferred one takes it only at the write, and fails there if another
    writer got in first."""

    def __init__(self, store: SqliteStore, *, immediate: bool, timeout: float) -> None:
        super().__init__(timeout)
        self.store = store
        self.immediate = immediate

    def acquire(self) -> None:
        conn = self.store.connect()
        begin = "BEGIN IMMEDIATE" if self.immediate else "BEGIN DEFERRED"
        started = time.monotonic()
        try:
            conn.execute(begin)
        except sqlite3.Error as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                waited = time.monotonic() - started
                raise LockTimeout(
                    f"the database's write lock (waited {waited:.1f}s)", self.timeout
                ) from None
            raise self.store._error(exc) from None

    def release(self) -> None:
        """COMMIT. Refused for a lock ("database is locked"): rolled back,
        nothing changed. Failed otherwise (a full disk, an I/O error): whether
        it landed is unknown."""
        conn = self.store.connect()
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            locked = "locked" in str(exc) or "busy" in str(exc)
            try:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            except sqlite3.Error:
                locked = False
            if locked:
                raise NoEffect(f"the commit was refused and rolled back ({exc})") from None
            # The reason names a full disk as every store error does (see disk_kind).
            raise WriteUnknown(f"the commit failed ({self.store._error(exc)})") from None

    def abort(self) -> None:
        conn = self.store.connect()
        if conn.in_transaction:
            conn.execute("ROLLBACK")
