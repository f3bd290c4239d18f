"""One harness for every way of selling: start, collect, stop, settle, close.

Data flows one way: a frozen config -> children started behind a gate ->
each child sends events over one pipe -> the parent's ledger writes the
history and keeps one row per operation -> checks -> a RunResult. What buy
and queue do differently (which children, what their messages mean, when
the sale is over, why an operation that never answered did not) is a
:class:`SaleMode`; everything else is here, once: the file-descriptor limit,
the event pipe and the gate, chaos pauses, the stall watchdog, the
abandoned-lock check, Ctrl-C, reaping, and the outcome of every operation
left pending. Every wait has a deadline; a child that dies is noticed and
what it had in hand becomes ``info`` (outcome unknown).
"""

from __future__ import annotations

import multiprocessing
import signal
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterable
from typing import TYPE_CHECKING, Any

from ..check.events import no_outcome
from . import interrupts
from .abandoned_lock import AbandonedLockDetector
from .chaos import Pauser
from .children import Gate, raise_fd_limit
from .config import SaleConfig
from .event_pipe import EventPipe
from .ledger import Progress, RunResult, SaleLedger

if TYPE_CHECKING:
    from ..check.events import ChaosReport, Message, ModeFields, Outcome
    from .rows import QueueStats

#: How long children get to exit at the end before they are killed.
REAP_TIMEOUT = 5.0
#: How often a live view is refreshed (seconds).
PROGRESS_EVERY = 0.05
#: What :meth:`SaleMode.step` returns when the sale is over...
FINISHED = "finished"
#: ...and when something happened that resets the stall watchdog.
NEWS = "news"


class SaleMode(ABC):
    """What a way of selling adds to the harness (see tickets.engine.buy, tickets.engine.queue)."""

    #: how long the parent waits for events in one round (seconds)
    tick: float = 0.05
    #: after a small batch, how long the parent lets more events gather (seconds)
    gather: float = 0.0

    def __init__(self, config: SaleConfig) -> None:
        self.config = config

    @property
    @abstractmethod
    def total(self) -> int:
        """Operations in the sale: buyers, or orders."""

    @property
    @abstractmethod
    def processes(self) -> int:
        """Child processes the parent will hold."""

    @abstractmethod
    def run_fields(self) -> ModeFields:
        """What the history's ``run`` line says of this mode."""

    @abstractmethod
    def make_children(self, run: Harness) -> Any:
        """The children's handle (pids, exitcode, alive, signal, take_message,
        stop); nothing is started yet."""

    @abstractmethod
    def start(self, run: Harness) -> str | None:
        """Start every child behind the gate; why the run cannot go on, if it cannot."""

    @abstractmethod
    def on_event(self, run: Harness, ev: Message, now: float, live: bool) -> None:
        """Take one event off the pipe (``live``: during the sale, not after it)."""

    @abstractmethod
    def step(self, run: Harness, now: float, quiet: float, heard: bool) -> str | None:
        """After a round: FINISHED, NEWS, a reason to stop the run, or None."""

    @abstractmethod
    def stall_message(self, seconds: float) -> str: ...

    def quiet_allowed(self) -> float:
        """How long the children may go without a word by design (a buyer
        timeout): the stall watchdog waits at least this long, and a bit."""
        return 0.0

    def held_pauses(self) -> int:
        """How many children pause themselves holding the lock (chaos ``pause_length``)."""
        return 0

    def pause_keys(self) -> Iterable[Hashable]:
        """The children a chaos run may pause."""
        return ()

    def doomed(self) -> Iterable[Hashable]:
        """The children a chaos run kills."""
        return ()

    def before_progress(self, run: Harness) -> None:  # noqa: B027 - most modes show the counters
        """Update what the live view shows beyond the ledger's counters."""

    @abstractmethod
    def stop(self, run: Harness, aborted: str | None) -> Iterable[Hashable]:
        """Stop and reap every child; return those that had to be killed."""

    def after_stop(self, run: Harness) -> None:  # noqa: B027 - buyers leave nothing behind
        """Account for what the stopped children left (orders in the queue)."""

    def fate(self, run: Harness, number: int, killed: set[Hashable]) -> Outcome | None:
        """What became of a pending operation, if the mode knows: a fail it
        can vouch for, or why it has no outcome (``no_outcome``)."""
        return None

    @abstractmethod
    def last_word(self, run: Harness, number: int, killed: set[Hashable]) -> str:
        """Why a pending operation has no outcome, when nothing else explains it."""

    def close(self) -> None:  # noqa: B027 - most modes hold nothing more
        """Let go of the mode's own resources (the order queue)."""

    def stats(self, run: Harness, aborted: str | None) -> QueueStats | None:
        """The mode's own figures for the result (queue: per producer and clerk)."""
        return None


