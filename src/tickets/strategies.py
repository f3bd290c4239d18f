"""How a buyer protects its read-modify-write: one interface, four strategies.

Shaped like filelock's ``_api.py``: a small abstract lock with a context
manager, concrete locks beside it. A strategy makes, in the parent, the token
each buyer gets (``token_for``), and turns it into a lock inside the child
(``child_lock``): a file lock is a descriptor of the process that opened it
(a ``filelock.FileLock`` cannot cross a fork or a pickle at all), so it is
only ever built in the process that uses it.
"""

from __future__ import annotations

import os
import signal
import time
from abc import ABC, abstractmethod
from contextlib import contextmanager

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: filelock takes over
    fcntl = None  # type: ignore[assignment]

from .limits import DEFAULT_STRATEGY, STRATEGY_NAMES
from .record import Record
from .store import LOCK_SUFFIX, StoreError, lock_path

# Annotations only: buyers are forked from a process that imports only what
# they use (see tickets.record).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path
    from types import TracebackType
    from typing import Any

    from .store import StorePath

__all__ = [
    "DEFAULT_STRATEGY",
    "STRATEGIES",
    "BuyerLock",
    "LockTimeout",
    "Strategy",
    "get",
    "store_lock",
]

#: The lock file is made readable by all but writable by its owner only.
LOCK_FILE_MODE = 0o644


class LockTimeout(Exception):
    """The lock was not acquired within the timeout."""

    def __init__(self, what: str, timeout: float) -> None:
        self.what = what
        self.timeout = timeout
        super().__init__(what, timeout)

    def __str__(self) -> str:
        return f"{self.what} was not acquired within {self.timeout:g}s"

    def __reduce__(self) -> tuple[type[LockTimeout], tuple[str, float]]:
        return (type(self), (self.what, self.timeout))


