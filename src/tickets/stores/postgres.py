"""A row of a table on a PostgreSQL server as the store.

``tickets init --db postgresql://…?table=T&key=K`` creates ``T(key text
PRIMARY KEY, count bigint NOT NULL)`` if it is missing and sets row ``K``.
Client: psycopg 3 (``pip install 'tickets[postgres]'``), one connection per
process in autocommit mode, never retried by the driver (a statement sent
twice could sell twice). Every connection is opened with ``lock_timeout``
(``--lock-timeout``: a wait for a row lock, an advisory lock or the table)
and a ``statement_timeout`` past it, so that no statement waits for ever.

The capabilities PostgreSQL has of its own:

- :meth:`~PostgresStore.take` (``atomic``): one statement, ``UPDATE … SET
  count = count - LEAST(count, n) … WHERE count > 0`` returning the count
  before;
- :meth:`~PostgresStore.isolated_transaction`: a transaction as the buyer's
  lock, at an isolation level, begun on acquire and committed on release:
  ``read-committed`` (PostgreSQL's default; the read-modify-write loses
  updates), ``repeatable-read`` and ``serializable`` (the second writer is
  refused with a serialization failure: a known failure, retried with
  ``--retries``), ``for-update`` (the read is ``SELECT … FOR UPDATE``) and
  ``advisory`` (``pg_advisory_xact_lock`` first).

Errors are told by their SQLSTATE: a refused password, a missing database
or table, a table of another shape, a read-only role or server, a timeout:
one line each, naming the store (never its password).
"""

from __future__ import annotations

import os
import time

from ..constants import MAX_COUNT, TYPE_CHECKING
from ..errors import UsageProblem
from ..locking.locks import BuyerLock, LockTimeout
from .base import NoEffect, Refused, Store, StoreError, WriteUnknown
from .pg_url import scrub

try:
    import psycopg
    from psycopg import sql
except ImportError:  # the optional extra
    psycopg = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeVar

    from .spec import StoreSpec

    Reply = TypeVar("Reply")

EXTRA_FIX = "install it with: pip install 'tickets[postgres]'"
INIT_FIX = "create it with `tickets --db URL init -t N` (or is ?table= or ?key= a typo?)"
SHAPE = "key text PRIMARY KEY, count bigint NOT NULL"
#: The isolation levels, as BEGIN names them.
LEVELS = ("read committed", "repeatable read", "serializable")
#: SQLSTATE classes and codes the store tells apart.
SERIALIZATION = ("40001", "40P01")  # serialization failure, deadlock detected
LOCK_NOT_AVAILABLE = "55P03"
QUERY_CANCELED = "57014"  # statement_timeout, or a cancel
UNDEFINED_TABLE = "42P01"
#: undefined column, datatype mismatch, no unique key for ON CONFLICT, a value
#: out of range, a NULL, text where a number goes (or the other way round)
WRONG_SHAPE = ("42703", "42804", "42P10", "22003", "23502", "22P02", "42883")
NO_PRIVILEGE = "42501"
READ_ONLY = "25006"
NO_DATABASE = "3D000"
BAD_LOGIN = ("28P01", "28000")
#: How libpq words a refused login when it gives no SQLSTATE (while connecting).
REFUSED_LOGIN = ("password authentication failed", "no password supplied", 'role "')


class MissingDriver(UsageProblem):
    """psycopg is not installed: a usage problem (exit 2), named with its fix."""


def require_driver(label: str) -> None:
    if psycopg is None:
        raise MissingDriver(f"{label}: a PostgreSQL store needs psycopg 3; {EXTRA_FIX}")


