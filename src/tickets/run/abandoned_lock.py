"""Noticing a ``multiprocessing.Lock`` left held by a dead process.

Its holder dead, such a lock is never released: everyone else would wait out
their lock timeouts one by one. A flock is released by the kernel when its
holder dies, so the file strategies never need this.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

#: How long nobody may get through a process lock after a death before it
#: is taken for abandoned.
ABANDON_WINDOW = 1.0
#: The outcome of those who waited for a lock only the dead could hold.
ABANDONED = "stopped: the lock was left held by a dead process, so this one never got it"
STOP_MESSAGE = (
    "a process died holding the run's multiprocessing.Lock, which is never released "
    "for a dead holder; stopped (--lock file survives this: the kernel releases a "
    "flock when its holder dies)"
)


def probe_by_trying(lock: Any) -> Callable[[float], bool]:
    """A probe that tries the lock itself, without waiting (the lock is ours)."""

    def probe(since: float) -> bool:
        if lock.acquire(False):
            lock.release()
            return True
        return False

    return probe


class AbandonedLockDetector:
    """Once a process died without an outcome, if nobody gets through the
    lock for ``window`` seconds and the lock is not found free since the
    death, the lock is taken for abandoned and the run stops.

    ``probe(since)`` says whether the lock was found free since then: tried
    by the parent itself (:func:`probe_by_trying`), or reported by the
    launcher that holds the lock. None: the strategy has no such lock.
    """

    def __init__(self, probe: Callable[[float], bool] | None, window: float = ABANDON_WINDOW):
        self.probe = probe
        self.window = window
        self.suspect_since: float | None = None
        self.last_through = time.monotonic()
        self.abandoned = False

    def died(self, at: float) -> None:
        """A process died without an outcome at ``at`` (monotonic seconds)."""
        if self.probe is not None and self.suspect_since is None:
            self.suspect_since = at

    def passed(self, ev: dict[str, Any], now: float) -> None:
        """An event: did its process get through the lock?"""
        if ev["type"] == "ok" or (ev["type"] == "fail" and ev.get("t_locked") is not None):
            self.last_through = now

    def check(self, now: float, waiting: bool) -> str | None:
        """Why the run must stop, once the lock is taken for abandoned."""
        if self.probe is None or self.suspect_since is None or not waiting:
            return None
        if self.probe(self.suspect_since):
            self.suspect_since = None  # it was free: the dead one did not hold it
            return None
        if now - max(self.suspect_since, self.last_through) < self.window:
            return None
        self.abandoned = True
        return STOP_MESSAGE
