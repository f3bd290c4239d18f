"""Results -> the plain dicts that ``--json`` prints (schema in the README;
each document's ``TypedDict`` below says it to mypy).

Kept apart from :mod:`tickets.render.tables` so that ``--json`` never
imports rich: a CI job pays only for what it prints.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import NotRequired, TypedDict

    from ..check.events import ChaosReport
    from ..check.verdict import CheckDoc, Report
    from ..engine.ledger import OperationRow, RunResult
    from ..engine.race import RaceResult, SideDoc
    from ..engine.rows import QueueFigures, WorkerStats

    class RowDoc(TypedDict):
        """One buyer (or order) of a document's ``buyers``."""

        buyer: int
        pid: int | None
        result: str
        #: the seat, or a command buyer's ticket id
        seat: int | str | None
        reason: str | None
        seen: int | None
        lock_wait_s: float | None
        total_s: float | None
        #: an order's (the queue mode)
        producer: NotRequired[int | None]
        clerk: NotRequired[int | None]
        retries: NotRequired[int]

    class ReportDoc(TypedDict):
        """The verdict's fields, in every document that judges a sale."""

        initial: int | None
        sold: int
        remaining: int | None
        oversold: int
        unknown: int
        no_ticket: int
        double_sold_seats: list[int | str]
        passed: bool
        unproven: bool
        nothing_tested: str | None
        turned_away: int
        retries: int
        contention: dict[str, int]
        uncontended: str | None
        aborted: str | None
        run_error: str | None
        not_run: list[str]
        checks: list[CheckDoc]

    class RunDoc(ReportDoc):
        """``buy --json``: one run, and its verdict."""

        mode: str
        strategy: str
        store: str
        store_kind: str
        seed: int
        stock: str
        stock_source: str
        buy: str | None
        exec: str | None
        history: str | None
        chaos: ChaosReport | None
        notes: list[str]
        duration_s: float
        purchases_per_s: float
        workers: int
        concurrency: int | None
        per_worker: list[WorkerStats] | None
        outcomes: dict[str, int] | None
        all_buyers: bool
        buyers: list[RowDoc]

    class RaceRunDoc(RunDoc):
        """A run of a race: its trial too."""

        trial: int

    class RaceDoc(TypedDict):
        """``race --json``."""

        passed: bool
        reasons: list[str]
        strategies: list[SideDoc]
        runs: list[RaceRunDoc]

    class QueueDoc(RunDoc, QueueFigures):
        """``queue --json``: a run's fields and the queue's figures."""


def _rounded(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


def row_dict(row: OperationRow) -> RowDoc:
    """One buyer (or order) of the ``buyers`` list."""
    doc: RowDoc = {
        "buyer": row.number,
        "pid": row.pid,
        "result": row.result,
        "seat": row.seat,
        "reason": row.reason,
        "seen": row.seen,
        "lock_wait_s": _rounded(row.lock_wait),
        "total_s": _rounded(row.total),
    }
    if row.producer is not None or row.clerk is not None:
        doc["producer"], doc["clerk"] = row.producer, row.clerk
    if row.retries is not None:  # an optimistic transaction's (Redis WATCH)
        doc["retries"] = row.retries
    return doc


def report_dict(report: Report) -> ReportDoc:
    return {
        "initial": report.initial,
        "sold": report.sold,
        "remaining": report.remaining,
        "oversold": report.oversold,
        "unknown": report.unknown,
        "no_ticket": report.failed,
        "double_sold_seats": report.double_sold_seats,
        "passed": report.passed,
        "unproven": report.unproven,
        #: why the sale tested nothing (no stock, nobody took part), or null
        "nothing_tested": report.idle,
        #: operations turned away: busy past --lock-timeout, or refused by the store
        "turned_away": report.refused,
        #: transactions run again (Redis WATCH, PostgreSQL --retries), summed
        "retries": report.retries,
        #: how much the sale contended: operations counted, those that
        #: overlapped another while tickets were left, the most in flight
        "contention": report.contention.as_dict(),
        #: why no two operations raced (NOT PROVEN), or null
        "uncontended": report.uncontended,
        #: what stopped the run, and what kept it from testing the sale (a
        #: run's document says its own: see run_dict)
        "aborted": report.aborted,
        "run_error": report.run_error,
        "not_run": [c.name for c in report.not_run()],
        "checks": [c.as_dict() for c in report.checks],
    }


def run_dict(result: RunResult) -> RunDoc:
    """The ``--json`` document of one run (schema in the README)."""
    cfg = result.config
    return {
        "mode": cfg.mode,
        "strategy": cfg.strategy.name,
        "store": cfg.store.label,
        "store_kind": cfg.store.kind,
        "seed": cfg.seed,
        "stock": result.stock,
        #: where the stock was read: "store", "command" (--stock-cmd) or "none"
        "stock_source": getattr(cfg, "stock", "store"),
        "buy": getattr(cfg, "buy", None),
        "exec": getattr(cfg, "command", None),
        **report_dict(result.report),
        "passed": result.passed,
        "aborted": result.aborted,
        "run_error": result.run_error,
        "history": None if result.history is None else str(result.history),
        "chaos": result.chaos,
        "notes": list(result.notes),
        "duration_s": round(result.duration_s, 6),
        "purchases_per_s": round(result.purchases_per_s, 1),
        "workers": getattr(cfg, "workers", 0) or 0,
        "concurrency": getattr(cfg, "concurrency", None),
        "per_worker": result.workers,
        "outcomes": result.outcomes,
        "all_buyers": result.every_row,
        "buyers": [row_dict(row) for row in result.rows],
    }


def race_dict(race: RaceResult) -> RaceDoc:
    """The ``race --json`` document: every run as in ``buy --json``, plus ``trial``."""
    return {
        "passed": race.verdict.passed,
        "reasons": list(race.verdict.reasons),
        "strategies": [side.as_dict() for side in race.sides],
        "runs": [{**run_dict(r.result), "trial": r.trial} for r in race.runs],
    }


def queue_dict(result: RunResult) -> QueueDoc:
    """The ``queue --json`` document: the fields of ``buy --json`` plus the queue's."""
    return {**run_dict(result), **result.queue_stats().as_dict()}