class PostgresStore(Store):
    kind = "postgres"

    def __init__(self, spec: StoreSpec, lock_timeout: float = 10.0) -> None:
        super().__init__(spec)
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._pid = os.getpid()
        require_driver(self.label)
        self.key = str(spec.key)
        self.lock_timeout = lock_timeout
        parts = str(spec.table).split(".")
        self.table = sql.SQL(".").join(sql.Identifier(part) for part in parts)
        #: the table as text the server's name functions read: quoted as the
        #: statements quote it (``Stock`` is "Stock", never stock)
        self.regname = ".".join(f'"{part}"' for part in parts)
        #: the read of a ``for-update`` transaction locks the row
        self.row_lock = False

    # -- connecting ------------------------------------------------------

    def connect(self) -> psycopg.Connection[tuple[object, ...]]:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        reused = _POOL.take(self._conninfo()) if _POOL.pid == os.getpid() else None
        if reused is not None:
            self._conn = reused
            return reused
        try:
            self._conn = psycopg.connect(self._conninfo(), autocommit=True)
            self._pid = os.getpid()
        except psycopg.Error as exc:
            raise self._error(exc, connecting=True) from None
        return self._conn

    @property
    def in_transaction(self) -> bool:
        """Is this connection inside a transaction (begun, not yet ended)?"""
        conn = self._conn
        if conn is None or conn.closed:
            return False
        return conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE

    def _conninfo(self) -> str:
        spec = self.spec
        wait_ms = max(1, round(self.lock_timeout * 1000))
        options = f"-c lock_timeout={wait_ms} -c statement_timeout={wait_ms + 10_000}"
        given = {
            "host": spec.host,
            "port": spec.port,
            "dbname": spec.db,
            "user": spec.username,
            "password": spec.password,
        }
        return psycopg.conninfo.make_conninfo(
            "",
            connect_timeout=max(1, round(spec.connect_timeout + 0.499)),
            application_name="tickets",
            options=options,
            **{name: value for name, value in given.items() if value is not None},
        )

    def raw_handle(self) -> psycopg.Connection[tuple[object, ...]]:
        return self.connect()

    def __del__(self) -> None:
        if self._pid == os.getpid():  # never a connection of the process this one forked from
            self.close()  # a library caller's store, dropped: its connection goes with it

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if _POOL.pid == os.getpid() and _POOL.give(self._conninfo(), conn):
            return  # the next buyer on this worker's threads takes it up
        try:
            conn.close()
        except psycopg.Error:
            pass

    def _error(self, exc: BaseException, connecting: bool = False) -> Exception:
        """One line for what the server or the driver said."""
        code = getattr(exc, "sqlstate", None) or ""
        text = scrub(" ".join(str(exc).split())[:200], self.spec.password)
        if code in SERIALIZATION:
            return Refused(f"the database refused the transaction ({text})")
        if code == LOCK_NOT_AVAILABLE:
            return LockTimeout(f"a lock of {self.label}", self.lock_timeout)
        if code == QUERY_CANCELED:
            return NoEffect(f"the statement was cancelled ({text})")
        if code == UNDEFINED_TABLE:
            return StoreError(self.label, f"has no table {self.spec.table}", INIT_FIX)
        if code in WRONG_SHAPE:
            return StoreError(
                self.label,
                f"table {self.spec.table} is not a tickets table ({text})",
                f"use another table= (tickets makes one: {SHAPE})",
            )
        if code == NO_PRIVILEGE:
            return StoreError(
                self.label, f"is not allowed ({text})", "grant the role what it needs"
            )
        if code == READ_ONLY:
            return StoreError(self.label, "is read-only", "point --db at a writable server")
        if code == NO_DATABASE:
            return StoreError(self.label, f"has no database {self.spec.db}", "create it first")
        if code in BAD_LOGIN or any(words in text for words in REFUSED_LOGIN):
            return StoreError(
                self.label, "refused the user name or password", "check the credentials"
            )
        if connecting and "FATAL:  database" in str(exc) and "does not exist" in text:
            return StoreError(self.label, f"has no database {self.spec.db}", "create it first")
        if connecting or isinstance(exc, psycopg.OperationalError):
            return StoreError(
                self.label,
                f"cannot be reached ({text})",
                "start the server, or check the host, port and --connect-timeout",
            )
        return StoreError(self.label, f"failed: {text}")

    def call(
        self, statement: sql.Composable | str, args: tuple[object, ...] = ()
    ) -> list[tuple[object, ...]]:
        """Run one statement; its rows. Errors in one line."""
        conn = self.connect()
        try:
            cur = conn.execute(statement, args or None)  # type: ignore[arg-type]
            return list(cur.fetchall()) if cur.description else []
        except psycopg.Error as exc:
            raise self._error(exc) from None

    def writing(self, what: Callable[[], Reply]) -> Reply:
        """A call that may change the stock: a connection lost on the way
        leaves it unknown whether the server applied it."""
        try:
            return what()
        except StoreError as exc:
            if self._conn is None or self._conn.closed or self._conn.broken:
                raise WriteUnknown(f"the connection was lost ({exc})") from None
            raise

    def _count(self, rows: list[tuple[object, ...]]) -> int:
        if not rows:
            raise StoreError(self.label, f"has no row {self.key!r}", INIT_FIX)
        value = rows[0][0]
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

    # -- the interface ---------------------------------------------------

    def exists(self) -> bool:
        if not self._table_exists():
            return False
        self._check_shape()
        query = sql.SQL("SELECT 1 FROM {} WHERE key = %s").format(self.table)
        return bool(self.call(query, (self.key,)))

    def _table_exists(self) -> bool:
        rows = self.call("SELECT to_regclass(%s) IS NOT NULL", (self.regname,))
        return bool(rows and rows[0][0])

    def check_ready(self) -> None:
        """Reachable and logged in; writable (not a read-only role, session
        or standby); the table, if there is one, of the tool's shape and
        writable by this role; the row, if there is one, a count."""
        rows = self.call(
            "SELECT current_setting('transaction_read_only') = 'on' OR pg_is_in_recovery()"
        )
        if rows and rows[0][0]:
            raise StoreError(
                self.label, "is read-only (a read-only role or a standby)", "point --db elsewhere"
            )
        if not self._table_exists():
            return
        self._check_shape()
        rows = self.call(
            # each on its own: a list of privileges asks whether any is held
            "SELECT has_table_privilege(%s, 'SELECT') AND has_table_privilege(%s, 'UPDATE')",
            (self.regname,) * 2,
        )
        if rows and not rows[0][0]:
            raise StoreError(
                self.label,
                f"is not writable by this role (it may not update {self.spec.table})",
                "grant it SELECT, UPDATE (and INSERT, for init) on the table, or use another user",
            )
        query = sql.SQL("SELECT count FROM {} WHERE key = %s").format(self.table)
        rows = self.call(query, (self.key,))
        if rows:
            self._count(rows)

    def _check_shape(self) -> None:
        """The table holds a text ``key`` that is unique and an integer ``count``."""
        rows = self.call(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped "
            "AND a.attname IN ('key', 'count')",
            (self.regname,),
        )
        types = {str(name): str(kind) for name, kind in rows}
        unique = self.call(
            "SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON "
            "a.attrelid = i.indrelid AND a.attnum = ALL(i.indkey) WHERE i.indrelid = "
            "to_regclass(%s) AND i.indisunique AND i.indnatts = 1 AND a.attname = 'key')",
            (self.regname,),
        )
        text = types.get("key", "").startswith(("text", "character varying"))
        whole = types.get("count") in ("smallint", "integer", "bigint")
        if text and whole and unique and unique[0][0]:
            return
        found = ", ".join(f"{name} {kind}" for name, kind in sorted(types.items())) or "neither"
        raise StoreError(
            self.label,
            f"table {self.spec.table} is not a tickets table (key and count: {found}"
            f"{'' if not unique or unique[0][0] else ', key not unique'})",
            f"use another table= (tickets makes one: {SHAPE})",
        )

    def load(self) -> int:
        lock = " FOR UPDATE" if self.row_lock else ""
        query = sql.SQL("SELECT count FROM {} WHERE key = %s" + lock).format(self.table)
        return self._count(self.call(query, (self.key,)))

    def save(self, count: int, before_write: Callable[[], None] | None = None) -> None:
        query = sql.SQL("UPDATE {} SET count = %s WHERE key = %s RETURNING 1").format(self.table)
        self.connect()
        if before_write is not None:
            before_write()
        if not self.writing(lambda: self.call(query, (count, self.key))):
            raise StoreError(self.label, f"has no row {self.key!r}", INIT_FIX)

    def restock(self, count: int) -> None:
        """Create the table if it is missing and set the row, in one
        transaction: a role that may not create it, or a table of another
        shape, leaves nothing half made."""
        create = sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (key text PRIMARY KEY, count bigint NOT NULL)"
        ).format(self.table)
        upsert = sql.SQL(
            "INSERT INTO {} (key, count) VALUES (%s, %s) "
            "ON CONFLICT (key) DO UPDATE SET count = EXCLUDED.count"
        ).format(self.table)
        self.check_ready()
        conn = self.connect()
        try:
            with conn.transaction():
                if not self._table_exists():
                    conn.execute(create)
                conn.execute(upsert, (self.key, count))
        except psycopg.Error as exc:
            raise _as_store_error(self._error(exc), self.label) from None

    def take(self, n: int, before_write: Callable[[], None] | None = None) -> int:
        """Up to ``n`` at once, in one statement: the row is locked by the
        UPDATE itself, and ``count > 0`` is evaluated on the newest row."""
        query = sql.SQL(
            "UPDATE {t} AS s SET count = s.count - LEAST(s.count, %s) "
            "FROM (SELECT count FROM {t} WHERE key = %s FOR UPDATE) AS before "
            "WHERE s.key = %s RETURNING before.count"
        ).format(t=self.table)
        self.connect()
        if before_write is not None:
            before_write()
        return self._count(self.writing(lambda: self.call(query, (n, self.key, self.key))))

    def isolated_transaction(
        self, timeout: float, *, level: str, row_lock: bool = False, advisory: bool = False
    ) -> BuyerLock:
        return IsolatedTransaction(self, timeout, level=level, row_lock=row_lock, advisory=advisory)


