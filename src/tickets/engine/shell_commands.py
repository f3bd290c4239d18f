"""The user's shell commands, parent side: ``--exec`` and ``--stock-cmd``.

:func:`check_command` looks at a command before anything starts, so that a
typo is a usage error (exit 2) and not fifty unknown outcomes: it must
parse as shell (``sh -n``), and the program it starts with must exist and
be executable (a shell builtin or keyword, a variable assignment or a
substitution is taken as it is). :func:`read_stock` runs ``--stock-cmd``
and reads the stock it prints, with a deadline, in a process group of its
own that is killed whole once it is done.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import time

from ..constants import MAX_COUNT
from ..errors import UsageProblem
from ..stores.base import StoreError
from .child.own_python import own_env, own_python

FLAG = "--stock-cmd"
#: How long ``sh -n`` and ``--stock-cmd`` may take (seconds).
STOCK_TIMEOUT = 30.0
#: Words a command may start with that are not programs on the PATH.
SHELL_WORDS = frozenset(
    "! { } ( [ [[ . : alias bg break case cd command continue echo eval exec exit export false "
    "fg for function getopts hash if jobs kill local printf pwd read readonly return set shift "
    "test then time times trap true type ulimit umask unalias unset until wait while".split()
)


class CommandError(UsageProblem, ValueError):
    """A command that cannot run as given (a usage error, exit 2)."""


class StockCommandError(StoreError):
    """``--stock-cmd`` did not print a stock (exit 3, like an unreadable store)."""


def check_command(flag: str, command: str) -> None:
    """Raise :class:`CommandError` naming ``flag`` if ``command`` cannot run."""
    if not command.strip():
        raise CommandError(f"{flag}: give a command, not an empty one")
    if "\0" in command:
        raise CommandError(f"{flag}: a command cannot hold a NUL character")
    try:
        words = shlex.split(command, comments=True)
    except ValueError as exc:
        raise CommandError(f"{flag}: {command!r} does not parse ({exc})") from None
    done = _run(["/bin/sh", "-n", "-c", command], STOCK_TIMEOUT)
    if done is None or done[0] != 0:
        said = "" if done is None else _first_line(done[2])
        why = f" ({said})" if said else ""
        raise CommandError(f"{flag}: {command!r} is not valid shell{why}")
    first = words[0] if words else ""
    if not first or first in SHELL_WORDS or "=" in first.split("/")[0] or first[0] in "$`(<>&|;":
        return
    if "/" in first:
        if not os.path.exists(first):
            raise CommandError(f"{flag}: {first}: no such file")
        if os.path.isdir(first) or not os.access(first, os.X_OK):
            raise CommandError(f"{flag}: {first}: not an executable file")
    elif shutil.which(first) is None:
        raise CommandError(f"{flag}: {first}: command not found (on PATH)")


def read_stock(command: str, when: str, timeout: float = STOCK_TIMEOUT) -> int:
    """The stock ``--stock-cmd`` prints on its first line; ``when`` says
    which reading this is ("before the sale", "after the sale")."""
    done = _run(["/bin/sh", "-c", command], timeout, warded=True)
    if done is None:
        raise StockCommandError(
            FLAG,
            f"{when}: still running after {timeout:g}s, or printed "
            f"over {KEEP_BYTES // 1024} KiB; killed",
        )
    code, out, err = done
    if code != 0:
        said = _first_line(err)
        raise StockCommandError(FLAG, f"{when}: exit {code}" + (f" ({said})" if said else ""))
    line = _first_line(out)
    if not (line.isascii() and line.isdigit() and len(line) <= 10 and int(line) <= MAX_COUNT):
        shown = line[:40] if line.isprintable() else repr(line[:40])
        raise StockCommandError(
            FLAG, f"{when}: printed {shown!r}, not a stock (a whole number, 0 to {MAX_COUNT:,})"
        )
    return int(line)


def _first_line(data: bytes) -> str:
    line = data.decode("utf-8", "replace").strip().partition("\n")[0].strip()
    return line if line.isprintable() else "".join(c if c.isprintable() else "?" for c in line)


#: What is kept of a command's stdout and stderr (its first line is all that is read).
KEEP_BYTES = 65536


def _run(
    argv: list[str],
    timeout: float,
    warded: bool = False,
    pass_fds: tuple[int, ...] = (),
    stdout: int | None = subprocess.PIPE,
    wards_itself: bool = False,
) -> tuple[int, bytes, bytes] | None:
    """Run ``argv`` in a session of its own; (exit code, stdout, stderr: at
    most KEEP_BYTES each), or None if it ran out of time or printed more.
    ``warded``: under a warden (:mod:`tickets.engine.child.warden`), so that
    nothing it starts, in its group or out of it, outlives it or this
    process; ``wards_itself``: a program of ours that forks its own warden,
    given the lifeline as its last argument. What it left in its group is
    killed either way."""
    lifeline = None
    if warded or wards_itself:
        lifeline, keep = os.pipe()
        if wards_itself:
            argv = [*argv, str(lifeline)]
        else:
            argv = own_python("tickets.engine.child.warden", str(lifeline), "--", *argv)
        pass_fds = (*pass_fds, lifeline)
        warded = True
    env = own_env()
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.PIPE,
            start_new_session=True,
            pass_fds=pass_fds,
            env=env,
        )
    finally:
        if lifeline is not None:
            os.close(lifeline)  # the warden's end only
    try:
        done = _collect(proc, timeout)
    except BaseException:  # a signal: nothing of it is left behind
        _stop(proc, keep if warded else None)
        raise
    if done is None:
        _stop(proc, keep if warded else None)
        return None
    if warded:
        os.close(keep)
    _kill(proc.pid)  # what it left running
    return done


def _collect(proc: subprocess.Popen[bytes], timeout: float) -> tuple[int, bytes, bytes] | None:
    """Read its output until it exits (None: the deadline passed first, or
    it printed more than KEEP_BYTES on a stream)."""
    import selectors

    deadline = time.monotonic() + timeout
    kept = {f: bytearray() for f in (proc.stdout, proc.stderr) if f is not None}
    with selectors.DefaultSelector() as sel:
        for f in kept:
            sel.register(f, selectors.EVENT_READ)
        while sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            for key, _ in sel.select(left):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    sel.unregister(key.fileobj)
                    continue
                buffer = kept[key.fileobj]  # type: ignore[index]
                buffer += chunk
                if len(buffer) > KEEP_BYTES:
                    return None
    try:
        code = proc.wait(max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        return None
    for f in kept:
        f.close()
    out, err = (bytes(kept[f]) if f is not None else b"" for f in (proc.stdout, proc.stderr))
    return code, out, err


def _stop(proc: subprocess.Popen[bytes], lifeline: int | None) -> None:
    """Stop it now: its warden is told (it kills what the program started,
    escaped or not), then its session's group is killed, and it is reaped."""
    if lifeline is not None:
        os.close(lifeline)
        try:
            proc.wait(5.0)
        except subprocess.TimeoutExpired:
            pass
    _kill(proc.pid)
    proc.wait()
    for f in (proc.stdout, proc.stderr):
        if f is not None:
            f.close()


def _kill(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
