"""Real-time order and no undersell: the sale's linearizability, in O(n log n).

The store is a counter with one operation, "take one if any is left". A
history is linearizable when its operations can be put in one order,
consistent with real time (if A completed before B was invoked, A comes
first), in which every ``ok`` sees the count equal to its seat and takes
one, every ``fail: sold out`` sees zero, other fails have no effect, each
operation of unknown outcome takes one or has no effect, and the count ends
at ``remaining``.

The count only goes down, one at a time, so the tickets taken are the seats
``initial … remaining+1``, in that order. Given distinct seats in that range
and conservation (checked in tickets.check.verdict), the history is linearizable
exactly when:

1. seats go down over real time: no sale completed before a sale with a
   higher seat was invoked (that one read a stale count);
2. every seat no sale confirmed can go to an operation of unknown outcome
   invoked before the earliest completion of any sale of a lower seat (and
   of any "sold out"): a matching, greedy on sorted times because the
   deadlines are nested;
3. no "sold out" completed before a sale was invoked, and none at all when
   tickets remain at the end.

(An unknown operation may take effect at any time after its invoke, so it
constrains nothing after it.) Two orders are never forced by anything else:
orders of the interval kind admit a linear extension with these chains
exactly when no single pair contradicts them. The tests hold this module
against a brute-force search over every order.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import NamedTuple

from .operations import INF, OK, PENDING, SOLD_OUT, UNKNOWN, Operations


class Finding(NamedTuple):
    """A check's outcome: passed, and what it found in words."""

    passed: bool
    detail: str


class _Gaps(NamedTuple):
    """Seats ``low..high`` that no sale confirmed; each must go to an unknown
    operation invoked by ``deadline`` (when ``who`` completed, -1: none)."""

    high: int
    low: int
    deadline: float
    who: int


def sorted_sales(ops: Operations) -> list[int]:
    """The sales of a seat as ``seat * size + number``, highest seat first
    (one int each: a sort without a key, and no more memory than the list);
    a sale of a ticket id is none of them."""
    size, seats, kinds, ids = ops.size, ops.seats, ops.kinds, ops.tickets
    if ids:
        packed = [seats[i] * size + i for i in range(size) if kinds[i] == OK and i not in ids]
    else:
        packed = [seats[i] * size + i for i in range(size) if kinds[i] == OK]
    packed.sort(reverse=True)
    return packed


