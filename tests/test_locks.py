"""Every strategy behind one interface, on real processes (shaped like
filelock's tests/test_strict_soft_stress.py: a start gate, an "occupied"
marker and a read-modify-write counter to catch overlap and lost updates)."""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import pickle
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from helpers import handle, run_all, shell_flock_holder, spec_of
from tickets.constants import STORE_KINDS
from tickets.locking.locks import (
    FileLock,
    FlockLock,
    LockTimeout,
    names_held_file,
)
from tickets.locking.store_claim import store_lock
from tickets.locking.strategies import STRATEGIES, get, strategies_for
from tickets.stores import KIND_CAPABILITIES
from tickets.stores.base import StoreError
from tickets.stores.json_file import lock_path

WORKERS = 6
ROUNDS = 15


def worker(name: str, token: Any, folder: str, gate: Any) -> None:
    root = Path(folder)
    lock = get(name).child_lock(token, handle(root / "tickets.json"), timeout=20)
    gate.wait(20)
    for _ in range(ROUNDS):
        with lock:
            marker = root / "occupied"
            try:
                fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                os.close(fd)
            except FileExistsError:
                (root / f"overlap-{os.getpid()}").touch()
                marker = None  # type: ignore[assignment]
            counter = root / "counter"
            try:
                value = int(counter.read_text())
            except ValueError:  # caught another writer mid-write: an overlap too
                (root / f"overlap-torn-{os.getpid()}").touch()
                value = 0
            time.sleep(0.001)
            counter.write_text(str(value + 1))
            if marker is not None:
                os.unlink(marker)


def contend(name: str, folder: Path) -> tuple[int, int]:
    ctx = multiprocessing.get_context("fork")
    (folder / "counter").write_text("0")
    gate = ctx.Event()
    tokens = get(name).tokens(ctx)
    procs = [
        ctx.Process(target=worker, args=(name, next(tokens), str(folder), gate))
        for _ in range(WORKERS)
    ]
    codes = run_all(procs, started=gate.set)
    assert codes == [0] * WORKERS, codes
    overlaps = len(list(folder.glob("overlap-*")))
    return int((folder / "counter").read_text()), overlaps


@pytest.mark.timeout(90)
@pytest.mark.parametrize("name", ["process", "file", "flock"])
def test_excluding_strategies_never_overlap(name: str, tmp_path: Path) -> None:
    assert STRATEGIES[name].excludes
    total, overlaps = contend(name, tmp_path)
    assert overlaps == 0
    assert total == WORKERS * ROUNDS


def meet_inside(name: str, token: Any, folder: str, barrier: Any) -> None:
    """Inside the lock: read the counter, wait until every worker is inside
    too, write the counter + 1. Only a lock that excludes nobody lets all in."""
    counter = Path(folder) / "counter"
    with get(name).child_lock(token, handle(Path(folder) / "tickets.json"), timeout=20):
        value = int(counter.read_text())
        barrier.wait(20)
        counter.write_text(str(value + 1))


@pytest.mark.timeout(90)
@pytest.mark.parametrize("name", ["none", "per-buyer"])
def test_non_excluding_strategies_overlap_and_lose_updates(name: str, tmp_path: Path) -> None:
    """Deterministic: every worker is in the critical section at once (the
    barrier would time out otherwise), all read 0, and all write 1."""
    assert not STRATEGIES[name].excludes
    ctx = multiprocessing.get_context("fork")
    (tmp_path / "counter").write_text("0")
    barrier = ctx.Barrier(WORKERS)
    tokens = get(name).tokens(ctx)
    procs = [
        ctx.Process(target=meet_inside, args=(name, next(tokens), str(tmp_path), barrier))
        for _ in range(WORKERS)
    ]
    assert run_all(procs) == [0] * WORKERS  # every one met the others inside
    assert (tmp_path / "counter").read_text() == "1"  # WORKERS - 1 updates lost


