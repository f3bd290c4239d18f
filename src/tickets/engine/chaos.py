"""Fault injection, seeded and reproducible: kills and pauses.

Kills are ``SIGKILL`` (kill -9). A doomed buyer or clerk kills itself at a
point the plan names, so the same seed kills the same processes at the same
step of their work every time, including inside the critical section:

- ``search``: after its unlocked read, before it asks for the lock
- ``locked``: holding the lock, before it writes (a ``multiprocessing.Lock``
  it holds is then never released)
- ``writing``: its new count is in the temp file, not yet renamed over the
  store (it leaves an orphan temp file behind)
- ``written``: the store is written, the sale not yet reported (its outcome
  is unknown, though it happened)

A clerk of the queue mode dies at ``took`` (orders taken off the queue, not
yet sold), ``locked`` or ``written``; it never dies inside a queue operation,
where it would leave the queue's own lock held.

Pauses are ``SIGSTOP`` then ``SIGCONT`` sent by the parent, at seeded moments
after the start gate opens, for seeded lengths. With ``pause_length`` a
paused buyer instead stops itself at one named point, holding the lock after
its read and before its write, for exactly that long: the pause that outlives
a lease (see tickets.stores.redis).
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

from ..errors import ConfigError
from .child.orders import CLERK_KILL_POINTS as CLERK_POINTS
from .child.session import BUYER_KILL_POINTS as BUYER_POINTS

#: Pauses start within this long after the gate opens...
PAUSE_WINDOW = 0.2
#: ...and last between these (seconds).
PAUSE_MIN, PAUSE_MAX = 0.005, 0.05


@dataclass(frozen=True)
class Chaos:
    """A chaos run's plan: the share of processes killed and paused, and the seed."""

    kill_rate: float = 0.2
    pause_rate: float = 0.2
    seed: int = 0
    #: seconds a paused buyer holds the lock between its read and its write;
    #: None: SIGSTOP pauses at random moments instead
    pause_length: float | None = None

    def __post_init__(self) -> None:
        for name, rate in (("kill rate", self.kill_rate), ("pause rate", self.pause_rate)):
            if not 0 <= rate <= 1:
                raise ConfigError(f"{name} must be from 0 to 1, got {rate}")
        if self.pause_length is not None and not 0 < self.pause_length <= 3600:
            raise ConfigError("pause length must be more than 0 and at most an hour")

    def rng(self, what: str) -> random.Random:
        return random.Random(f"chaos:{self.seed}:{what}")

    def buyer_kills(self, buyers: int) -> tuple[tuple[int, str], ...]:
        rng = self.rng("kill")
        return tuple(
            (b, rng.choice(BUYER_POINTS)) for b in range(buyers) if rng.random() < self.kill_rate
        )

    def clerk_kills(self, clerks: int, orders: int) -> tuple[tuple[int, int, str], ...]:
        """(clerk, after how many orders, point): each clerk dies with that rate."""
        rng = self.rng("kill")
        kills = []
        for c in range(clerks):
            if rng.random() < self.kill_rate:
                kills.append(
                    (c, rng.randrange(max(1, orders // max(1, clerks))), rng.choice(CLERK_POINTS))
                )
        return tuple(kills)

    def held_pauses(self, buyers: int) -> tuple[tuple[int, float], ...]:
        """(buyer, seconds): who pauses holding the lock, with ``pause_length``."""
        if self.pause_length is None:
            return ()
        rng = self.rng("pause")
        return tuple(
            (b, self.pause_length) for b in range(buyers) if rng.random() < self.pause_rate
        )

    def pauses(self, keys: Iterable[Hashable]) -> list[Pause]:
        """SIGSTOP pauses (none when buyers pause themselves: ``pause_length``)."""
        if self.pause_length is not None:
            return []
        rng = self.rng("pause")
        plan = []
        for key in keys:
            if rng.random() < self.pause_rate:
                at = rng.uniform(0, PAUSE_WINDOW)
                plan.append(Pause(key, at, rng.uniform(PAUSE_MIN, PAUSE_MAX)))
        return plan


@dataclass(frozen=True)
class Pause:
    key: Hashable
    at: float  # seconds after the gate opens
    length: float


class Pauser:
    """The parent's side of pauses: SIGSTOP and SIGCONT on schedule."""

    def __init__(self, plan: list[Pause], pids: dict[Hashable, int]) -> None:
        self.pids = pids
        self._actions = sorted(
            [(p.at, signal.SIGSTOP, p.key) for p in plan]
            + [(p.at + p.length, signal.SIGCONT, p.key) for p in plan],
            key=lambda a: a[0],
        )
        self._stopped: set[Hashable] = set()
        self.paused = 0
        self.t0: float | None = None

    def start(self, t0: float) -> None:
        self.t0 = t0

    def tick(self) -> None:
        if self.t0 is None:
            return
        elapsed = time.monotonic() - self.t0
        while self._actions and self._actions[0][0] <= elapsed:
            _, sig, key = self._actions.pop(0)
            if self._send(key, sig):
                if sig == signal.SIGSTOP:
                    self._stopped.add(key)
                    self.paused += 1
                else:
                    self._stopped.discard(key)

    def next_in(self) -> float | None:
        """Seconds until the next action (None: nothing left)."""
        if not self._actions or self.t0 is None:
            return None
        return max(0.0, self._actions[0][0] - (time.monotonic() - self.t0))

    def resume_all(self) -> None:
        """Never leave a process stopped, whatever happens to the run."""
        for key in list(self._stopped):
            self._send(key, signal.SIGCONT)
        self._stopped.clear()
        self._actions.clear()

    def _send(self, key: Hashable, sig: int) -> bool:
        pid = self.pids.get(key)
        if pid is None:
            return False
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return False
        return True
