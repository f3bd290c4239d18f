"""One schedule: a few buyers, exactly one of them running at a time, each
stopped before every switch point until the scheduler lets it pass.

Each buyer runs the buyer's own code (the built-in purchase, or the
user's ``--buy`` function) against its own handle on the store, in a
greenlet of its own: a real Python stack that is switched to and from in
the one thread, in about a microsecond, where a thread hand-over costs a
wake-up of the kernel's (~50 µs; the explorer measured 5× fewer schedules
a second on threads). Every store operation and every lock step first
calls :meth:`Controller.point`, which asks the scheduler who goes next and
passes control to that buyer, so the order of the store operations is the
scheduler's, and the same choices give the same sale, step for step. Only
the scheduler decides; the real store and the real locks do the work (an
``os.replace``, a SQLite statement, a Redis command, a ``flock``).

The scheduler knows who holds which lock (the steps say so), so a buyer
whose next step takes a lock someone else holds is not enabled: it is
never let run into a wait. Buyer code that blocks on something of its own
(a ``threading.Lock`` another buyer holds, a sleep, a loop) holds up the
one thread: the exploration's process (tickets.engine.explore.isolated)
is then stopped at its deadline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NoReturn

from greenlet import greenlet  # type: ignore[import-untyped]

from .steps import Step

#: The longest a buyer may take to reach its first step (kept for the
#: messages; the exploration's process has the deadline).
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


class Misused(Exception):
    """Buyer code did what the scheduler cannot put in order (exit 2)."""


#: Why a schedule came back to the scheduler by the buyer code's own doing.
ESCAPED = (
    "a buyer's code switched greenlets on its own (or ran an event loop or thread that did): "
    "the explorer cannot put its steps in order"
)


class StepHung(Exception):
    """A buyer's step did not return within :data:`STEP_DEADLINE`."""


@dataclass
class Executed:
    """A step that ran, what it did in words (``reads 1``), and when."""

    step: Step
    said: str = ""


@dataclass
class Controller:
    """The hand-over between the buyers: exactly one runs. At its switch
    point a buyer itself asks the scheduler (:attr:`decide`) who goes next;
    if that is itself it goes on at once, else it switches to the one
    chosen (a baton passed), or to the main greenlet when the schedule is
    over or stopped."""

    buyers: int
    #: kept for the messages (see STEP_DEADLINE)
    deadline: float = STEP_DEADLINE
    #: each buyer's greenlet
    runners: list[greenlet | None] = field(default_factory=list)
    main: greenlet | None = None
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
    #: when each buyer first waited for a lock another held: it was buying
    #: from then on (see ExploredSession's invoke)
    blocked_since: dict[int, float] = field(default_factory=dict)
    #: a buyer's handle went round the scheduler (``store.raw``)
    uncontrolled: set[int] = field(default_factory=set)
    #: who goes next (its step recorded), or None: the schedule is over
    decide: Callable[[], int | None] | None = None
    #: what ``decide`` raised, for the main greenlet
    error: BaseException | None = None
    #: the scheduler ended the schedule (not a buyer's code switching away)
    over: bool = False

    def __post_init__(self) -> None:
        self.main = greenlet.getcurrent()
        self.runners = [None] * self.buyers
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
        if self.abandon:  # the schedule is being ended: unwind
            self.free[b] = True
            raise Abandoned
        if greenlet.getcurrent() is not self.runners[b]:
            self.misused(
                f"buyer {b}'s store handle was used outside buyer {b}'s own code (a handle "
                "kept across calls, a __del__, a thread or greenlet of its own): the explorer "
                "cannot put that in order"
            )
        self.pending[b] = step
        if self.decide is None:  # starting: back to the main greenlet, which starts the next
            self._to_main()
        elif self._dispatch(b) == b:
            return  # chosen again: no switch
        if self.abandon:  # resumed to unwind
            self.free[b] = True
            raise Abandoned

    def misused(self, why: str) -> NoReturn:
        """Buyer code did what the scheduler cannot order: the schedule ends
        here, and the exploration stops with ``why``."""
        if self.error is None:
            self.error = Misused(why)
        self.abandon = True
        raise Abandoned

    def say(self, text: str) -> None:
        """What the step that just ran did, in words (for the printed schedule)."""
        if self.ran and not self.ran[-1].said:
            self.ran[-1].said = text

    def finish(self, buyer: int) -> None:
        """The buyer is done: the baton goes on (its greenlet then ends
        with nothing left to do, and is let go)."""
        self.finished[buyer] = True
        self.pending[buyer] = None
        if self.decide is not None and not self.abandon:
            self._dispatch(buyer)

    def _to_main(self) -> None:
        assert self.main is not None
        self.main.switch()

    def _dispatch(self, current: int | None) -> int | None:
        """Ask who goes next and pass the baton; None: the schedule is over
        (back to the main greenlet)."""
        assert self.decide is not None
        try:
            chosen = self.decide()
        except BaseException as exc:  # the main greenlet raises it
            self.error = exc
            chosen = None
        if chosen is None:
            self.over = True
            if current is not None:
                self._to_main()
            return None
        step = self.pending[chosen]
        assert step is not None
        self.pending[chosen] = None
        self.ran.append(Executed(step))
        if chosen != current:
            runner = self.runners[chosen]
            assert runner is not None
            runner.switch()
        return chosen

    @property
    def now(self) -> float:
        """The logical clock: one millisecond per step (histories' times)."""
        return round(1.0 + len(self.ran) * 0.001, 6)

    # -- the main greenlet's side ------------------------------------------

    def start(self, runner: greenlet, buyer: int) -> None:
        """Start a buyer: it runs until it stops at its first point."""
        self.runners[buyer] = runner
        runner.switch()
        if self.pending[buyer] is None and not self.finished[buyer] and self.error is None:
            self.error = Misused(ESCAPED)

    def play(self, decide: Callable[[], int | None]) -> None:
        """Run the schedule ``decide`` makes, until it is over."""
        self.decide = decide
        self._dispatch(None)
        if not self.over and self.error is None:  # back here by a buyer's own switch
            self.error = Misused(ESCAPED)

    def enabled(self) -> list[int]:
        """The buyers that can take their next step now."""
        out = []
        for b, step in enumerate(self.pending):
            if step is None:
                continue
            if step.takes_lock and self.holders.get(step.obj or "", b) != b:
                self.blocked_since.setdefault(b, self.now)
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
            runner = self.runners[b]
            if runner is not None and not runner.dead:
                self.pending[b] = None
                runner.switch()
            self.finished[b] = True


def buyer_runner(ctl: Controller, buyer: int, body: Callable[[], None]) -> greenlet:
    """A greenlet running ``body`` (one buyer); it tells ``ctl`` when done,
    and, done, gives control back to the main greenlet."""

    def run() -> None:
        try:
            body()
        except Abandoned:
            pass
        finally:
            ctl.finish(buyer)

    return greenlet(run, parent=ctl.main)