def _time_out_with_timer(store: str, queue: Any, preinstalled: bool = False) -> None:
    # In a child: the timer path owns SIGALRM, which pytest-timeout uses here.
    import signal

    from tickets.locking import locks

    if preinstalled:  # as the launcher does before forking buyers
        locks.install_alarm()
    handler = signal.getsignal(signal.SIGALRM)
    lock = FlockLock(store + ".lock", 0.2, timer=True)
    kept = signal.getsignal(signal.SIGALRM) is handler
    t = time.monotonic()
    try:
        lock.acquire()
        queue.put(("acquired", 0.0, kept))
    except LockTimeout:
        queue.put(("timeout", time.monotonic() - t, kept))
    finally:
        lock.close()


@pytest.mark.timeout(60)
def test_file_locks_time_out_while_another_holds_it(store: Path) -> None:
    held = os.open(lock_path(store), os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(held, fcntl.LOCK_EX)
    try:
        # In this process: filelock's polling, and the flock lock without a timer.
        for lock in (FileLock(lock_path(store), 0.2), FlockLock(lock_path(store), 0.2)):
            t = time.monotonic()
            with pytest.raises(LockTimeout):
                lock.acquire()
            assert 0.15 < time.monotonic() - t < 5
            lock.close()
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()
        for preinstalled in (False, True):
            child = ctx.Process(target=_time_out_with_timer, args=(str(store), queue, preinstalled))
            child.start()
            kind, waited, kept = queue.get(timeout=30)
            child.join(30)
            assert kind == "timeout" and 0.15 < waited < 5
            # A handler installed before the fork is used as it is, not re-installed.
            assert kept == preinstalled
        with pytest.raises(StoreError, match="held by another process"):
            with store_lock(spec_of(store), 0.1):
                pass
    finally:
        os.close(held)
    with store_lock(spec_of(store), 0.1):
        pass


def _hold(name: str, store: str, held: Any, release: Any) -> None:
    """In a child: take the strategy's lock, say so, and hold it until told."""
    lock = get(name).child_lock(None, handle(store), 10)
    with lock:
        held.set()
        release.wait(30)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("holder, waiter", [("file", "flock"), ("flock", "file")])
def test_file_and_flock_exclude_each_other(store: Path, holder: str, waiter: str) -> None:
    """Both take the same flock on <store>.lock, and the file stays in place."""
    ctx = multiprocessing.get_context("fork")
    held, release = ctx.Event(), ctx.Event()
    child = ctx.Process(target=_hold, args=(holder, str(store), held, release))
    child.start()
    try:
        assert held.wait(30), "the holder never got the lock"
        lock_file = lock_path(store)
        other = FileLock(lock_file, 0.2) if waiter == "file" else FlockLock(lock_file, 0.2)
        with pytest.raises(LockTimeout):
            other.acquire()
        release.set()
        child.join(30)
        assert child.exitcode == 0
        other.acquire()  # free once the holder let go
        other.release()
        other.close()
    finally:
        release.set()
        child.join(5)
        if child.is_alive():
            child.kill()
    assert lock_path(store).is_file()  # released, not removed: flock(1) still shares it


@pytest.mark.skipif(shutil.which("flock") is None, reason="flock(1) not installed")
@pytest.mark.timeout(30)
def test_shell_flock_takes_part_in_the_same_lock(store: Path) -> None:
    lock_path(store).touch()
    with shell_flock_holder(lock_path(store)):
        with pytest.raises(StoreError, match="held by another process"):
            with store_lock(spec_of(store), 0.3):
                pass
    with store_lock(spec_of(store), 2):
        pass


def test_lock_file_is_not_world_writable(store: Path) -> None:
    old = os.umask(0)
    try:
        with store_lock(spec_of(store), 1):
            pass
    finally:
        os.umask(old)
    assert os.stat(lock_path(store)).st_mode & 0o002 == 0


def test_symlinked_lock_is_refused(store: Path, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    lock_path(store).symlink_to(target)
    with pytest.raises(StoreError, match="symbolic link"):
        with store_lock(spec_of(store), 1):
            pass
    assert not target.exists()


def test_the_file_strategy_is_filelock(store: Path) -> None:
    import filelock

    lock = get("file").child_lock(None, handle(store), 1)
    assert isinstance(lock, FileLock) and isinstance(lock._lock, filelock.FileLock)
    assert isinstance(get("flock").child_lock(None, handle(store), 1), FlockLock)


def test_unknown_strategy() -> None:
    with pytest.raises(ValueError, match="choose one of"):
        get("spinlock")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("holder", ["file", "flock"])
def test_a_deleted_lock_file_does_not_let_two_in(store: Path, holder: str) -> None:
    """A holds the lock; the lock file is deleted; B takes the new file at the
    path. W, which opened the old file before it went, gets the old one once
    A lets go: it must notice the path names another file and wait for B."""
    ctx = multiprocessing.get_context("fork")
    held_a, release_a = ctx.Event(), ctx.Event()
    held_b, release_b = ctx.Event(), ctx.Event()
    a = ctx.Process(target=_hold, args=(holder, str(store), held_a, release_a))
    a.start()
    try:
        assert held_a.wait(30)
        waiter = FlockLock(lock_path(store), 1.0)  # opens the old file now
        lock_path(store).unlink()
        b = ctx.Process(target=_hold, args=(holder, str(store), held_b, release_b))
        b.start()
        assert held_b.wait(30)  # B got the new file: A and B both hold (unavoidable)
        release_a.set()
        a.join(30)
        with pytest.raises(LockTimeout):  # W would have been a third holder
            waiter.acquire()
        release_b.set()
        b.join(30)
        waiter.acquire()  # and it gets the lock once B lets go
        assert names_held_file(str(lock_path(store)), waiter._fd or -1)
        waiter.release()
        waiter.close()
    finally:
        for event in (release_a, release_b):
            event.set()
        for p in (a, locals().get("b")):
            if p is not None and p.is_alive():
                p.kill()
                p.join(5)


def test_each_engine_has_the_capabilities_its_kind_is_known_by() -> None:
    """A store's capabilities are the capability methods it implements; the
    table that says them without importing its engine must agree."""
    from tickets.stores.json_file import JsonFileStore
    from tickets.stores.postgres import PostgresStore
    from tickets.stores.redis import RedisStore
    from tickets.stores.sqlite import SqliteStore

    engines = (JsonFileStore, SqliteStore, RedisStore, PostgresStore)
    assert {engine.kind: engine.capabilities for engine in engines} == KIND_CAPABILITIES
    assert tuple(KIND_CAPABILITIES) == STORE_KINDS


def test_a_store_takes_the_strategies_its_capabilities_allow() -> None:
    locks = ["none", "per-buyer", "process", "file", "flock"]
    assert {kind: [s.name for s in strategies_for(kind)] for kind in STORE_KINDS} == {
        "json": locks,
        "sqlite": [*locks, "atomic", "transaction", "deferred"],
        "redis": [*locks, "atomic", "transaction", "lease"],
        "postgres": [
            *locks,
            "atomic",
            "read-committed",
            "repeatable-read",
            "serializable",
            "for-update",
            "advisory",
        ],
    }


def test_a_strategy_crosses_a_process_boundary_as_itself() -> None:
    """A plan pickled for a spawned buyer carries its strategy by name."""
    for strategy in STRATEGIES.values():
        assert pickle.loads(pickle.dumps(strategy)) is strategy
        assert type(strategy).__name__.endswith("Strategy")  # never a lock's name


@pytest.mark.parametrize(
    "kind, name, sells_by_take, optimistic",
    [
        ("sqlite", "atomic", True, False),
        ("sqlite", "transaction", False, False),  # BEGIN IMMEDIATE around the read-modify-write
        ("redis", "atomic", True, False),
        ("redis", "transaction", True, True),  # WATCH/MULTI: the optimistic take
        ("redis", "lease", False, False),
        ("json", "flock", False, False),
    ],
)
def test_who_sells_by_the_stores_own_take(
    kind: str, name: str, sells_by_take: bool, optimistic: bool
) -> None:
    from tickets.stores import open_store
    from tickets.stores.spec import parse_db

    url = {"json": "s.json", "sqlite": "sqlite:s.db", "redis": "redis://127.0.0.1:1/0"}[kind]
    store = open_store(parse_db(url))  # opened lazily: nothing is connected to
    assert get(name).sells_by_take(store) is sells_by_take
    assert get(name).takes_optimistically(store) is optimistic