def sell(mode: SaleMode, progress: Callable[[Progress], None] | None = None) -> RunResult:
    """Run one sale the mode's way.

    Raises StoreError, HistoryError or ConfigError before anything changes
    when the run cannot start. An interrupt (KeyboardInterrupt, or
    :class:`tickets.engine.interrupts.Terminated` for SIGTERM and SIGHUP) or an
    error during the sale is raised after the run is settled and its
    history finished, with the run's result as its ``result``.
    """
    ledger = SaleLedger(mode.config, mode.total, mode.run_fields())
    harness: Harness | None = None
    try:
        harness = Harness(mode, ledger)
        return harness.run(progress)
    except BaseException as stop:
        if harness is None or not harness.started:
            # Stopped after the run line, before the sale could settle itself
            # (setting up the children): the history still gets its end line.
            what = interrupts.describe(stop) if isinstance(stop, KeyboardInterrupt) else None
            result = ledger.close_run(time.monotonic(), what or f"stopped by an error: {stop}")
            stop.result = result  # type: ignore[attr-defined]
        raise
    finally:
        ledger.close()  # also when the run fails: no history left open, no claim held


class Harness:
    """One run in progress: what the parent holds while its children sell."""

    def __init__(self, mode: SaleMode, ledger: SaleLedger) -> None:
        self.mode = mode
        self.config = mode.config
        self.ledger = ledger
        #: run() has taken over: it settles and closes the run on every path
        self.started = False
        raise_fd_limit(mode.processes)
        self.ctx = multiprocessing.get_context(self.config.start_method)
        self.events = EventPipe(self.ctx)
        self.gate = Gate(self.ctx)
        self.detector = AbandonedLockDetector()
        self.children = mode.make_children(self)
        chaos = self.config.chaos
        pauses = chaos.pauses(mode.pause_keys()) if chaos is not None else []
        self.pauser = Pauser(pauses, self.children.pids)

    def run(self, progress: Callable[[Progress], None] | None) -> RunResult:
        """Sell, then stop, settle and close the run on every path; raise what
        stopped it (an interrupt, an error) once the history is finished."""
        aborted: str | None = None
        stopped_by: BaseException | None = None
        t0 = time.monotonic()
        try:
            self.started = True
            aborted = self.mode.start(self)
            if aborted is None and self.ledger.sale is not None:
                # Every host's buyers are ready before any host lets its go.
                aborted = self.ledger.join_sale(self.mode.total)
            t0 = time.monotonic()
            if aborted is None:
                self.gate.open()
                self.pauser.start(t0)
                aborted = self.collect(progress)
        except KeyboardInterrupt as interrupt:  # Ctrl-C, SIGTERM, SIGHUP
            stopped_by, aborted = interrupt, interrupts.describe(interrupt)
        except BaseException as error:  # an error, or SystemExit: settled all the same
            stopped_by, aborted = error, f"stopped by an error: {error or type(error).__name__}"
        caught = interrupts.shielded.late_signals()  # those that came while it stopped
        with interrupts.held_back(caught):  # the history gets its end line, whatever comes
            self.pauser.resume_all()
            self.settle(aborted if stopped_by is not None else None, aborted)
            stats = self.mode.stats(self, aborted)
            result = self.ledger.close_run(
                t0, aborted, queue=stats, chaos=self.chaos_report(), junk=self.events.junk
            )
        if stopped_by is None:  # the end line could not be written, or a signal came
            stopped_by = self.ledger.writer.broken
        if stopped_by is None and caught:
            stopped_by = interrupts.interrupt_for(caught[0])
        if stopped_by is not None:
            stopped_by.result = result  # type: ignore[attr-defined]
            raise stopped_by
        return result

    def record(self, events: list[Message], now: float, live: bool = True) -> None:
        """Record a batch of events whole: a signal waits for the end of it."""
        with interrupts.shielded:
            for ev in events:
                self.mode.on_event(self, ev, now, live)

    def drain(self, final: bool = False) -> None:
        """Record every event already in the pipe (what exited children
        wrote); ``final``: every child is gone, nothing more will come."""
        self.record(self.events.drain(final), time.monotonic(), live=False)

    def collect(self, progress: Callable[[Progress], None] | None) -> str | None:
        """Read events until the mode says the sale is over or the run must stop."""
        mode, live = self.mode, self.ledger.live
        stall = max(self.config.stall_timeout, mode.quiet_allowed())
        last_event = time.monotonic()
        last_shown = 0.0
        while True:
            self.pauser.tick()
            wait = self.pauser.next_in()
            events = self.events.get(timeout=mode.tick if wait is None else min(mode.tick, wait))
            now = time.monotonic()
            if events:
                self.record(events, now)
                self.ledger.writer.flush()  # as the sale goes: a killed parent loses no batch
                last_event = now
                if mode.gather and len(events) < 64:  # let more come: fewer, bigger reads
                    time.sleep(mode.gather)
            news = mode.step(self, now, now - last_event, bool(events))
            if news == FINISHED:
                break
            if news == NEWS:
                last_event = time.monotonic()
            elif news is not None:
                return news
            elif message := self.detector.check():
                return message
            elif now - last_event > stall:
                return mode.stall_message(stall)
            if progress is not None and now - last_shown > PROGRESS_EVERY:
                mode.before_progress(self)
                progress(live)
                last_shown = now
        if progress is not None:
            progress(live)
        return None

    def settle(self, interrupted: str | None, aborted: str | None) -> None:
        """Stop every child and give every operation left pending its outcome
        (``interrupted``: what cut the sale short, a signal or an error, if
        something did)."""
        try:
            killed = set(self.mode.stop(self, aborted))
            self.drain(final=True)
            self.mode.after_stop(self)
            for number in self.ledger.pending():
                fate = self.mode.fate(self, number, killed)
                if fate is None:
                    if interrupted:
                        why = interrupted
                    elif aborted:
                        why = "stopped by the watchdog"
                    else:
                        why = self.mode.last_word(self, number, killed)
                    fate = no_outcome(why)
                self.ledger.conclude(number, fate)
        finally:
            self.mode.close()
            self.events.close()
            self.gate.close()

    def chaos_report(self) -> ChaosReport | None:
        """What a chaos run did to the run's processes."""
        chaos = self.config.chaos
        if chaos is None:
            return None
        doomed = set(self.mode.doomed())
        killed = sum(1 for key in doomed if self.children.exitcode(key) == -signal.SIGKILL)
        return {
            "kill_rate": chaos.kill_rate,
            "pause_rate": chaos.pause_rate,
            "seed": chaos.seed,
            "kills_planned": len(doomed),
            "killed": killed,
            "paused": self.pauser.paused + self.mode.held_pauses(),
            "pause_length_s": chaos.pause_length,
        }


__all__ = ["FINISHED", "NEWS", "Harness", "SaleMode", "sell"]
