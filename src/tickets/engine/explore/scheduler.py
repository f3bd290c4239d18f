"""One schedule: a few buyers on threads, exactly one of them running at a
time, each stopped before every switch point until the scheduler lets it
pass.

A buyer thread runs the buyer's own code (the built-in purchase, or the
user's ``--buy`` function) against its own handle on the store; every
store operation and every lock step first calls :meth:`Controller.point`,
which hands control back to the scheduler and waits to be chosen. So the
order of the store operations is the scheduler's, and the same choices
give the same sale, step for step. Only the scheduler decides; the real
store and the real locks do the work (an ``os.replace``, a SQLite
statement, a Redis command, a ``flock``).

The scheduler knows who holds which lock (the steps say so), so a buyer
whose next step takes a lock someone else holds is not enabled: it is
never let run into a wait. Every wait here has a deadline
(:data:`STEP_DEADLINE`): a step that does not come back in time (a store
that hangs, a lock held from outside) stops the exploration with an error.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from .steps import Step

#: The longest one step may take before the exploration gives up on it.
STEP_DEADLINE = 30.0


#: Why a step may not come back, said with it.
HUNG = (
    ": the buyer code loops, sleeps, or waits on something of its own (a threading "
    "lock another buyer holds): the explorer runs buyers one at a time, in one process"
)


class Abandoned(BaseException):
    """Raised in a buyer thread to unwind it: its schedule is dropped (the
    search found it redundant, or it is over). A BaseException, so that
    the buyer's own ``except Exception`` does not swallow it."""


class StepHung(Exception):
    """A buyer's step did not return within :data:`STEP_DEADLINE`."""


@dataclass
class Executed:
    """A step that ran, what it did in words (``reads 1``), and when."""

    step: Step
    said: str = ""


@dataclass
class Controller:
    """The hand-over between the buyer threads: exactly one runs. At its
    switch point a buyer itself asks the scheduler (:attr:`decide`) who
    goes next; if that is itself it goes on at once, else it wakes the one
    chosen and waits on its own lock (a baton passed: no round trip to a
    scheduler thread, so a step costs a switch only when the schedule
    switches). The main thread waits on :attr:`back` until the schedule is
    over, stopped, or a buyer's step hangs."""

    buyers: int
    #: the most one step (or the start of a buyer) may take
    deadline: float = STEP_DEADLINE
    go: list[threading.Lock] = field(default_factory=list)
    back: threading.Lock = field(default_factory=threading.Lock)
    #: each unfinished buyer's next step (None: not there yet, or finished)
    pending: list[Step | None] = field(default_factory=list)
    finished: list[bool] = field(default_factory=list)
    #: buyers unwinding after Abandoned: their points pass without a stop
    free: list[bool] = field(default_factory=list)
    abandon: bool = False
    #: the steps that ran, in order
    ran: list[Executed] = field(default_factory=list)
    #: who holds each lock (by the steps' names)
    holders: dict[str, int] = field(default_factory=dict)
    #: a buyer's handle went round the scheduler (``store.raw``)
    uncontrolled: set[int] = field(default_factory=set)
    #: who goes next (its step recorded), or None: the schedule is over
    decide: Callable[[], int | None] | None = None
    #: what ``decide`` raised, for the main thread
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self.go = [threading.Lock() for _ in range(self.buyers)]
        for lock in self.go:
            lock.acquire()
        self.back.acquire()
        self.pending = [None] * self.buyers
        self.finished = [False] * self.buyers
        self.free = [False] * self.buyers

    # -- a buyer's side ----------------------------------------------------

    def point(self, step: Step) -> None:
        """Stop before ``step`` until the scheduler chooses this buyer."""
        b = step.buyer
        if self.free[b]:
            if step.takes_lock:  # never into a wait for a lock another holds
                raise Abandoned
            return
        self.pending[b] = step
        if self.decide is None:  # starting: the main thread starts the next buyer
            self.back.release()
        elif self._dispatch(b) == b:
            return  # chosen again: no switch
        if not self.go[b].acquire(timeout=self.deadline * 4) or self.abandon:
            self.free[b] = True
            raise Abandoned

    def say(self, text: str) -> None:
        """What the step that just ran did, in words (for the printed schedule)."""
        if self.ran and not self.ran[-1].said:
            self.ran[-1].said = text

    def finish(self, buyer: int) -> None:
        self.finished[buyer] = True
        self.pending[buyer] = None
        if self.decide is None or self.abandon:
            self.back.release()
        else:
            self._dispatch(buyer)

    def _dispatch(self, current: int | None) -> int | None:
        """Ask who goes next and pass the baton; None: the schedule is over
        (the main thread is woken)."""
        assert self.decide is not None
        try:
            chosen = self.decide()
        except BaseException as exc:  # the main thread raises it
            self.error = exc
            chosen = None
        if chosen is None:
            self.back.release()
            return None
        step = self.pending[chosen]
        assert step is not None
        self.pending[chosen] = None
        self.ran.append(Executed(step))
        if chosen != current:
            self.go[chosen].release()
        return chosen

    @property
    def now(self) -> float:
        """The logical clock: one millisecond per step (histories' times)."""
        return round(1.0 + len(self.ran) * 0.001, 6)

    # -- the main thread's side --------------------------------------------

    def start(self, thread: threading.Thread) -> None:
        """Start a buyer and wait until it stops at its first point."""
        thread.start()
        if not self.back.acquire(timeout=self.deadline):
            raise StepHung(f"a buyer did not reach its first step within {self.deadline:g}s{HUNG}")

    def play(self, decide: Callable[[], int | None]) -> None:
        """Run the schedule ``decide`` makes, until it is over."""
        self.decide = decide
        if self._dispatch(None) is None:
            return
        seen = -1
        while not self.back.acquire(timeout=self.deadline):
            if len(self.ran) == seen:
                who = self.ran[-1].step.buyer if self.ran else 0
                raise StepHung(
                    f"buyer {who}'s step did not come back within {self.deadline:g}s{HUNG}"
                )
            seen = len(self.ran)

    def enabled(self) -> list[int]:
        """The buyers that can take their next step now."""
        out = []
        for b, step in enumerate(self.pending):
            if step is None:
                continue
            if step.takes_lock and self.holders.get(step.obj or "", b) != b:
                continue  # its lock is held by another buyer
            out.append(b)
        return out

    def unfinished(self) -> list[int]:
        return [b for b in range(self.buyers) if not self.finished[b]]

    def unwind(self) -> None:
        """End a schedule early: every unfinished buyer unwinds (its locks
        are let go as its code leaves them)."""
        self.abandon = True
        for b in self.unfinished():
            if self.pending[b] is not None:
                self.pending[b] = None
                self.go[b].release()
                if not self.back.acquire(timeout=self.deadline):
                    raise StepHung(f"buyer {b} did not unwind within {self.deadline:g}s{HUNG}")


def buyer_thread(ctl: Controller, buyer: int, body: Callable[[], None]) -> threading.Thread:
    """A daemon thread running ``body`` (one buyer), that tells ``ctl`` when done."""

    def run() -> None:
        try:
            body()
        except Abandoned:
            pass
        finally:
            ctl.finish(buyer)

    return threading.Thread(target=run, name=f"explore-buyer-{buyer}", daemon=True)
