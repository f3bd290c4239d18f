"""Signals to the parent: SIGTERM and SIGHUP are handled like Ctrl-C, and
the end of a run is never cut short by one.

A CI job that times out sends SIGTERM; a closed terminal sends SIGHUP. Both
stop the run the way Ctrl-C does: the children are stopped, what they had
in hand is recorded as unknown, the history gets its ``end`` line, and the
command exits 128 + the signal's number. While a run settles and writes its
``end`` line, further signals are held back and raised once it is written
(a second Ctrl-C used to leave the history unfinished).

Signal handlers can only be set in the main thread; elsewhere these do nothing.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

#: What signal.signal takes and returns.
Handler = Callable[[int, FrameType | None], object] | int | signal.Handlers | None

#: The signals that stop a run, besides SIGINT (Ctrl-C).
TERMINATING = (signal.SIGTERM, signal.SIGHUP)


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP: an interrupt, from another process than the terminal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    def __str__(self) -> str:
        return f"terminated by {signal.Signals(self.signum).name}"


def interrupt_for(signum: int) -> KeyboardInterrupt:
    return KeyboardInterrupt() if signum == signal.SIGINT else Terminated(signum)


def describe(interrupt: KeyboardInterrupt) -> str:
    """What the history says of an interrupted run."""
    return str(interrupt) if isinstance(interrupt, Terminated) else "interrupted"


def exit_code(interrupt: KeyboardInterrupt) -> int:
    signum = interrupt.signum if isinstance(interrupt, Terminated) else signal.SIGINT
    return 128 + signum


def _install(handler: Handler, signals: tuple[int, ...]) -> dict[int, Handler]:
    previous: dict[int, Handler] = {}
    try:
        for signum in signals:
            previous[signum] = signal.signal(signum, handler)
    except ValueError:  # not the main thread: leave the signals alone
        pass
    return previous


def _restore(previous: dict[int, Handler]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)


class _Shield:
    """Reentrant: while entered, the signals of :func:`terminations_interrupt`
    are noted instead of raised, and leaving the outermost raises the first.

    What it covers is done whole or not at all: an event written to the
    history and folded into the operations table, a batch of events read
    off the pipe (an interrupt in between lost the rest of the batch, or
    left the history and the table apart: an outcome with no invoke)."""

    def __init__(self) -> None:
        self.depth = 0
        self.caught: list[int] = []
        #: an interrupt was raised: the run is stopping, and the signals that
        #: follow are noted in ``late`` (a second signal raised while the
        #: first was being handled left the history without its end line)
        self.tripped = False
        self.late: list[int] = []

    def trip(self, signum: int) -> KeyboardInterrupt:
        self.tripped = True
        return interrupt_for(signum)

    def late_signals(self) -> list[int]:
        """The signals noted since the run began to stop (taken: each once)."""
        late = self.late[:]
        self.late.clear()
        return late

    def __enter__(self) -> None:
        self.depth += 1

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        self.depth -= 1
        if self.depth == 0 and self.caught:
            signum = self.caught[0]
            self.caught.clear()
            if kind is None:  # else the error on its way out stops the run
                raise self.trip(signum)


shielded = _Shield()


@contextmanager
def terminations_interrupt() -> Iterator[None]:
    """While the block runs, SIGTERM and SIGHUP raise :class:`Terminated` and
    SIGINT KeyboardInterrupt, except inside :data:`shielded`."""

    def terminate(signum: int, frame: FrameType | None) -> None:
        if shielded.tripped:
            shielded.late.append(signum)
        elif shielded.depth:
            shielded.caught.append(signum)
        else:
            raise shielded.trip(signum)

    previous = _install(terminate, (signal.SIGINT, *TERMINATING))
    try:
        yield
    finally:
        _restore(previous)
        shielded.tripped = False
        shielded.late.clear()


@contextmanager
def held_back(caught: list[int]) -> Iterator[None]:
    """While the block runs, SIGINT, SIGTERM and SIGHUP are noted in
    ``caught`` instead of interrupting it."""
    previous = _install(lambda signum, frame: caught.append(signum), (signal.SIGINT, *TERMINATING))
    try:
        yield
    finally:
        _restore(previous)
