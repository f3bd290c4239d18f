"""The stores: where the remaining count lives.

- :mod:`.json_file`: a JSON file ``{"count": N}``, the default;
- :mod:`.sqlite`: a SQLite database (stdlib ``sqlite3``);
- :mod:`.redis`: a key on a Redis server (``redis``, imported only for it);
- :mod:`.postgres`: a row of a table on a PostgreSQL server (psycopg 3,
  the optional extra ``tickets[postgres]``, imported only for it).

:mod:`.spec` parses ``--db`` into a :class:`~.spec.StoreSpec`;
:func:`open_store` opens one in the process that uses it; :mod:`.base` is
the interface every store offers, and the capabilities an engine may add
to it. Which strategies a store takes follows from its capabilities
(:func:`tickets.locking.strategies.strategies_for`).
"""

from __future__ import annotations

from ..constants import TYPE_CHECKING
from .base import (
    DEFERRED_TRANSACTION,
    ISOLATED_TRANSACTION,
    LEASE_LOCK,
    TAKE,
    TAKE_OPTIMISTIC,
    TRANSACTION_LOCK,
    NoEffect,
    Store,
    StoreError,
    WriteUnknown,
)
from .json_file import JsonFileStore

if TYPE_CHECKING:
    import os

    from .spec import StoreSpec

__all__ = [
    "KIND_CAPABILITIES",
    "NoEffect",
    "Store",
    "StoreError",
    "WriteUnknown",
    "open_db",
    "open_store",
]

#: Each engine's :attr:`Store.capabilities`, known without loading its module:
#: redis-py alone takes half a second to import, and a history of a Redis
#: sale is checked without it. tests/test_locks.py holds every store class
#: to its line here.
KIND_CAPABILITIES: dict[str, frozenset[str]] = {
    "json": JsonFileStore.capabilities,
    "sqlite": frozenset({TAKE, TRANSACTION_LOCK, DEFERRED_TRANSACTION}),
    "redis": frozenset({TAKE, TAKE_OPTIMISTIC, LEASE_LOCK}),
    "postgres": frozenset({TAKE, ISOLATED_TRANSACTION}),
}


def open_store(spec: StoreSpec, lock_timeout: float = 10.0, fsync: bool = False) -> Store:
    """The store ``spec`` names, opened lazily (a server is first asked at
    the first call). ``lock_timeout`` bounds a SQLite wait for its write lock."""
    store: Store
    if spec.kind == "sqlite":
        from .sqlite import SqliteStore

        store = SqliteStore(spec, lock_timeout)
    elif spec.kind == "redis":
        from .redis import RedisStore

        store = RedisStore(spec, lock_timeout)
    elif spec.kind == "postgres":
        from .postgres import PostgresStore

        store = PostgresStore(spec, lock_timeout)
    else:
        store = JsonFileStore(spec)
    store.fsync = fsync
    return store


def open_db(db: str | os.PathLike[str] | StoreSpec, lock_timeout: float = 10.0) -> Store:
    """The store ``db`` names, in ``--db``'s words: a JSON file's path,
    ``sqlite:PATH``, ``redis://HOST…`` or ``postgresql://…`` (:class:`~.spec.BadStoreURL` if it
    is none of them), or a spec :func:`~.spec.parse_db` made."""
    from .spec import StoreSpec, parse_db

    return open_store(db if isinstance(db, StoreSpec) else parse_db(db), lock_timeout)
