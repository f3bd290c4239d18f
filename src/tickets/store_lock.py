"""The store's own lock, as the parent takes it: around a restock, the
final read and the cleanup of orphan temp files (``tickets init`` and every
run's start and end). It is the ``file`` strategy's lock, so buyers, other
invocations and ``flock(1)`` in a script all wait for it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from . import store
from .locks import LOCK_FILE_MODE, FileLock, LockTimeout
from .store import StoreError, lock_path


def check_lock_path(store: Path) -> None:
    """Refuse a lock path that could lead a lock or write elsewhere."""
    path = lock_path(store)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    recreate = "remove it; tickets recreates the lock file"
    if stat.S_ISLNK(mode):
        raise StoreError(path, "is a symbolic link", recreate)
    if stat.S_ISDIR(mode):
        raise StoreError(path, "is a folder, not a lock file", "remove it")
    if not stat.S_ISREG(mode):
        raise StoreError(path, "is not a regular file", recreate)


def _tighten(path: str) -> None:
    """A lock file someone left world-writable is made 0644 if it is ours."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if info.st_mode & 0o002 and info.st_uid == os.geteuid():
        os.chmod(path, LOCK_FILE_MODE, follow_symlinks=False)


@contextmanager
def store_lock(store: Path, timeout: float) -> Iterator[None]:
    """Hold the store's file lock in the parent (restock, final read, cleanup)."""
    check_lock_path(store)
    lock = FileLock(store, timeout)
    try:
        lock.acquire()
    except LockTimeout:
        raise StoreError(
            lock.path,
            f"is held by another process (waited {timeout:g}s)",
            "wait for it to finish or raise --lock-timeout",
        ) from None
    try:
        _tighten(lock.path)
        yield
    finally:
        lock.release()


def restock(store_path: Path, tickets: int | None, timeout: float, *, fsync: bool = False) -> int:
    """Under the store lock: clean orphan temp files, restock to ``tickets``
    unless None, and read the stock (``tickets init`` and every run's start)."""
    with store_lock(store_path, timeout):
        store.remove_orphan_temps(store_path)
        if tickets is not None:
            store.save(store_path, tickets, fsync=fsync)
        return store.load(store_path)
