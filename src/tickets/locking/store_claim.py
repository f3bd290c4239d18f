"""The store's own locks, as the parent takes them.

- ``<store>.lock`` around a restock and the cleanup of what killed writers
  left (``tickets init``, every run's start and its end). It is
  the ``file`` strategy's lock, so buyers, other invocations and
  ``flock(1)`` in a script all wait for it.
- ``<store>.sale``, held for a whole run: shared by ``--keep-stock`` runs,
  which make one sale together, and exclusive for a run or ``init`` that
  restocks, so that a restock never lands in the middle of someone else's
  sale (whose verdict would then blame the lock for lost updates).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..stores.base import Store, StoreError
from ..stores.spec import StoreSpec, state_folder
from .locks import LOCK_FILE_MODE, FileLock, LockTimeout, unusable_lock_file

#: How often a claim on a sale that is taken is tried again.
CLAIM_POLL = 0.01
#: The longest a run's end waits for the store lock to sweep (the next start sweeps too).
SWEEP_WAIT = 1.0


def check_lock_path(spec: StoreSpec) -> None:
    """Refuse lock paths that could lead a lock or write elsewhere (and make
    a server store's folder for them, see tickets.stores.spec.state_folder)."""
    if spec.path is None:
        _own_folder(state_folder())
    _check_lock_file(Path(spec.lock_path), ", or use another --lock-file")
    _check_lock_file(Path(spec.sale_path), "")  # the store's claim: --lock-file moves it not
    folder = Path(spec.lock_path).parent
    if not folder.is_dir():
        raise StoreError(spec.lock_path, f"folder {folder} does not exist", "create it first")


def _own_folder(folder: str) -> None:
    """Make the folder of this user's lock and claim files (0700), or refuse
    one that is not theirs alone: another user's, a link, open to others."""
    fix = (
        "remove it (tickets makes it again), or point $XDG_RUNTIME_DIR (else $TMPDIR) at a "
        "folder of your own"
    )
    parent = os.path.dirname(folder)
    if not os.path.isdir(parent):  # a stale $XDG_RUNTIME_DIR: make nothing at the root
        raise StoreError(folder, f"cannot be made: {parent} does not exist", fix)
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        info = os.lstat(folder)
    except OSError as exc:
        raise StoreError(folder, f"cannot be made: {exc.strerror}", fix) from None
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise StoreError(folder, "is not a folder (a link, a file)", fix)
    if info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise StoreError(folder, "is not this user's own folder (owner or mode)", fix)


def _check_lock_file(path: Path, elsewhere: str) -> None:
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    recreate = "remove it if it is a stray file (tickets recreates it)" + elsewhere
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
def store_lock(spec: StoreSpec, timeout: float) -> Iterator[None]:
    """Hold the store's file lock in the parent (restock, final read, cleanup)."""
    check_lock_path(spec)
    lock = FileLock(spec.lock_path, timeout)
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


def restock(store: Store, tickets: int | None, timeout: float) -> int:
    """Under the store lock: clean what killed writers left, restock to
    ``tickets`` unless None, and read the stock (``tickets init`` and every
    run's start)."""
    with store_lock(store.spec, timeout):
        store.cleanup()
        if tickets is not None:
            store.restock(tickets)
        return store.load()


def sweep(store: Store, timeout: float) -> None:
    """A run's end: under the store lock, clean what its killed writers left,
    as the next start would. Best effort: a lock still held after a short
    wait, or unusable now, leaves it to that next start."""
    if not store.sweeps:
        return
    try:
        with store_lock(store.spec, min(timeout, SWEEP_WAIT)):
            store.cleanup()
    except (StoreError, OSError):
        pass


class SaleClaim:
    """A run's hold on its store: shared (``--keep-stock``) or exclusive (a
    restock). Taken within ``timeout`` or not at all; held until closed, or
    until the process dies (the kernel lets go of a flock)."""

    def __init__(self, spec: StoreSpec, exclusive: bool, timeout: float) -> None:
        self.path = spec.sale_path
        flags = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC
        #: did this claim make the file (and so may remove it: see close)?
        self.created = True
        try:
            try:
                self._fd: int | None = os.open(self.path, flags | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                self.created = False
                self._fd = os.open(self.path, flags)
        except OSError as exc:
            raise unusable_lock_file(self.path, exc) from None
        kind = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(self._fd, kind | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    self.close(undo=True)
                    raise StoreError(self.path, *_busy(exclusive, timeout)) from None
                time.sleep(CLAIM_POLL)

    def close(self, *, undo: bool = False) -> None:
        """Let go of the store. ``undo``: the run never started, so a file
        this claim made is removed again (bad input changes nothing)."""
        if self._fd is not None:
            if undo and self.created:
                with contextlib.suppress(OSError):
                    os.unlink(self.path)
            os.close(self._fd)  # and with it the claim
            self._fd = None


def _busy(exclusive: bool, timeout: float) -> tuple[str, str]:
    if exclusive:
        return (
            f"another sale is running on this store (waited {timeout:g}s)",
            "wait for it to finish, or join it with --keep-stock",
        )
    return (
        f"the store is being restocked by another command (waited {timeout:g}s)",
        "wait for it to finish or raise --lock-timeout",
    )
