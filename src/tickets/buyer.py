"""The buyer's body, run in a child process: search, lock, read, decide, write, report.

The tutorial's ``Foo``: look at what is left (an unlocked read after a
simulated network delay; a buyer who sees none left goes away), then under
the strategy's lock read the count again, and if a ticket is left take it,
wait out the simulated write delay (the race window) and write the new
count. The seat is the count value the buyer decremented from. Children
never print: they report to the parent over one pipe (see
:mod:`tickets.channel`), and their stdout and stderr go to /dev/null.

This module and what it imports stay clear of ``random`` and ``threading``:
each registers an at-fork hook that every forked buyer runs (a reseed, a
re-init of thread state), which more than doubled the cost of a fork
(1,000 forks: 0.33 s bare, 0.46 s with random, 0.73 s with threading).
"""

from __future__ import annotations

import os
import time

from . import store
from .channel import send, send_all
from .record import Record
from .strategies import LockTimeout, get

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .store import StorePath


class Delays(Record):
    """Simulated network delays in seconds; each buyer draws its own, seeded."""

    __slots__ = ("search", "write")
    search: float  # upper bound of the search delay, uniform from 0
    write: float  # upper bound of the write delay (the race window), from half of it

    def __init__(self, search: float = 0.020, write: float = 0.004) -> None:
        self._set(search=search, write=write)

    @classmethod
    def none(cls) -> Delays:
        return cls(0.0, 0.0)

    def draw(self, rng: Draws) -> tuple[float, float]:
        return rng.uniform(0, self.search), rng.uniform(self.write / 2, self.write)

    def for_buyer(self, seed: int, buyer: int) -> tuple[float, float]:
        """This buyer's (search, write) delays: the same for the same seed."""
        if not (self.search or self.write):
            return 0.0, 0.0  # --no-delay: no generator to build in every child
        return self.draw(buyer_rng(seed, buyer))


class BuyerPlan(Record):
    """What every buyer of a run shares. Small and picklable (spawn sends it)."""

    __slots__ = (
        "store", "strategy", "seed", "delays", "lock_timeout", "fsync", "gate_timeout", "kill_at"
    )  # fmt: skip
    store: StorePath
    strategy: str
    seed: int
    delays: Delays
    lock_timeout: float
    fsync: bool
    gate_timeout: float
    #: buyer -> kill point: chaos runs kill these buyers with SIGKILL there
    kill_at: tuple[tuple[int, str], ...]

    def __init__(
        self,
        store: StorePath,
        strategy: str,
        seed: int,
        delays: Delays,
        lock_timeout: float,
        fsync: bool = False,
        gate_timeout: float = 120.0,
        kill_at: tuple[tuple[int, str], ...] = (),
    ) -> None:
        self._set(
            store=store,
            strategy=strategy,
            seed=seed,
            delays=delays,
            lock_timeout=lock_timeout,
            fsync=fsync,
            gate_timeout=gate_timeout,
            kill_at=kill_at,
        )


_MASK = (1 << 64) - 1


class Draws:
    """A small seeded generator (splitmix64) for the simulated delays.

    Not ``random.Random``: see the module doc. The same seed and keys give
    the same draws on every run and platform, whatever PYTHONHASHSEED.
    """

    def __init__(self, seed: int, *keys: int) -> None:
        state = seed & _MASK
        for key in keys:
            state = self._mix((state ^ (key & _MASK)) + 0x9E3779B97F4A7C15)
        self.state = state

    @staticmethod
    def _mix(z: int) -> int:
        z &= _MASK
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return z ^ (z >> 31)

    def random(self) -> float:
        """A float in [0, 1)."""
        self.state = (self.state + 0x9E3779B97F4A7C15) & _MASK
        return (self._mix(self.state) >> 11) / float(1 << 53)

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.random()


def buyer_rng(seed: int, buyer: int) -> Draws:
    return Draws(seed, 0, buyer)


def _quiet() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)


def _die() -> None:
    os.kill(os.getpid(), 9)


def _search(
    plan: BuyerPlan, base: dict[str, Any], delay: float
) -> tuple[int | None, dict[str, Any], dict[str, Any]]:
    """The unlocked read after the simulated network delay: what the buyer
    saw (None: unreadable), its ``invoke`` event, and the timing fields
    every later event of the buyer repeats."""
    t_start = time.monotonic()
    if delay:
        time.sleep(delay)
    try:
        seen: int | None = store.load(plan.store)
    except store.StoreError:
        seen = None
    t_search = time.monotonic()
    invoke = {"type": "invoke", **base, "t": t_search, "t_start": t_start, "seen": seen}
    return seen, invoke, {"t_start": t_start, "t_search": t_search, "seen": seen}


