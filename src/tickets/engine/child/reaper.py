"""Nothing a run starts outlives it: the launcher's hold on every descendant.

The launcher is the one process of a sale that stands above everything the
sale starts (buyers, workers, commands, a fork server and the buyers it
forks, and whatever the user's code starts in turn), and it makes itself a
child subreaper (Linux's ``PR_SET_CHILD_SUBREAPER``): a descendant whose
parent dies, a daemon that left its group with ``setsid`` and a double
fork among them, becomes the launcher's child instead of init's. So the
launcher can always find them all, with no pid list to go stale: its
children, killed and reaped again and again until none is left
(:func:`kill_descendants`). It does so at the end of every sale, when the
parent asks it to stop, and when the parent dies (it reads EOF on its
lifeline), before it leaves itself. Its warden (:mod:`tickets.engine.child.warden`)
does the same for whatever a dead launcher left.

Without ``prctl`` (other systems) the launcher still kills what stays in
its session; what escapes it there is outside the tool's reach.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time

from ...constants import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import NoReturn

#: prctl(2): orphaned descendants are reparented to this process, not init.
PR_SET_CHILD_SUBREAPER = 36
#: How long a round of killing waits for the killed to become reapable.
ROUND = 0.005
#: How long the launcher goes on killing what its sale left before it leaves.
CLEANUP_DEADLINE = 10.0


def become_subreaper() -> bool:
    """Adopt every orphan among this process's descendants (Linux); False
    where that cannot be had."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        done: int = ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        return done == 0
    except (AttributeError, OSError):  # pragma: no cover - a libc without prctl
        return False


def each_process() -> Iterator[tuple[int, bytes, int, int]]:
    """Every process /proc shows: (pid, state, parent's pid, session id);
    none where there is no /proc."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            yield int(entry), fields[0], int(fields[1]), int(fields[3])
        except (OSError, IndexError, ValueError):  # gone meanwhile
            continue


def my_children() -> list[int]:
    """This process's children, zombies among them: each thread's
    ``/proc/self/task/<tid>/children`` (one small read), else a scan of
    every process."""
    try:
        found: list[int] = []
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/children", "rb") as f:
                found += [int(pid) for pid in f.read().split()]
        return found
    except (OSError, ValueError):  # no such file (an older kernel, no /proc)
        me = os.getpid()
        return [pid for pid, _, parent, _ in each_process() if parent == me]


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def reap_any() -> list[tuple[int, int]]:
    """Reap every child that has exited; return their (pid, exit code)."""
    reaped: list[tuple[int, int]] = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return reaped
        if not pid:
            return reaped
        reaped.append((pid, os.waitstatus_to_exitcode(status)))


def has_children() -> bool:
    """Has this process any child, running or exited (the kernel's word,
    where a read of /proc may race with a fork)?"""
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


def kill_descendants(deadline: float) -> bool:
    """SIGKILL every descendant of this process and reap it, until none is
    left (True) or the deadline passes (False). A child's own group goes
    with it (a command's); what it leaves behind is adopted here and
    killed in the next round."""
    while True:
        reap_any()
        if not has_children():
            return True
        if time.monotonic() > deadline:
            return False
        for pid in my_children():
            kill_group(pid)
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(ROUND)


def parent_gone(lifeline: int) -> bool:
    """The parent holds the lifeline's only write end: it reads EOF once the
    parent has died, whatever killed it, or has closed it to stop the sale."""
    return bool(select.select([lifeline], [], [], 0)[0])


def abandon() -> NoReturn:
    """The parent is gone, or wants the sale stopped now: every descendant
    (buyers, what they started, what escaped their groups) is killed and
    reaped, then what is left of this process's session, itself with it."""
    kill_descendants(time.monotonic() + CLEANUP_DEADLINE)
    os.killpg(0, signal.SIGKILL)  # without a subreaper: what stayed in the session
    os._exit(1)  # pragma: no cover - the signal came first
