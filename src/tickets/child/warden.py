"""The warden: one outside program run so that nothing it starts outlives it.

The parent runs the user's code outside a sale too: ``--stock-cmd`` before
and after it, and the ``--buy`` module's import, to check it before
anything starts. Neither may run in the parent itself (a module's
daemon, its threads and its writes to descriptor 1 would be the parent's),
nor as a plain child (what it leaves in a new session goes to init). So the
parent starts a warden, ``python -m tickets.child.warden LIFELINE -- ARGV``:
a child subreaper (see :mod:`tickets.child.reaper`) that starts ARGV in a
process group of its own, waits for it, then kills and reaps every
descendant left, and exits with its exit code (128 + the signal that
killed it). If its lifeline reads EOF first (the parent died, or gave up
on it at its deadline), it kills everything at once and leaves.

The launcher runs under a warden too (``--same-group``: in the warden's
group, which the parent can kill whole): should the launcher die before it
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

from .reaper import (
    CLEANUP_DEADLINE,
    abandon,
    become_subreaper,
    kill_descendants,
    parent_gone,
)

#: How often the warden looks at its program and its lifeline (seconds).
TICK = 0.005


def main() -> None:
    lifeline, same_group = int(sys.argv[1]), sys.argv[2] == "--same-group"
    argv = sys.argv[sys.argv.index("--") + 1 :]
    become_subreaper()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        # The parent stops it by its lifeline; its program's ``kill 0`` must not.
        signal.signal(sig, signal.SIG_IGN)
    defaults = (signal.SIGPIPE, signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    try:
        if same_group:
            pid = os.posix_spawn(argv[0], argv, os.environ, setsigdef=defaults)
        else:
            pid = os.posix_spawn(argv[0], argv, os.environ, setpgroup=0, setsigdef=defaults)
    except OSError as exc:
        os.write(2, f"cannot start {argv[0]}: {exc.strerror}\n".encode())
        os._exit(127)
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


if __name__ == "__main__":
    main()
