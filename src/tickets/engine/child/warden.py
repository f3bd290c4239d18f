"""The warden: one outside program run so that nothing it starts outlives it.

The parent runs the user's code outside a sale too: ``--stock-cmd`` before
and after it, and the ``--buy`` module's import, to check it before
anything starts. Neither may run in the parent itself (a module's
daemon, its threads and its writes to descriptor 1 would be the parent's),
nor as a plain child (what it leaves in a new session goes to init). So the
parent starts a warden, ``python -m tickets.engine.child.warden LIFELINE -- ARGV``:
a child subreaper (see :mod:`tickets.engine.child.reaper`) that starts ARGV in a
process group of its own, waits for it, then kills and reaps every
descendant left, and exits with its exit code (128 + the signal that
killed it). If its lifeline reads EOF first (the parent died, or gave up
on it at its deadline), it kills everything at once and leaves.

The launcher and the ``--buy`` check are wardens of themselves
(:func:`ward`: the process forks, and the parent half is the warden, in
the same group, which the parent can kill whole): should the launcher die before it
could kill what its buyers left (killed from outside, or by the buyers'
own code), its orphans come to the warden, not to init, and not to the
parent, whose pid their code could then take for its parent's. TERM, INT
and HUP are ignored here: a program's ``kill 0`` cannot stop its warden.

ARGV inherits the warden's stdin, stdout and stderr, and whatever
descriptors the parent passed down (the ``--buy`` check's result pipe).
"""

from __future__ import annotations

import os
import signal
import sys
import time

from ...constants import TYPE_CHECKING
from .own_python import caller_env
from .reaper import (
    CLEANUP_DEADLINE,
    abandon,
    become_subreaper,
    kill_descendants,
    parent_gone,
)

if TYPE_CHECKING:
    from typing import NoReturn

#: How often the warden looks at its program and its lifeline (seconds).
TICK = 0.005


#: Stopped by the lifeline, not by these: a program's ``kill 0`` must not.
SHRUGGED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def ward(lifeline: int) -> None:
    """Fork: the child returns, to do the work; this process becomes its
    warden, and never returns (see :func:`watch`). For a Python program of
    ours (the launcher, the ``--buy`` check), a fork costs a millisecond
    where a second interpreter costs tens."""
    become_subreaper()
    for sig in SHRUGGED:
        signal.signal(sig, signal.SIG_IGN)
    pid = os.fork()
    if pid == 0:
        for sig in SHRUGGED:
            signal.signal(sig, signal.SIG_DFL)
        return
    watch(pid, lifeline)


def watch(pid: int, lifeline: int) -> NoReturn:
    """Wait for the program ``pid``, then kill and reap what it left, and
    leave with its exit code; at the lifeline's EOF, kill everything now."""
    while True:
        if parent_gone(lifeline):
            abandon()
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(TICK)
    kill_descendants(time.monotonic() + CLEANUP_DEADLINE)  # its group, and what escaped it
    code = os.waitstatus_to_exitcode(status)
    os._exit(code if code >= 0 else 128 - code)


def main() -> None:
    lifeline = int(sys.argv[1])
    argv = sys.argv[sys.argv.index("--") + 1 :]
    become_subreaper()
    for sig in SHRUGGED:
        signal.signal(sig, signal.SIG_IGN)
    defaults = (signal.SIGPIPE, *SHRUGGED)
    try:
        env = caller_env(os.environ)  # the user's command: the caller's own PYTHONPATH
        pid = os.posix_spawn(argv[0], argv, env, setpgroup=0, setsigdef=defaults)
    except OSError as exc:
        os.write(2, f"cannot start {argv[0]}: {exc.strerror}\n".encode())
        os._exit(127)
    watch(pid, lifeline)


if __name__ == "__main__":
    main()