class BuyerLock(ABC):
    """What a buyer holds around its read-modify-write."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    @abstractmethod
    def acquire(self) -> None:
        """Block until held; raise :class:`LockTimeout` after ``timeout``."""

    @abstractmethod
    def release(self) -> None: ...

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
    """A ``multiprocessing.Lock`` handed down by the parent."""

    def __init__(self, lock: Any, timeout: float) -> None:
        super().__init__(timeout)
        self._lock = lock

    def acquire(self) -> None:
        if not self._lock.acquire(timeout=self.timeout):
            raise LockTimeout("the run's process lock", self.timeout)

    def release(self) -> None:
        self._lock.release()


class _Expired(Exception):
    pass


def _expire(signum: int, frame: Any) -> None:
    raise _Expired


#: True where SIGALRM already runs ``_expire`` for good: see :func:`install_alarm`.
_alarm_installed = False


def install_alarm() -> None:
    """Make SIGALRM the lock timer's, here and in every child forked from here.

    The launcher calls it once before forking buyers: a buyer's lock then
    finds the handler in place, instead of paying for ``signal.signal`` in a
    fresh child (~0.2 ms: the signal module wraps handlers in enums).
    """
    global _alarm_installed
    signal.signal(signal.SIGALRM, _expire)
    _alarm_installed = True


class StoreFileLock(BuyerLock):
    """An advisory ``flock`` on ``<store>.lock``, held on a kept-open descriptor.

    The kernel drops it when the holder dies, and ``flock(1)`` in a shell
    script takes part in the same exclusion. Waiting is a blocking ``flock``
    (the kernel queues exclusive waiters and wakes one per release) bounded by
    a one-shot timer in buyers, which own their process and its signals; the
    parent (and any other thread) polls with a growing back-off instead.

    Hand-written rather than ``filelock.FileLock``, which is used only where
    ``fcntl`` is missing: filelock 4.3 spends ~315 us per acquire and release
    against ~2 us here, and its at-fork hooks make every fork of the parent
    ~1.2 ms slower, which alone put 1,000 buyers over 3 s.
    """

    def __init__(self, store: StorePath, timeout: float, *, timer: bool = False) -> None:
        super().__init__(timeout)
        # lock_path(store) as plain string work: pathlib's is slow in a fresh child.
        self.path = os.fspath(store) + LOCK_SUFFIX
        #: wait with a blocking flock and a SIGALRM timer (buyers: they own
        #: their process and its signals, so the handler stays installed);
        #: else poll with back-off
        self.timer = timer
        self._fd: int | None = None
        self._fallback: Any = None
        if fcntl is None:  # pragma: no cover - Windows
            from filelock import FileLock

            self._fallback = FileLock(self.path, timeout=timeout, mode=LOCK_FILE_MODE)
            return
        try:
            self._fd = os.open(
                self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, LOCK_FILE_MODE
            )
        except PermissionError:
            raise StoreError(
                self.path, "cannot be opened (permission denied)", "fix its permissions"
            ) from None
        except OSError as exc:
            if os.path.islink(self.path):
                raise StoreError(self.path, "is a symbolic link", "remove it") from None
            raise StoreError(self.path, f"cannot be opened ({exc.strerror})") from None
        # A lock file someone left world-writable is tightened if it is ours.
        info = os.fstat(self._fd)
        if info.st_mode & 0o002 and info.st_uid == os.geteuid():
            os.fchmod(self._fd, LOCK_FILE_MODE)
        self._previous_alarm: Any = None
        #: did this lock install the handler (and so restores the old one)?
        self._owns_alarm = False
        if timer and not _alarm_installed:
            try:
                # Installed once, until close(): a buyer waits once, and every
                # syscall and exception saved is saved 1,000 times over.
                self._previous_alarm = signal.signal(signal.SIGALRM, _expire)
                self._owns_alarm = True
            except ValueError:  # not the main thread: no signal can reach us here
                self.timer = False

    def acquire(self) -> None:
        if self._fallback is not None:  # pragma: no cover - Windows
            from filelock import Timeout

            try:
                self._fallback.acquire()
            except Timeout:
                raise LockTimeout(f"lock {self.path}", self.timeout) from None
            return
        assert self._fd is not None and fcntl is not None
        if self.timer:
            self._wait_blocking()
            return
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._wait_polling()

    def _wait_blocking(self) -> None:
        assert self._fd is not None and fcntl is not None
        try:
            signal.setitimer(signal.ITIMER_REAL, self.timeout)
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except _Expired:
            # The timer may have fired just after flock returned: let go of
            # whatever we might hold (a no-op if we hold nothing).
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            raise LockTimeout(f"lock {self.path}", self.timeout) from None

    def _wait_polling(self) -> None:
        assert self._fd is not None and fcntl is not None
        deadline = time.monotonic() + self.timeout
        pause = 0.0001
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(f"lock {self.path}", self.timeout) from None
                time.sleep(pause)
                pause = min(pause * 2, 0.005)

    def release(self) -> None:
        if self._fallback is not None:  # pragma: no cover - Windows
            self._fallback.release()
            return
        assert self._fd is not None and fcntl is not None
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._owns_alarm:
            signal.signal(signal.SIGALRM, self._previous_alarm)
            self._owns_alarm = False
        self.timer = False
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class Strategy(Record):
    __slots__ = ("name", "summary", "excludes", "across_runs")
    name: str
    summary: str
    #: Does it keep two buyers of one run out of each other's critical section?
    excludes: bool
    #: Does it also exclude buyers of other, concurrent invocations?
    across_runs: bool

    def __init__(self, name: str, summary: str, excludes: bool, across_runs: bool) -> None:
        self._set(name=name, summary=summary, excludes=excludes, across_runs=across_runs)

    def tokens(self, ctx: Any) -> Iterator[Any]:
        """Per-buyer tokens, made in the parent (an endless iterator)."""
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

    def child_lock(self, token: Any, store: StorePath, timeout: float) -> BuyerLock:
        """Build the buyer's lock inside the child."""
        if self.name == "file":
            return StoreFileLock(store, timeout, timer=True)
        if self.name in ("process", "per-buyer"):
            return ProcessLock(token, timeout)
        return NoLock(timeout)


STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (
        Strategy("none", "no lock at all: the read-modify-write races", False, False),
        Strategy(
            "per-buyer",
            "the tutorial's bug: a new Lock() per buyer, so no exclusion",
            False,
            False,
        ),
        Strategy("process", "one multiprocessing.Lock shared by the run's buyers", True, False),
        Strategy("file", "flock on <store>.lock: excludes other invocations too", True, True),
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


def check_lock_path(store: Path) -> None:
    """Refuse a lock path that could lead a lock or write elsewhere."""
    path = lock_path(store)
    if os.path.islink(path):
        raise StoreError(path, "is a symbolic link", "remove it; tickets recreates the lock file")
    if path.is_dir():
        raise StoreError(path, "is a folder, not a lock file", "remove it")


@contextmanager
def store_lock(store: Path, timeout: float) -> Iterator[None]:
    """Hold the store's file lock in the parent (restock, final read, cleanup)."""
    check_lock_path(store)
    lock = StoreFileLock(store, timeout)
    try:
        lock.acquire()
    except LockTimeout:
        lock.close()
        raise StoreError(
            lock.path,
            f"is held by another process (waited {timeout:g}s)",
            "wait for it to finish or raise --lock-timeout",
        ) from None
    try:
        yield
    finally:
        lock.release()
        lock.close()


def restock(store_path: Path, tickets: int | None, timeout: float, *, fsync: bool = False) -> int:
    """Under the store lock: clean orphan temp files, restock to ``tickets``
    unless None, and read the stock (``tickets init`` and every run's start)."""
    from . import store

    with store_lock(store_path, timeout):
        store.remove_orphan_temps(store_path)
        if tickets is not None:
            store.save(store_path, tickets, fsync=fsync)
        return store.load(store_path)
