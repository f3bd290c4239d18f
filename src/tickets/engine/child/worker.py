"""A worker: one process that runs many buyers at once, each on a thread.

A sale of a hundred thousand buyers cannot fork a process per buyer: the
forks alone would take minutes. So ``--workers W`` has the launcher fork W
workers, and each runs its share of the buyers (``worker``, ``worker + W``,
``worker + 2W``, ...) on ``concurrency`` threads: a thread runs one buyer
after another, each buyer the same function of (plan, number, store, lock)
as in a process of its own (see :mod:`tickets.engine.child.buyer`), with its own
store handle and its own lock, so every strategy keeps its meaning per
buyer: ``per-buyer`` gives each buyer a lock of its own, ``process`` shares
the run's one ``multiprocessing.Lock`` across every worker, and ``file`` and
``flock`` open a descriptor per buyer, so two buyers of one worker exclude
each other in the kernel exactly as two processes do. The simulated delays
are ``time.sleep`` calls, which let go of the interpreter's lock: the
delays of a worker's buyers overlap, and ``--lock none`` oversells.

Why threads, not an event loop: a buyer's steps are blocking calls (a file
lock, a rename, a SQLite or Redis call) that an event loop would have to
hand to threads anyway; the measured figures are in the README ("Speed").

Events are batched (many per pipe write, each write atomic) and flushed
every :data:`FLUSH_EVERY` seconds, and at once before a buyer may change
the store: its ``invoke`` is on the parent's side of the pipe before its
write, so a worker killed at any point leaves no sale unrecorded (a buyer
whose invoke never arrived changed nothing: the parent calls it never
started). A chaos kill of a buyer kills its worker, as a crash would: every
buyer it had in flight is then unknown to the parent.

Threads only in workers: the launcher imports this module after it forks.
"""

from __future__ import annotations

import os
import threading
import time

from ...check.events import locked
from ...constants import TYPE_CHECKING
from ...locking.locks import wake_late_waiters
from .buyer import buy_and_report, failure
from .pipe import MAX_EVENT_BYTES, Batcher, EventWriter
from .session import BuyerSession, WatchedLock

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from ...check.events import Message
    from ...locking.strategies import Token
    from .buyer import GateEnd
    from .plan import BuyerPlan

#: How often a worker sends what its buyers reported (seconds).
FLUSH_EVERY = 0.01
#: A worker's exit code when the start gate never opened.
NEVER_OPENED = 2
#: A buyer thread's stack: buyers call nothing deep.
STACK_BYTES = 256 * 1024


class SharedOut(Batcher):
    """The worker's end of the event pipe, shared by its buyer threads: a
    Batcher behind a lock, whose events queue in order and go out in atomic
    writes when the next would not fit one (the parent reads them as any
    child's), or on :meth:`flush`."""

    def __init__(self, fd: int) -> None:
        super().__init__(EventWriter(fd), max_events=MAX_EVENT_BYTES)  # bounded by bytes
        self._lock = threading.RLock()  # add() flushes through flush() when full

    def send(self, event: Message) -> None:
        with self._lock:
            self.add(event)

    def send_all(self, events: list[Message]) -> None:
        for event in events:
            self.send(event)

    def flush(self) -> None:
        """Out now: what is queued is in the pipe when this returns."""
        with self._lock:
            super().flush()


class ThreadedSession(BuyerSession):
    """A buyer's session on a worker's thread: its invoke is flushed before
    anything that may change the store (see the module's docstring): after
    a search that found tickets left (before the lock, not inside it), and
    again before the write, in case the invoke was held back.

    Its events are the compact ones of a big sale: no pid (every buyer of a
    worker shares it; the workers' pids are in the result), and an outcome
    carries only what its invoke did not (the invoke has the start, the
    search and what it saw): 40% fewer bytes to send, write and read."""

    repeats_invoke = False

    def __init__(
        self, plan: BuyerPlan, buyer: int, events: SharedOut, delays: tuple[float, float]
    ) -> None:
        super().__init__(plan, buyer, events, delays)
        self.events: SharedOut = events
        self.base = {"buyer": buyer}

    def search(self) -> int | None:
        seen = super().search()
        if self.held is None:
            self.events.flush()
        return seen

    def _last_look(self) -> None:
        if self.held is not None:  # saw none left, and went on (a user's buyer)
            self.events.send(self.held)
            self.held = None
            self.events.flush()
        super()._last_look()

    def begin(self) -> None:
        super().begin()
        self.events.flush()  # the user's function may write at any time now


def run_one(
    plan: BuyerPlan, buyer: int, token: Token, out: SharedOut, orphaned: Callable[[], bool]
) -> None:
    """One buyer, start to end, on the calling thread; what it opened is
    closed however it ends (its process goes on without it)."""
    session: ThreadedSession | None = None
    lock: WatchedLock | None = None
    try:
        session = ThreadedSession(plan, buyer, out, plan.delays.for_buyer(plan.seed, buyer))
        session.orphaned = orphaned
        announce = None
        if plan.strategy.reports_holder:  # who holds the lock (tickets.engine.abandoned_lock)

            def announce() -> None:
                out.send(locked(os.getpid(), buyer))
                out.flush()

        lock = WatchedLock(plan, session.store, token, announce, threaded=True)
        buy_and_report(plan, session, lock)
    except Exception as exc:  # reported, never printed: the parent renders
        out.send(failure(session, buyer, exc))
    finally:
        if lock is not None:
            lock.close()
        if session is not None:
            session.store.close()


def run_worker(
    plan: BuyerPlan,
    share: Iterator[int],
    concurrency: int,
    shared_token: Token,
    events_fd: int,
    gate: GateEnd,
    orphaned: Callable[[], bool],
) -> int:
    """Run the buyers of ``share`` on ``concurrency`` threads, behind the gate;
    the worker's exit code."""
    out = SharedOut(events_fd)
    # the run's one lock (process), a new lock each (per-buyer), or nothing
    token = plan.strategy.thread_tokens(shared_token, threading.Lock)
    if not gate.poll(plan.gate_timeout):
        return NEVER_OPENED  # its buyers changed nothing: the parent counts them never started
    take = threading.Lock()

    def buyers() -> None:
        while True:
            with take:
                buyer = next(share, None)
            if buyer is None or orphaned():
                return
            run_one(plan, buyer, token(), out, orphaned)

    plan.strategy.prepare_worker()  # flock: a thread's wait ends at its deadline
    if plan.store.kind == "postgres":  # a connection costs the server a process
        from ...stores.postgres import reuse_connections

        reuse_connections(True)
    threading.stack_size(STACK_BYTES)
    threads = [threading.Thread(target=buyers, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(FLUSH_EVERY)
            out.flush()
            wake_late_waiters(time.monotonic())
            if orphaned():
                os._exit(1)  # the launcher kills the rest of the session
    out.flush()
    if plan.store.kind == "postgres":
        from ...stores.postgres import reuse_connections

        reuse_connections(False)
    return 0