class ConnectionPool:
    """A worker's connections, handed from one buyer to the next (a buyer
    on a worker's thread holds one for its purchase, as a client of a
    connection pool does): a new connection costs the server a process.
    Only in the process that started it (:func:`reuse_connections`); a
    connection comes back only idle, outside any transaction, and unbroken."""

    def __init__(self) -> None:
        import threading

        self.pid = 0
        self.idle: dict[str, list[psycopg.Connection[tuple[object, ...]]]] = {}
        self.guard = threading.Lock()

    def take(self, conninfo: str) -> psycopg.Connection[tuple[object, ...]] | None:
        with self.guard:
            idle = self.idle.get(conninfo)
            return idle.pop() if idle else None

    def give(self, conninfo: str, conn: psycopg.Connection[tuple[object, ...]]) -> bool:
        idle_now = psycopg.pq.TransactionStatus.IDLE
        if conn.closed or conn.broken or conn.info.transaction_status != idle_now:
            return False
        with self.guard:
            self.idle.setdefault(conninfo, []).append(conn)
        return True

    def close(self) -> None:
        with self.guard:
            every = [conn for idle in self.idle.values() for conn in idle]
            self.idle.clear()
            self.pid = 0
        for conn in every:
            try:
                conn.close()
            except psycopg.Error:
                pass


