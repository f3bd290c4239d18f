"""One row per operation, as the parent saw it, the live counters a view
shows, and the result a run closes with (with the figures a mode adds to
it: a queue's producers and clerks, a big sale's workers)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from ..check.verdict import Report
from .config import SaleConfig

if TYPE_CHECKING:
    from ..check.events import ChaosReport, Completion, OperationEvent


@dataclass
class OperationRow:
    """One operation (a buyer, or an order in the queue mode) as the parent saw it."""

    #: the buyer's number, or the order's
    number: int
    pid: int | None = None
    result: str = "pending"  # ok | fail | info | pending
    #: the seat sold (the count taken), or a command buyer's ticket id
    seat: int | str | None = None
    reason: str | None = None
    seen: int | None = None
    t_start: float | None = None
    t_search: float | None = None
    t_locked: float | None = None
    t_end: float | None = None
    producer: int | None = None
    clerk: int | None = None
    #: an optimistic transaction's retries (Redis WATCH)
    retries: int | None = None

    @property
    def lock_wait(self) -> float | None:
        if self.t_locked is None or self.t_search is None:
            return None
        return self.t_locked - self.t_search

    @property
    def total(self) -> float | None:
        if self.t_end is None or self.t_start is None:
            return None
        return self.t_end - self.t_start

    def update(self, ev: OperationEvent) -> None:
        self.pid = ev.get("pid", self.pid)
        for key in ("t_start", "t_search", "t_locked", "seen", "producer", "clerk", "retries"):
            if key in ev:
                setattr(self, key, ev[key])
        if ev["type"] != "invoke":
            self.result = ev["type"]
            self.seat = ev.get("seat", ev.get("ticket")) if ev["type"] == "ok" else None
            self.reason = ev.get("reason")
            self.t_end = ev["t"]


@dataclass
class Progress:
    """What a live view shows while a run goes on."""

    total: int
    #: what is counted: "buyer", or "order" in the queue mode
    noun: str = "buyer"
    done: int = 0
    sold: int = 0
    double_sold: int = 0
    #: queue mode: orders waiting in the queue, orders submitted so far
    queue_depth: int | None = None
    submitted: int = 0
    #: the stock at the start, if it was read
    stock: int | None = None


#: The first buyers of each outcome a big sale keeps a row for.
SAMPLE = 10
#: At most this many more: every unknown outcome and every seat sold twice.
WORTH_A_LOOK = 1_000
#: Distinct outcomes (a kind and its reason) counted apart; the rest as one.
MAX_OUTCOMES = 50


class RowsKept:
    """Which operations a sale keeps a row for, and how many ended each way.

    A sale of up to ROWS_KEPT buyers keeps every row; a bigger one keeps the
    parent's memory flat in its buyers: the first SAMPLE of each outcome,
    and up to WORTH_A_LOOK unknown outcomes and seats sold twice (the
    history has every buyer). ``outcomes`` counts them all, by outcome.
    """

    def __init__(self, every: bool) -> None:
        self.every = every
        #: "ok", "fail: sold out", "info: no outcome reported (...)" -> buyers
        self.outcomes: dict[str, int] = {}
        self.worth = 0

    def count(self, kind: str, reason: str | None, n: int = 1) -> int:
        """Count ``n`` outcomes of one kind and reason; how many so far."""
        key = kind if kind == "ok" else f"{kind}: {reason}"
        if key not in self.outcomes and len(self.outcomes) >= MAX_OUTCOMES:
            key = f"{kind}: (other reasons)"
        seen = self.outcomes[key] = self.outcomes.get(key, 0) + n
        return seen

    def keep(self, ev: Completion, twice: bool) -> bool:
        """Count an outcome; keep its row?"""
        kind = ev["type"]
        seen = self.count(kind, ev.get("reason"))
        if self.every or seen <= SAMPLE:
            return True
        if (kind == "info" or twice) and self.worth < WORTH_A_LOOK:
            self.worth += 1
            return True
        return False


class WorkerStats(TypedDict):
    """One worker's share of a big sale and how it ended (the --json ``per_worker``)."""

    worker: int
    pid: int | None
    buyers: int
    sold: int
    no_ticket: int
    unknown: int
    #: how it exited, in words; None: not reaped
    exit: str | None


class ProducerStats(TypedDict):
    """One producer of a queue run: its orders."""

    producer: int
    pid: int | None
    submitted: int
    accepted: int
    rejected: int


class ClerkStats(TypedDict):
    """One clerk of a queue run: what it took and sold, and how it exited."""

    clerk: int
    pid: int | None
    taken: int
    sold: int
    busy_s: float
    exit: str


class QueueFigures(TypedDict):
    """A queue run's figures, as its --json document adds them."""

    producers: list[ProducerStats]
    clerks: list[ClerkStats]
    submitted: int
    accepted: int
    rejected: int
    left_in_queue: int
    shutdown: str
    batch: int


@dataclass(frozen=True)
class QueueStats:
    """Per producer and per clerk figures, and the order accounting (see
    tickets.engine.queue)."""

    producers: list[ProducerStats]
    clerks: list[ClerkStats]
    submitted: int
    accepted: int
    rejected: int
    left_in_queue: int
    shutdown: str
    batch: int

    def as_dict(self) -> QueueFigures:
        return {
            "producers": list(self.producers),
            "clerks": list(self.clerks),
            "submitted": self.submitted,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "left_in_queue": self.left_in_queue,
            "shutdown": self.shutdown,
            "batch": self.batch,
        }


@dataclass
class RunResult:
    config: SaleConfig
    run_id: str
    #: None: kept by no one (--history none)
    history: Path | None
    initial: int | None
    remaining: int | None
    rows: list[OperationRow]
    report: Report
    duration_s: float
    t0: float
    aborted: str | None = None
    store_error: str | None = None
    #: why the run could not test the sale, though nothing was found wrong
    #: with it (exit 3): the buyer code wrote into the tool's event pipe, ...
    run_error: str | None = None
    #: what the run noticed on the way (a clerk that died, ...)
    notes: tuple[str, ...] = ()
    #: queue mode: per producer and per clerk figures (see tickets.engine.queue)
    queue: QueueStats | None = None
    #: chaos runs: what was done to the run's processes
    chaos: ChaosReport | None = None
    #: what the run did to the stock first: "as it was: N", "created with N",
    #: "restocked N → M"
    stock: str = ""
    #: ``rows`` holds every operation (False: a big sale's, only those worth a look)
    every_row: bool = True
    #: how many operations ended each way: "ok", "fail: sold out", ...
    outcomes: dict[str, int] | None = None
    #: buyers on workers: each worker's pid, share and outcomes (see tickets.engine.buy)
    workers: list[WorkerStats] | None = None

    def queue_stats(self) -> QueueStats:
        """A queue run's figures (every queue run has them)."""
        if self.queue is None:
            raise ValueError(f"a {self.config.mode} run has no queue figures")
        return self.queue

    @property
    def purchases_per_s(self) -> float:
        return self.report.sold / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def passed(self) -> bool:
        return self.report.passed and self.aborted is None and self.run_error is None

    @property
    def broken(self) -> str | None:
        """The run error that decides the verdict (exit 3), if one does: a
        check that fails on what was recorded outweighs it, but not "no
        errors" failing on the very errors that stopped the run."""
        real = [c for c in self.report.failures() if c.name != "no errors"]
        return None if real else self.run_error
