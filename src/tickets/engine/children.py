"""Child processes, parent side: start them, hold them at a gate, watch them, reap them.

Every wait here has a deadline; a child that dies is noticed by its exit
code. Used for the order queue's producers and clerks, and for buyers under
the forkserver and spawn start methods (forked buyers come from the
launcher: :mod:`tickets.engine.launcher_handle`).
"""

from __future__ import annotations

import os
import resource
import select
import signal
import sys
import time
from collections.abc import Callable, Hashable, Iterable
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, NoReturn

from .child.spawned import forget

if TYPE_CHECKING:
    from ..check.events import Message

__all__ = ["Children", "Gate", "describe_exit", "forget", "raise_fd_limit"]


def raise_fd_limit(children: int) -> None:
    # Each live child holds a sentinel pipe in the parent.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = children + 256
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))


#: prctl(2) option: the signal this process gets when its parent dies (Linux).
PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """Be killed (SIGKILL) the moment the parent process dies, by any signal.

    Linux's ``prctl(PR_SET_PDEATHSIG)``; elsewhere nothing (the launcher's
    lifeline covers forked buyers everywhere). ``parent`` is the pid the
    child was started by: if it is already gone, the child leaves now.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (AttributeError, OSError):  # pragma: no cover - a libc without prctl
            pass
    if os.getppid() != parent:  # it died before the request took effect
        os._exit(1)


def _child_main(
    target: Callable[..., None], args: tuple[object, ...], close: Iterable[Connection], parent: int
) -> NoReturn:
    """A forked child: run the target, then leave at once (no atexit, no flush)."""
    code = 1
    try:
        # Ctrl-C goes to the whole process group: the parent decides.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        die_with_parent(parent)
        for conn in close:
            conn.close()
        target(*args)
        code = 0
    finally:
        os._exit(code)


def _started_child(target: Callable[..., None], lifeline: Connection, *args: object) -> None:
    """A child started by multiprocessing: dies with the run's process.

    A spawned child is the run's child, but a fork server's children are
    the server's, and the server lives as long as any of them does (each
    holds its liveness pipe): a death signal tied to it never comes. So
    each watches the run's lifeline, whose only write end the run's
    process holds, on a thread of its own, and is killed at its EOF.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides (see Children.start)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    import threading

    def watch() -> None:
        select.select([lifeline.fileno()], [], [])  # readable: EOF, the run is gone
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, daemon=True).start()
    target(*args)


class Gate:
    """Holds every child back until all are started, then lets them go at once.

    A pipe nobody writes to: children wait for it to become readable, which it
    does, for all of them in one go, when the parent closes the write end.
    (A ``multiprocessing.Event`` wakes its waiters one by one, each waiting
    for the last to acknowledge: 1,000 buyers trickled out over 1.2 s.)
    """

    def __init__(self, ctx: BaseContext) -> None:
        self.reader, self.writer = ctx.Pipe(duplex=False)

    def open(self) -> None:
        self.writer.close()

    def close(self) -> None:
        self.reader.close()
        if not self.writer.closed:
            self.writer.close()


class Children:
    """Start, watch and reap a run's child processes.

    With the fork start method the parent forks its children itself:
    ``multiprocessing.Process.start()`` polls every live child it knows of
    (see :func:`forget`) and its child bootstrap costs ~1 ms more per child.
    Forkserver and spawn go through multiprocessing, which pickles the
    arguments for them, and the started processes are taken off its list of
    children: this class reaps them.
    """

    def __init__(
        self, ctx: BaseContext, method: str, close_in_child: Iterable[Connection] = ()
    ) -> None:
        self.ctx = ctx
        self.method = method
        self.raw_fork = method == "fork"
        #: parent-only pipe ends a forked child must not keep open
        self.close_in_child = tuple(close_in_child)
        self.pids: dict[Hashable, int] = {}
        self.codes: dict[Hashable, int | None] = {}
        self._procs: dict[Hashable, BaseProcess] = {}
        #: read end, write end: children started by multiprocessing die at
        #: its EOF (see _started_child); the write end never leaves this process
        self._lifeline: tuple[Connection, Connection] | None = None
        if not self.raw_fork:
            self._lifeline = ctx.Pipe(duplex=False)
            # Started on first use, it unblocks SIGINT in this process when
            # it is up: start it now, not inside start()'s blocked window.
            from multiprocessing import resource_tracker

            resource_tracker.ensure_running()

    def start(self, key: Hashable, target: Callable[..., None], args: Iterable[object]) -> None:
        args = tuple(args)
        if self.raw_fork:
            parent = os.getpid()
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the child
                _child_main(target, args, self.close_in_child, parent)
        else:
            assert self._lifeline is not None
            child_args = (target, self._lifeline[0], *args)
            # (typeshed's BaseContext lacks Process; every concrete context has it)
            p = self.ctx.Process(target=_started_child, args=child_args, daemon=True)  # type: ignore[attr-defined]
            # Ctrl-C goes to the whole process group, and a child still
            # importing would print a traceback. A blocked signal stays
            # blocked across exec: the child starts deaf to it (and ignores
            # it before it unblocks, see _started_child), while the parent's
            # own Ctrl-C waits, pending, until the child is started.
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            try:
                p.start()
            finally:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
            forget(p)
            self._procs[key] = p
            pid = p.pid
        self.pids[key] = pid
        self.codes[key] = None

    def exitcode(self, key: Hashable) -> int | None:
        """The child's exit code (negative: killed by that signal), None while it runs."""
        if self.codes[key] is None:
            try:
                pid, status = os.waitpid(self.pids[key], os.WNOHANG)
            except ChildProcessError:
                # Reaped elsewhere (multiprocessing's own bookkeeping): ask it.
                proc = self._procs.get(key)
                self.codes[key] = proc.exitcode if proc is not None else -1
                return self.codes[key]
            if pid:
                self.codes[key] = os.waitstatus_to_exitcode(status)
        return self.codes[key]

    def alive(self) -> list[Hashable]:
        return [key for key in self.pids if self.exitcode(key) is None]

    def signal(self, keys: Iterable[Hashable], sig: int = signal.SIGKILL) -> None:
        for key in keys:
            if self.exitcode(key) is None:
                try:
                    os.kill(self.pids[key], sig)
                except ProcessLookupError:
                    pass

    def take_message(self, ev: Message) -> bool:
        """Children started here send no messages about themselves."""
        return False

    def stop(self, deadline: float, kill_now: bool = False) -> list[Hashable]:
        """Kill those still running (all at once if ``kill_now``, else after the
        deadline), reap everyone; return the keys that had to be killed."""
        killed = self.alive() if kill_now else []
        self.signal(killed, signal.SIGKILL)
        return killed + self.reap(deadline)

    def reap(self, deadline: float) -> list[Hashable]:
        """Wait for every child until the deadline, kill the rest; return the killed keys."""
        pause = 0.001
        while self.alive() and time.monotonic() < deadline:
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
        killed = self.alive()
        self.signal(killed, signal.SIGKILL)
        end = time.monotonic() + 2.0
        while self.alive() and time.monotonic() < end:
            time.sleep(0.01)
        for proc in self._procs.values():
            if proc.exitcode is not None:
                proc.close()
        if self._lifeline is not None:
            for pipe_end in self._lifeline:
                pipe_end.close()
            self._lifeline = None
        return killed


def describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"