def _sold_out(base: dict[str, Any], timing: dict[str, Any]) -> dict[str, Any]:
    return {"type": "fail", **base, **timing, "reason": "sold out", "t": timing["t_search"]}


def run_buyer(
    plan: BuyerPlan, buyer: int, token: Any, events: Any, gate: Any, *, silence: bool = True
) -> None:
    """Entry point of a buyer process (``silence=False``: stdout and stderr
    already go nowhere, as under the launcher)."""
    if silence:
        _quiet()
    pid = os.getpid()
    kill_at = dict(plan.kill_at).get(buyer)
    base = {"buyer": buyer, "pid": pid}
    try:
        search_delay, write_delay = plan.delays.for_buyer(plan.seed, buyer)
        # EOF on the gate pipe: every buyer has started (see runner.Gate).
        if not gate.poll(plan.gate_timeout):
            send(events, {"type": "fail", **base, "reason": "never started", "t": time.monotonic()})
            return
        seen, invoke, timing = _search(plan, base, search_delay)
        if seen == 0 and kill_at != "search":
            # Sold out at the search: a buyer who sees nothing left walks
            # away instead of queueing for the lock (and 1,000 buyers for 10
            # tickets do not make 990 lock hand-offs to read a zero). Both
            # events go in one message: one write, one wake-up of the parent.
            send_all(events, [invoke, _sold_out(base, timing)])
            return
        send(events, invoke)
        if kill_at == "search":
            _die()
        # Only a buyer who goes for a ticket builds its lock (a file lock
        # opens <store>.lock): the rest never pay for it.
        lock = get(plan.strategy).child_lock(token, plan.store, plan.lock_timeout)
        try:
            lock.acquire()
        except LockTimeout:
            send(
                events, {"type": "fail", **base, **timing, "reason": "busy", "t": time.monotonic()}
            )
            return
        t_locked = time.monotonic()
        try:
            count = store.load(plan.store)
            if kill_at == "locked":
                _die()
            if count > 0:
                if write_delay:
                    time.sleep(write_delay)
                store.save(
                    plan.store,
                    count - 1,
                    fsync=plan.fsync,
                    before_replace=_die if kill_at == "writing" else None,
                )
                if kill_at == "written":
                    _die()
                outcome: dict[str, Any] = {"type": "ok", "seat": count}
            else:
                outcome = {"type": "fail", "reason": "sold out"}
        except Exception as exc:
            # Inside the critical section a failure may or may not have
            # reached the store: the outcome is unknown, not a failure.
            outcome = {"type": "info", "reason": f"error: {exc}"}
        try:
            lock.release()
        except Exception as exc:
            # The sale (if any) is done; say so even if the release failed.
            outcome.setdefault("reason", f"lock release failed: {exc}")
        t_done = time.monotonic()
        send(events, {**outcome, **base, **timing, "t_locked": t_locked, "t": t_done})
    except Exception as exc:  # reported, never printed: the parent renders
        send(events, {"type": "fail", **base, "reason": f"error: {exc}", "t": time.monotonic()})


def warm_up(plan: BuyerPlan, events: Any, gate: Any, rounds: int = 10) -> None:
    """Run a buyer's steps a few times in the process that forks buyers.

    CPython 3.11 rewrites a function's bytecode in place ("quickening") and
    fills its caches as the function runs. Done here once, every buyer
    inherits the result; otherwise each buyer does that work itself and
    copies every page it writes (a buyer's search cost ~0.7 ms less, warm).
    Nothing is changed: the store is only read, the lock is built but never
    taken, and the events go to ``events``, which the caller points at
    /dev/null; ``gate`` must be ready.
    """
    strategy = get(plan.strategy)
    base = {"buyer": 0, "pid": os.getpid()}
    for _ in range(rounds):
        plan.delays.for_buyer(plan.seed, 0)
        gate.poll(0)
        _, invoke, timing = _search(plan, base, 0.0)
        send(events, invoke)
        send_all(events, [invoke, _sold_out(base, timing)])
        if strategy.name == "file":  # the others' locks are the launcher's own
            try:
                strategy.child_lock(None, plan.store, plan.lock_timeout).close()
            except store.StoreError:
                pass