class OrderChecks:
    """Checks 1-3 above over one sale's operations."""

    def __init__(self, ops: Operations, packed: list[int], remaining: int | None) -> None:
        self.ops = ops
        self.packed = packed
        self.remaining = remaining
        kinds, completed = ops.kinds, ops.completed
        self.sold_out = -1  #: the "sold out" that completed first
        earliest = INF
        self.unknown_times: list[float] = []
        for i in range(ops.size):
            kind = kinds[i]
            if kind == SOLD_OUT and completed[i] < earliest:
                earliest, self.sold_out = completed[i], i
            elif kind == PENDING or kind == UNKNOWN:
                self.unknown_times.append(ops.invoked[i])
        self.unknown_times.sort()
        self.sold_out_at = earliest

    def ms(self, t: float) -> str:
        return f"{(t - self.ops.t_run) * 1000:.1f} ms"

    def sale(self, i: int) -> str:
        return f"{self.ops.label(i)} got seat {self.ops.seats[i]}"

    # -- 1. seats go down over real time --------------------------------

    def stale_reads(self) -> tuple[int, str]:
        """How many sales completed before a higher seat's sale was invoked; the first, in words."""
        ops, size = self.ops, self.ops.size
        invoked, completed = ops.invoked, ops.completed
        best_t, best = -INF, -1  # the latest invoke among strictly higher seats
        seat_t, seat_best, current = -INF, -1, None
        count, example = 0, ""
        for p in self.packed:
            seat, i = divmod(p, size)
            if seat != current:
                if seat_t > best_t:
                    best_t, best = seat_t, seat_best
                current, seat_t = seat, -INF
            if completed[i] < best_t:
                count += 1
                if not example:
                    gap = (invoked[best] - completed[i]) * 1000
                    example = (
                        f"{self.sale(best)}, invoked {gap:.1f} ms after {self.sale(i)} "
                        "completed: a stale read"
                    )
            if invoked[i] > seat_t:
                seat_t, seat_best = invoked[i], i
        return count, example

    # -- 2. unconfirmed seats go to unknown operations in time ----------

    def gaps(self, initial: int, remaining: int) -> list[_Gaps]:
        """The unconfirmed seats, highest first (so their deadlines rise)."""
        ops, size = self.ops, self.ops.size
        completed = ops.completed
        runs: list[_Gaps] = []
        below, deadline, who = remaining, INF, -1
        for p in reversed(self.packed):
            seat, i = divmod(p, size)
            if seat > below + 1:
                runs.append(_Gaps(seat - 1, below + 1, deadline, who))
            below = seat
            if completed[i] < deadline:
                deadline, who = completed[i], i
        if initial > below:
            runs.append(_Gaps(initial, below + 1, deadline, who))
        runs.reverse()
        return runs

    def unmatched(self, runs: list[_Gaps], with_sold_out: bool) -> str:
        """The first unconfirmed seat no unknown operation can account for, in words ('': none)."""
        times, k = self.unknown_times, 0
        for run in runs:
            deadline, by_sold_out = run.deadline, False
            if with_sold_out and self.sold_out_at < deadline:
                deadline, by_sold_out = self.sold_out_at, True
            last = k + run.high - run.low
            if times[last] > deadline:
                j = bisect_right(times, deadline)
                seat = run.high - (j - k)
                noun = self.ops.noun
                if by_sold_out:
                    return (
                        f"seat {seat} went to no {noun} that could have taken it before "
                        f"{self.ops.label(self.sold_out)} was told sold out at "
                        f"{self.ms(deadline)}: only {j} {noun}(s) of unknown outcome were "
                        "invoked by then"
                    )
                return (
                    f"seat {seat} went to no {noun} that could have taken it: "
                    f"{self.sale(run.who)} by {self.ms(deadline)}, and only {j} {noun}(s) of "
                    "unknown outcome were invoked by then: a lost ticket"
                )
            k = last + 1
        return ""

    # -- 3. no "sold out" while tickets remained ---------------------------

    def undersold(self) -> tuple[int, str]:
        """Sales invoked after the first "sold out" completed; the first, in words."""
        if self.sold_out < 0:
            return 0, ""
        ops, size = self.ops, self.ops.size
        late = [
            i
            for _, i in (divmod(p, size) for p in self.packed)
            if ops.invoked[i] > self.sold_out_at
        ]
        if not late:
            return 0, ""
        first = min(late, key=lambda i: ops.invoked[i])
        return len(late), (
            f"{ops.label(self.sold_out)} was told sold out at {self.ms(self.sold_out_at)}; "
            f"{ops.label(first)} bought seat {ops.seats[first]} after that "
            f"(invoked at {self.ms(ops.invoked[first])})"
        )


def order_checks(
    ops: Operations, packed: list[int], initial: int, remaining: int | None, seats_fit: bool
) -> tuple[Finding, Finding]:
    """``real-time order`` and ``no undersell``. ``seats_fit``: the seats are
    distinct, within ``remaining+1 … initial``, and the unconfirmed ones no
    more than the unknown operations (else the matching is moot: other
    checks fail)."""
    checks = OrderChecks(ops, packed, remaining)
    stale, stale_example = checks.stale_reads()
    lost = late_lost = ""
    if remaining is not None and seats_fit:
        runs = checks.gaps(initial, remaining)
        lost = checks.unmatched(runs, with_sold_out=False)
        late_lost = "" if lost else checks.unmatched(runs, with_sold_out=True)
    problems = []
    if stale:
        problems.append(
            f"{stale} sale(s) took a higher seat than one completed before "
            f"they began; e.g. {stale_example}"
        )
    if lost:
        problems.append(lost)
    if problems:
        real_time = Finding(False, "; ".join(problems))
    else:
        detail = f"the {len(packed)} sale(s) took their seats in an order consistent with time"
        if remaining is None:
            detail += " (unconfirmed seats not checked: the final stock is unknown)"
        real_time = Finding(True, detail)
    return real_time, _undersell(checks, late_lost)


