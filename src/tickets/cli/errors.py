"""Core exceptions -> one-line click errors with the documented exit codes,
and how signals end a command that is writing its answer.

Only click is imported at module level (see :mod:`tickets.cli`).
"""

from __future__ import annotations

import os
import select
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

from ..constants import EXIT_ABORTED, EXIT_CHECK_FAILED, EXIT_STORE, EXIT_UNPROVEN, EXIT_USAGE
from ..errors import TicketsError

if TYPE_CHECKING:
    import threading


def printable(text: str) -> str:
    """The project's sanitiser (:func:`tickets.check.operations.printable`): what
    came from outside (a path, a file name, a user's exception) may not
    steer the terminal."""
    from ..check.operations import printable as sanitised

    return sanitised(text)


class UnusableFile(click.ClickException):
    """The store, its lock, a history or an output file cannot be used (exit 3)."""

    exit_code = EXIT_STORE

    def __init__(self, message: str) -> None:
        super().__init__(printable(message))  # messages name files: a name is outside text


def as_click(error: TicketsError) -> click.ClickException:
    """A core error as click shows it: a usage error (``Usage: …``, exit 2)
    or one line, exit 3 (the two codes a core error may carry)."""
    if error.exit_code == EXIT_USAGE:
        return click.UsageError(printable(str(error)))
    return UnusableFile(str(error))


@contextmanager
def translate_errors() -> Iterator[None]:
    """Every core error (:class:`tickets.errors.TicketsError`) -> its exit."""
    try:
        yield
    except TicketsError as exc:
        raise as_click(exc) from None


def exit_code_for(
    passed: bool, aborted: str | None, store_error: str | None = None, unproven: bool = False
) -> int:
    """A run's exit code: 4 stopped, 3 the store could not be read at the
    end (a server gone mid-sale), 1 a check failed, 5 no check failed but
    nothing read the stock, 0 every check passed."""
    if aborted:
        return EXIT_ABORTED
    if store_error:
        return EXIT_STORE
    if passed:
        return 0
    return EXIT_UNPROVEN if unproven else EXIT_CHECK_FAILED


#: Set by the ``tickets`` entry point (not under a test's CliRunner, whose
#: process must keep its signals, and pass them on to its children).
ENTRY_POINT: list[bool] = []
#: The signals that stop a command.
STOPPING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
#: How long a signal that comes while the answer is written lets it finish.
#: The answer goes out whole (and the exit code is its own) unless it is
#: stuck longer (a pipe nobody reads: `tickets buy --all | sleep 40`); then
#: it is cut and the command exits 128 + the signal's number.
ANSWER_GRACE_S = 1.0


class _Answer:
    """The answer being written: is a thread watching for signals, is it out."""

    watching = False
    #: set when the answer is out (made with the watcher thread)
    out: threading.Event | None = None


def hold_signals() -> None:
    """From here SIGINT, SIGTERM and SIGHUP wait (blocked, not lost): until
    :func:`done_answering` watches for them, or the process exits."""
    if ENTRY_POINT:
        signal.pthread_sigmask(signal.SIG_BLOCK, STOPPING)


def done_answering() -> None:
    """The command has its answer (the document, the verdict) and writes it.

    A signal that comes now lets the answer finish, and the process exits
    with the code the answer gives (a document never says one code and
    exits with another); a second signal, or an answer still not out
    :data:`ANSWER_GRACE_S` after the first, cuts it short: the command exits
    128 + the first signal's number at once. Signals were held for the whole
    write before, and a pipe nobody read made the command unkillable (#22).

    The signals stay blocked in the main thread, and a thread waits for
    them: a handler that returned in the middle of a write would let Python
    drop the rest of it (an unbuffered stdout, PYTHONUNBUFFERED, ignores a
    write a signal cut short), and one that raised would cut documents that
    were about to go out whole.
    """
    if not ENTRY_POINT or _Answer.watching:
        return
    import threading

    from ..engine import interrupts

    named = {s: interrupts.describe(interrupts.interrupt_for(s)) for s in STOPPING}
    _Answer.watching = True
    _Answer.out = threading.Event()
    signal.pthread_sigmask(signal.SIG_BLOCK, STOPPING)  # before the thread: it inherits the mask
    threading.Thread(target=_watch, args=(_Answer.out, named), daemon=True).start()


def _watch(out: threading.Event, named: dict[int, str]) -> None:
    """The watcher thread: the first signal starts the grace, a second or
    its end (with the answer not out) cuts."""
    import time

    first = signal.sigwait(STOPPING)
    deadline = time.monotonic() + ANSWER_GRACE_S
    while not out.is_set():
        left = deadline - time.monotonic()
        if left <= 0 or signal.sigtimedwait(STOPPING, min(left, 0.05)) is not None:
            if not out.is_set():
                _cut(first, named[first])


def _cut(signum: int, named: str) -> None:
    """Stop the process where its answer is stuck: say so where there is
    room, leave no temp file, exit without flushing (it would block)."""
    files = sys.modules.get("tickets.render.files")  # an export being written
    for temp in list(getattr(files, "IN_FLIGHT", ())):
        try:
            os.unlink(temp)
        except OSError:
            pass
    try:  # stderr may be the full pipe: one line, only if it cannot block
        if select.select([], [2], [], 0)[1]:
            os.write(2, f"{named} while writing the answer: the output is cut short\n".encode())
    except (OSError, ValueError):
        pass
    os._exit(128 + signum)


def answered() -> None:
    """The answer is out: what is buffered goes too (a signal can still cut
    it), then every signal waits until the process exits with the answer's
    code (nothing is left to flush: the exit cannot block)."""
    if not ENTRY_POINT:
        return
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    signal.pthread_sigmask(signal.SIG_BLOCK, STOPPING)
    if _Answer.out is not None:
        _Answer.out.set()


#: Outputs beside the answer that could not be written (a --junit-xml on a
#: full disk): said after the verdict, and a passing command exits 3.
UNWRITTEN: list[str] = []


def with_unwritten(code: int) -> int:
    """``code``, or 3 if it was 0 and an output could not be written."""
    return code or (EXIT_STORE if UNWRITTEN else 0)


def exit_with(code: int) -> None:
    """Leave with ``code`` once the answer is out (for 0 the command returns);
    an output that could not be written is said last, and fails a pass."""
    for line in UNWRITTEN:
        click.echo(f"Error: {line}", err=True)
    code = with_unwritten(code)
    answered()
    if code:
        sys.exit(code)