_POOL = ConnectionPool()


def reuse_connections(on: bool) -> None:
    """In a worker: buyers on its threads hand their connections on (``on``),
    or, at its end, every idle connection is closed."""
    if on:
        _POOL.pid = os.getpid()
    else:
        _POOL.close()


def _as_store_error(exc: Exception, label: str) -> StoreError:
    if isinstance(exc, StoreError):
        return exc
    fix = "wait for the other writer or raise --lock-timeout"
    return StoreError(label, f"is busy ({exc})", fix)


class IsolatedTransaction(BuyerLock):
    """A PostgreSQL transaction as the buyer's "lock": ``BEGIN ISOLATION
    LEVEL …`` on acquire, ``COMMIT`` on release, ``ROLLBACK`` when the
    critical section failed. It takes nothing at its start, unless it is
    ``advisory``."""

    def __init__(
        self, store: PostgresStore, timeout: float, *, level: str, row_lock: bool, advisory: bool
    ) -> None:
        super().__init__(timeout)
        assert level in LEVELS, level
        self.store = store
        self.level = level
        self.row_lock = row_lock
        self.advisory = advisory
        #: does it take a lock at its start that another buyer's waits for?
        #: (the explorer sees begin and commit as steps on the store, else)
        self.immediate = advisory

    def acquire(self) -> None:
        store = self.store
        store.call(f"BEGIN ISOLATION LEVEL {self.level.upper()}")
        if self.advisory:
            started = time.monotonic()
            try:
                store.call("SELECT pg_advisory_xact_lock(hashtext(%s))", (_advisory_name(store),))
            except LockTimeout:
                self.abort()
                waited = time.monotonic() - started
                raise LockTimeout(
                    f"the advisory lock of {store.label} (waited {waited:.1f}s)", self.timeout
                ) from None
            except BaseException:
                self.abort()
                raise
        store.row_lock = self.row_lock

    def release(self) -> None:
        """COMMIT. A serialization failure there: rolled back, nothing
        changed (:class:`Refused`). A connection lost there: unknown."""
        self.store.row_lock = False
        try:
            self.store.call("COMMIT")
        except (NoEffect, LockTimeout):
            self.abort()
            raise
        except StoreError as exc:
            self.abort()
            raise WriteUnknown(f"the commit failed ({exc})") from None

    def abort(self) -> None:
        self.store.row_lock = False
        conn = self.store._conn
        if conn is None or conn.closed:
            return
        try:
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                conn.execute("ROLLBACK")
        except psycopg.Error:
            pass


def _advisory_name(store: PostgresStore) -> str:
    """What the advisory lock is named after: the database's table and row
    (hashed by the server to its 32-bit key)."""
    return f"tickets:{store.spec.table}:{store.key}"


def drop_scratch_tables(spec: StoreSpec, name: str, *, prefix: bool = False) -> None:
    """Drop ``tickets explore``'s scratch table ``name`` (``prefix``: every
    table whose name starts with it, in ``name``'s schema). Errors are
    ignored: a server gone took its tables' use with it."""
    schema, _, table = name.rpartition(".")
    store = PostgresStore(spec._replace(table=name), 2.0)
    try:
        if prefix:
            rows = store.call(
                "SELECT schemaname, tablename FROM pg_tables WHERE schemaname = "
                "COALESCE(NULLIF(%s, ''), current_schema()) AND starts_with(tablename, %s)",
                (schema, table),
            )
        else:
            rows = [(schema or None, table)]
        for found_schema, found in rows[:1000]:
            parts = [str(found_schema), str(found)] if found_schema else [str(found)]
            target = sql.SQL(".").join(sql.Identifier(part) for part in parts)
            store.call(sql.SQL("DROP TABLE IF EXISTS {}").format(target))
    except Exception:
        pass
    finally:
        store.close()
