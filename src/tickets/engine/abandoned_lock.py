"""Noticing a ``multiprocessing.Lock`` left held by a dead process.

Its holder dead, such a lock is never released: everyone else would wait out
their lock timeouts one by one. Under the ``process`` strategy the holder
says so: right after it takes the lock it sends ``locked`` (its pid), and
its next message (an outcome, sent after it let go) says it no longer holds
it. A process that dies while it is the holder has abandoned the lock, and
the run stops at once; one that dies waiting for the lock is just a dead
buyer. (The run used to guess from timing, and stopped when a waiter died
while a slow holder worked.) A flock is released by the kernel when its
holder dies, so the file strategies never need this.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing_extensions import TypeIs

    from ..check.events import Locked, Message

STOP_MESSAGE = (
    "a process died holding the run's multiprocessing.Lock, which is never released "
    "for a dead holder; stopped (--lock file survives this: the kernel releases a "
    "flock when its holder dies)"
)


class AbandonedLockDetector:
    """Who holds the run's process lock, and whether its holder died."""

    def __init__(self) -> None:
        self.holder: int | None = None
        #: on a worker (many buyers, one pid) the holder is a buyer of that pid
        self.holder_buyer: int | None = None
        self.abandoned = False

    def heard(self, ev: Message) -> TypeIs[Locked]:
        """Take one event from a child; True if it was a ``locked`` message,
        which is the detector's alone (it stays out of the history)."""
        if ev["type"] == "locked":
            self.holder, self.holder_buyer = ev["pid"], ev.get("buyer")
            return True
        pid = ev.get("pid")
        if self.holder_buyer is not None:  # a worker's buyer (its events carry no pid)
            if ev.get("buyer") == self.holder_buyer:
                self.holder = self.holder_buyer = None  # it speaks once it has let go
        elif pid is not None and pid == self.holder:
            self.holder = None  # it speaks again only once it has let go
        return False

    def died(self, pid: int | None) -> None:
        """A process died; read every message it sent before calling this."""
        if pid is not None and pid == self.holder:
            self.abandoned = True

    def check(self) -> str | None:
        """Why the run must stop, once the lock's holder is dead."""
        return STOP_MESSAGE if self.abandoned else None
