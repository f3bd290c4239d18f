"""The stores: where the remaining count lives.

- :mod:`.json_file`: a JSON file ``{"count": N}``, the default;
- :mod:`.sqlite`: a SQLite database (stdlib ``sqlite3``);
- :mod:`.redis`: a key on a Redis server (``redis``, imported only for it).

:mod:`.spec` parses ``--db`` into a :class:`~.spec.StoreSpec`;
:func:`open_store` opens one in the process that uses it; :mod:`.base` is
the interface every store offers. Which strategies each store takes is
:data:`tickets.constants.STORE_STRATEGIES`.
"""

from __future__ import annotations

from ..constants import TYPE_CHECKING
from .base import NoEffect, Store, StoreError, WriteUnknown
from .json_file import JsonFileStore

if TYPE_CHECKING:
    from .spec import StoreSpec

__all__ = ["NoEffect", "Store", "StoreError", "WriteUnknown", "open_db", "open_store"]


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
    else:
        store = JsonFileStore(spec)
    store.fsync = fsync
    return store


def open_db(db: str, lock_timeout: float = 10.0) -> Store:
    """The store ``db`` names, in ``--db``'s words: a JSON file's path,
    ``sqlite:PATH`` or ``redis://HOST…`` (:class:`~.spec.BadStoreURL` if it
    is none of them)."""
    from .spec import parse_db

    return open_store(parse_db(db), lock_timeout)
