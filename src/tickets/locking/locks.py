"""The locks a buyer can hold around its read-modify-write.

Shaped like filelock's ``_api.py``: a small abstract lock with a context
manager, concrete locks beside it; the stores add their own (a SQLite
transaction, a Redis lease). :mod:`tickets.locking.strategies` says which lock each
strategy builds. A file lock is a descriptor of the process that opened it,
so it is only ever built in the process that uses it. Buyers run this
module: it keeps the lean-import rule of
:mod:`tickets.engine.child` (``filelock`` is imported only when a ``file`` lock is
first built).

The two file strategies take the same advisory ``flock(2)`` on
``<store>.lock`` and exclude each other, and ``flock(1)`` in a shell script:

- ``file`` is ``filelock.FileLock``: a non-blocking ``flock``, retried every
  :data:`FILE_POLL_INTERVAL` until it is free, so a waiter wakes up to one
  interval late (the hand-off gaps ``race --strategies file,flock`` shows);
- ``flock`` is what filelock does without polling: one blocking ``flock``,
  queued in the kernel, which wakes a waiter the moment the lock is free.
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import time
from abc import ABC, abstractmethod

from ..constants import TYPE_CHECKING
from ..errors import StoreError, TicketsError

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import FrameType, TracebackType
    from typing import Protocol

    #: What ``signal.signal`` takes and returns.
    Handler = Callable[[int, FrameType | None], object] | int | signal.Handlers | None

    class SharedLock(Protocol):
        """A lock several buyers hold a handle on: a ``multiprocessing.Lock``
        the parent made, or a worker's ``threading.Lock``."""

        def acquire(self, block: bool = ..., /, timeout: float = ...) -> bool: ...

        def release(self) -> None: ...


__all__ = [
    "BuyerLock",
    "FileLock",
    "FlockLock",
    "LockTimeout",
    "NoLock",
    "ProcessLock",
    "install_alarm",
]

#: The lock file is made readable by all but writable by its owner only.
LOCK_FILE_MODE = 0o644
#: How often a ``file`` lock's waiter retries. Each retry costs ~56 us of CPU
#: (filelock opens the lock file anew), so 50 waiters polling every 2 ms burn
#: over a core; every 50 ms (filelock's default) leaves the lock idle after a
#: release: the default sale took 266 ms against 142 ms at 10 ms, two buyers
#: 87 ms against 58 ms (2 ms: 143 and 37 ms). Measured with 2, 50, 400 and
#: 1,000 buyers; the figures are in the README ("Speed").
FILE_POLL_INTERVAL = 0.01


class LockTimeout(TicketsError):
    """The lock was not acquired within the timeout (a busy store: exit 3)."""

    def __init__(self, what: str, timeout: float) -> None:
        self.what = what
        self.timeout = timeout
        super().__init__(f"{what} was not acquired within {timeout:g}s")