def stale_order(ops: Operations, packed: list[int]) -> Finding:
    """``real-time order`` of the seats sold beside ticket ids: seats still
    go down over real time (the ids took theirs unseen, so no seat is
    owed to an unknown operation)."""
    stale, example = OrderChecks(ops, packed, None).stale_reads()
    if stale:
        return Finding(
            False,
            f"{stale} sale(s) took a higher seat than one completed before "
            f"they began; e.g. {example}",
        )
    return Finding(
        True,
        f"the {len(packed)} seat(s) sold beside the ticket ids were taken in "
        "an order consistent with time",
    )


def _undersell(checks: OrderChecks, late_lost: str) -> Finding:
    late, example = checks.undersold()
    return _undersell_finding(checks, late, example, late_lost)


def _undersell_finding(checks: OrderChecks, late: int, example: str, late_lost: str) -> Finding:
    ops, remaining = checks.ops, checks.remaining
    told = ops.count(SOLD_OUT)
    problems = []
    if told and remaining is not None and remaining > 0:
        problems.append(
            f"{ops.label(checks.sold_out)} was told sold out at {checks.ms(checks.sold_out_at)} "
            f"while tickets remained: the sale ended with {remaining} left"
            + (f" ({told} told sold out in all)" if told > 1 else "")
        )
    if late:
        problems.append(f"{late} sale(s) after a sold out; e.g. {example}")
    if late_lost:
        problems.append(late_lost)
    if problems:
        return Finding(False, "; ".join(problems))
    if not told:
        return Finding(True, "no one was told sold out")
    if remaining is None:
        detail = f"{told} told sold out, none before a sale (the final stock is unknown)"
        return Finding(True, detail)
    return Finding(True, f"{told} told sold out, each after the last ticket went")


def undersell_of_ids(ops: Operations, initial: int | None, remaining: int | None) -> Finding:
    """``no undersell`` for a sale whose tickets are ids. Every ticket taken
    was taken before the first "sold out" completed (the count only goes
    down): so no sale was invoked after it, none was told sold out while
    tickets remained at the end, and the tickets no sale confirmed went to
    operations of unknown outcome invoked before it. With distinct ids and
    conservation, that is linearizability of the sale without seats."""
    checks = OrderChecks(ops, [], remaining)
    kinds, invoked = ops.kinds, ops.invoked
    late = [i for i in range(ops.size) if kinds[i] == OK and invoked[i] > checks.sold_out_at]
    example = ""
    if late:
        first = min(late, key=lambda i: invoked[i])
        example = (
            f"{ops.label(checks.sold_out)} was told sold out at {checks.ms(checks.sold_out_at)}; "
            f"{ops.label(first)} bought a ticket after that "
            f"(invoked at {checks.ms(invoked[first])})"
        )
    lost = ""
    if checks.sold_out >= 0 and initial is not None and remaining is not None:
        unconfirmed = initial - remaining - ops.count(OK)
        in_time = bisect_right(checks.unknown_times, checks.sold_out_at)
        if unconfirmed > in_time:
            lost = (
                f"{unconfirmed} ticket(s) went to no confirmed sale, but only {in_time} "
                f"{ops.noun}(s) of unknown outcome were invoked before "
                f"{ops.label(checks.sold_out)} was told sold out at "
                f"{checks.ms(checks.sold_out_at)}: a lost ticket"
            )
    return _undersell_finding(checks, len(late), example, lost)
