"""``--buy``, checked before anything starts, never in this process.

Importing the user's module runs its code: a daemon it starts, a thread
that prints later, a write to descriptor 1, a sleep that never ends would
all be the parent's. So the check runs in a throwaway process under a
warden (:mod:`tickets.engine.child.warden`: whatever the import starts is killed
with it), with a deadline, and says what is wrong on a pipe of its own.
"""

from __future__ import annotations

import os
import subprocess

from .child.own_python import own_python
from .child.user_buyer import BuyerCodeError, split

#: How long the module's import may take (seconds).
CHECK_TIMEOUT = 30.0
#: Code already found good in this process (a race checks each side once):
#: (folder, spec, the file's modification time).
_GOOD: set[tuple[str, str, int]] = set()


def check(spec: str, timeout: float = CHECK_TIMEOUT) -> None:
    """Raise :class:`BuyerCodeError` with one line if ``spec`` names
    nothing a buyer can call: a missing file or function, a module that
    does not import (within ``timeout``), a function that does not take
    one argument."""
    from .shell_commands import _run

    where = split(spec)[0]  # the spelling, before any process
    try:
        stamp = os.stat(where).st_mtime_ns
    except OSError:
        stamp = 0  # a module on the path, or a file that is missing: the check says
    key = (os.getcwd(), spec, stamp)
    if key in _GOOD:
        return
    read_end, write_end = os.pipe()
    try:
        argv = own_python("tickets.engine.child.user_buyer", spec, str(write_end))
        done = _run(
            argv, timeout, wards_itself=True, pass_fds=(write_end,), stdout=subprocess.DEVNULL
        )
        os.close(write_end)
        write_end = -1
        answer = os.read(read_end, 4096).decode(errors="replace") if done is not None else ""
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
    if done is None:
        raise BuyerCodeError(f"{where}: its import did not finish within {timeout:g}s; stopped")
    if answer != "ok":
        raise BuyerCodeError(
            answer or f"{where}: cannot be imported (the check exited with code {done[0]})"
        )
    _GOOD.add(key)