class BuyerLock(ABC):
    """What a buyer holds around its read-modify-write."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    @abstractmethod
    def acquire(self) -> None:
        """Block until held; raise :class:`LockTimeout` after ``timeout``."""

    @abstractmethod
    def release(self) -> None: ...

    def abort(self) -> None:
        """Let go after the critical section failed (a transaction rolls back)."""
        self.release()

    def close(self) -> None:  # noqa: B027 - most locks hold nothing open
        """Let go of what the lock holds open (a buyer's exit does it too)."""

    def __enter__(self) -> BuyerLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class NoLock(BuyerLock):
    def acquire(self) -> None:
        pass

    def release(self) -> None:
        pass


class ProcessLock(BuyerLock):
    """A ``multiprocessing.Lock`` handed down by the parent (on a worker's
    thread, a ``threading.Lock`` of the worker's)."""

    def __init__(self, lock: SharedLock, timeout: float) -> None:
        super().__init__(timeout)
        self._lock = lock

    def acquire(self) -> None:
        if not self._lock.acquire(timeout=self.timeout):
            raise LockTimeout("the run's process lock", self.timeout)

    def release(self) -> None:
        self._lock.release()


def names_held_file(path: str, fd: int) -> bool:
    """Does ``path`` still name the file ``fd`` has open?

    Someone may delete ``<store>.lock`` while it is held: the next process
    then creates a new file at the path and locks that one, while those who
    opened the old file before it went lock the old one, and two chains of
    holders overlap. A lock taken on a file the path no longer names is let
    go and taken again on the one it does name.
    """
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


def unusable_lock_file(path: str | os.PathLike[str], exc: OSError) -> StoreError:
    """The one-line error for a lock file that cannot be opened."""
    if os.path.islink(path):
        return StoreError(path, "is a symbolic link", "remove it; tickets recreates the lock file")
    if isinstance(exc, PermissionError):
        return StoreError(path, "cannot be opened (permission denied)", "fix its permissions")
    return StoreError(path, f"cannot be opened ({exc.strerror or exc})")


class FileLock(BuyerLock):
    """``filelock.FileLock`` on the lock file (``<store>.lock``): polls every
    :data:`FILE_POLL_INTERVAL`.

    The lock file stays in place on release, so every waiter, and
    ``flock(1)``, locks the same inode; the kernel drops the lock when its
    holder dies. No soft-lock fallback: on a file system without ``flock``
    a marker file would not exclude the ``flock`` strategy or a shell script.
    """

    def __init__(self, path: str | os.PathLike[str], timeout: float) -> None:
        super().__init__(timeout)
        import filelock  # here, not at the top: see tickets.engine.child

        self.path = os.fspath(path)
        self._timeout_error = filelock.Timeout
        self._stale = False
        self._lock = filelock.FileLock(
            self.path,
            timeout=timeout,
            mode=LOCK_FILE_MODE,
            poll_interval=FILE_POLL_INTERVAL,
            fallback_to_soft=False,
            preserve_lock_file=True,
            on_acquired=self._check_held,
        )

    def _check_held(self, fd: int) -> None:
        self._stale = not names_held_file(self.path, fd)

    def acquire(self) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                self._lock.acquire(timeout=max(0.0, deadline - time.monotonic()))
            except self._timeout_error:
                raise LockTimeout(f"lock {self.path}", self.timeout) from None
            except OSError as exc:
                raise unusable_lock_file(self.path, exc) from None
            if not self._stale:
                return
            self._lock.release()  # a deleted lock file's: take the one the path names

    def release(self) -> None:
        self._lock.release()


class _Expired(Exception):
    pass


def _expire(signum: int, frame: FrameType | None) -> None:
    raise _Expired


#: True where SIGALRM already runs ``_expire`` for good: see :func:`install_alarm`.
_alarm_installed = False


def install_alarm() -> None:
    """Make SIGALRM the ``flock`` lock's timer, here and in every child forked from here.

    The launcher calls it once before forking buyers: a buyer's lock then
    finds the handler in place, instead of paying for ``signal.signal`` in a
    fresh child (~0.2 ms: the signal module wraps handlers in enums).
    """
    global _alarm_installed
    signal.signal(signal.SIGALRM, _expire)
    _alarm_installed = True


#: Threads of a worker blocked in ``flock``: thread id -> deadline. The
#: worker's main thread interrupts a wait past its deadline with
#: :data:`WAKE_SIGNAL` (see :func:`wake_late_waiters`).
WAITERS: dict[int, float] = {}
#: The signal that ends a worker thread's ``flock`` wait (handled, not restarted).
WAKE_SIGNAL = signal.SIGUSR2
#: libc's ``flock(fd, operation)``, once a worker has loaded it.
_libc_flock: Callable[[int, int], int] | None = None


def _woken(signum: int, frame: FrameType | None) -> None:
    pass  # the interrupted flock returns EINTR; its thread sees its deadline


def install_wake_signal() -> None:
    """In a worker's main thread: WAKE_SIGNAL interrupts a blocked ``flock``."""
    global _libc_flock
    import ctypes  # workers only: a call of libc's flock that EINTR can end

    _libc_flock = ctypes.CDLL(None, use_errno=True).flock
    signal.signal(WAKE_SIGNAL, _woken)
    signal.siginterrupt(WAKE_SIGNAL, True)


def wake_late_waiters(now: float) -> None:
    """Interrupt every thread whose ``flock`` wait is past its deadline."""
    for ident, deadline in list(WAITERS.items()):
        if now >= deadline:
            try:
                signal.pthread_kill(ident, WAKE_SIGNAL)
            except (ProcessLookupError, OSError):
                pass


class FlockLock(BuyerLock):
    """A blocking ``flock(2)`` on ``<store>.lock``, on a kept-open descriptor.

    The kernel queues exclusive waiters and wakes one per release. With
    ``timer`` (buyers and clerks, which own their process and its signals)
    the wait is bounded by a one-shot SIGALRM timer; on a worker's thread
    (after :func:`install_wake_signal`) the worker's main thread ends a wait
    past its deadline with a signal to that thread; anywhere else (a
    process whose SIGALRM may be someone else's) the lock polls with a
    growing back-off instead. Python's own ``fcntl.flock`` cannot be used on
    a thread: it retries a wait a signal interrupted, since only the main
    thread runs signal handlers.
    """

    def __init__(
        self, path: str | os.PathLike[str], timeout: float, *, timer: bool = False
    ) -> None:
        super().__init__(timeout)
        self.path = os.fspath(path)
        self._fd: int | None = self._open()
        self._previous_alarm: Handler = None
        #: did this lock install the handler (and so restores the old one)?
        self._owns_alarm = False
        self.timer = timer
        if timer and not _alarm_installed:
            try:
                # Installed once, until close(): a buyer waits once.
                self._previous_alarm = signal.signal(signal.SIGALRM, _expire)
                self._owns_alarm = True
            except ValueError:  # not the main thread: no signal can reach us here
                self.timer = False

    def _open(self) -> int:
        try:
            return os.open(
                self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, LOCK_FILE_MODE
            )
        except OSError as exc:
            raise unusable_lock_file(self.path, exc) from None

    def acquire(self) -> None:
        assert self._fd is not None, "lock already closed"
        deadline = time.monotonic() + self.timeout
        while True:
            wait = max(deadline - time.monotonic(), 0.000_001)
            if self.timer:
                self._wait_blocking(self._fd, wait)
            elif _libc_flock is not None:
                self._wait_on_thread(self._fd, wait, _libc_flock)
            else:
                self._wait_polling(self._fd, wait)
            if names_held_file(self.path, self._fd):
                return
            # A deleted lock file's: let go, and take the one the path names.
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = self._open()

    def _wait_blocking(self, fd: int, wait: float) -> None:
        try:
            signal.setitimer(signal.ITIMER_REAL, wait)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except _Expired:
            # The timer may have fired just after flock returned: let go of
            # whatever we might hold (a no-op if we hold nothing).
            fcntl.flock(fd, fcntl.LOCK_UN)
            raise LockTimeout(f"lock {self.path}", self.timeout) from None

    def _wait_on_thread(self, fd: int, wait: float, flock: Callable[[int, int], int]) -> None:
        import _thread  # already loaded by a process with threads; no at-fork hooks

        ident = _thread.get_ident()
        deadline = time.monotonic() + wait
        WAITERS[ident] = deadline
        try:
            while flock(fd, fcntl.LOCK_EX) != 0:
                import ctypes

                err = ctypes.get_errno()
                if err != errno.EINTR:
                    raise OSError(err, os.strerror(err))
                if time.monotonic() >= deadline:
                    raise LockTimeout(f"lock {self.path}", self.timeout)
        finally:
            WAITERS.pop(ident, None)

    def _wait_polling(self, fd: int, wait: float) -> None:
        deadline = time.monotonic() + wait
        pause = 0.0001
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(f"lock {self.path}", self.timeout) from None
                time.sleep(pause)
                pause = min(pause * 2, 0.005)

    def release(self) -> None:
        assert self._fd is not None, "lock already closed"
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._owns_alarm:
            signal.signal(signal.SIGALRM, self._previous_alarm)
            self._owns_alarm = False
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
