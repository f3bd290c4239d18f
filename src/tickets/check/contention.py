"""How much a sale contended: the evidence that a green was earned.

A pass says nothing was oversold *by the operations that raced*. If none
raced, nothing was tested. An operation's span runs from its start (a
buyer's ``t_start``, its search included; a clerk's sale from the moment
the clerk began selling it) to its completion (an ``info``'s time, for an
operation of unknown outcome; the run's end, for one still pending). Two
operations **contend** when their spans overlap at a moment when fewer
``ok``\\ s had completed than the initial stock: after the sale sold out,
nothing is left to race for. Busy, refused and unknown attempts
count: they were in flight against the store.

In the queue mode an order reaches the store only when a clerk sells it,
and a clerk sells its batch in one go: the orders of one batch share one
span and count as one sale in flight, so a queue with one clerk never
contends, whatever its batch. Orders no clerk took (a full queue, a sale
stopped first) are not counted.

In a named sale the spans are put on the server's clock and *narrowed*
by each host's clock uncertainty (see tickets.check.sale), so an overlap
is counted only where it is certain.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .events import ABSENT, OK

if TYPE_CHECKING:
    from .operations import Operations

INF = float("inf")


@dataclass(frozen=True)
class Contention:
    """``contended`` of ``operations`` overlapped another while tickets were
    left; at most ``peak`` were in flight at once (a queue: clerks' sales)."""

    operations: int
    contended: int
    peak: int
    #: "purchases" or "orders"
    noun: str = "purchases"

    def words(self) -> str:
        """``37 of 50 purchases overlapped another; peak 12 at once``."""
        return (
            f"{self.contended:,} of {self.operations:,} {self.noun} overlapped another; "
            f"peak {self.peak:,} at once"
        )

    def as_dict(self) -> dict[str, int]:
        return {"operations": self.operations, "contended": self.contended, "peak": self.peak}


def sold_out_at(ops: Operations, initial: int | None) -> float:
    """When the ``initial``-th ``ok`` completed: nothing was left to race
    for after it (infinite while tickets may have been left)."""
    if initial is None or initial <= 0:
        return INF if initial is None else -INF
    kinds, completed = ops.kinds, ops.completed
    times = [completed[i] for i in range(ops.size) if kinds[i] == OK]
    if len(times) < initial:
        return INF
    return heapq.nsmallest(initial, times)[-1]


def spans(ops: Operations, initial: int | None) -> list[tuple[float, float, int]]:
    """Every operation's span ``(start, end, weight)`` cut at the sale's
    sold-out moment; those with nothing left of it dropped (begun after
    the sale sold out; a queued order no clerk sold). A queue's
    orders of one batch (one clerk, one span) are one span of their count."""
    cut = sold_out_at(ops, initial)
    end_of_run = ops.latest
    started, completed, kinds = ops.started, ops.completed, ops.kinds
    unknown_at = ops.unknown_at
    out: dict[tuple[float, float], int] = {}
    for i in range(ops.size):
        if not kinds[i]:  # ABSENT
            continue
        start = started[i]
        end = completed[i]
        if end == INF:  # unknown: in flight until its info; pending: to the run's end
            end = unknown_at.get(i, end_of_run)
        end = min(end, cut)
        if end <= start:
            continue  # begun after the sale sold out; or a queued order no clerk sold
        out[start, end] = out.get((start, end), 0) + 1
    if ops.noun != "order":  # buyers: every operation its own span
        return [(s, e, 1) for (s, e), n in out.items() for _ in range(n)]
    return [(s, e, n) for (s, e), n in out.items()]


def contention_of(ops: Operations, initial: int | None) -> Contention:
    """How many operations overlapped another while tickets were left, and
    the most in flight at once (spans that only touch do not overlap)."""
    noun = "orders" if ops.noun == "order" else "purchases"
    total = ops.size - ops.count(ABSENT)
    ordered = sorted(spans(ops, initial))
    contended = peak = 0
    ends: list[float] = []  # of the spans in flight, a heap
    latest_end = -INF  # the furthest end of any span started before
    for n, (start, end, weight) in enumerate(ordered):
        while ends and ends[0] <= start:
            heapq.heappop(ends)
        heapq.heappush(ends, end)
        peak = max(peak, len(ends))
        if latest_end > start or (n + 1 < len(ordered) and ordered[n + 1][0] < end):
            contended += weight
        latest_end = max(latest_end, end)
    return Contention(total, contended, peak, noun)


def uncontended_because(contention: Contention, initial: int | None) -> str | None:
    """Why a sale that completed attempts still tested nothing: no two of
    its operations raced, so no lock, transaction or take was put to the
    test. What to change to make them race."""
    if contention.contended or initial == 0:
        return None
    if contention.operations == 1:
        more = "more --clerks and --orders" if contention.noun == "orders" else "more --buyers"
        return f"one {contention.noun[:-1]} cannot race: nothing was tested ({more})"
    if contention.noun == "orders":
        return (
            "no two clerks' sales overlapped while tickets were left: nothing raced (more --clerks)"
        )
    return (
        "no two purchases overlapped while tickets were left: nothing raced "
        "(more buyers at once: more --buyers, --workers or --concurrency; a --search-delay; "
        "or more --tickets)"
    )
