"""The checks every sale is judged by, from its operations.

Pure functions: a final store alone cannot show an oversell (two concurrent
runs can oversell by thousands and still end at ``count == 0``); the history
of every confirmed sale can. Together the checks say whether the history is
linearizable for the store's one operation (see tickets.linearizability),
each naming what it found: well-formed, sold <= initial, no seat sold twice
(and every seat within the tickets taken), conservation, real-time order,
no undersell, the store valid after the run, and no errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .history import History, HistoryError
from .linearizability import order_checks, sorted_sales
from .operations import ABSENT, NO_EFFECT, PENDING, SOLD_OUT, UNKNOWN, Operations


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "detail": self.detail}


@dataclass(frozen=True)
class Report:
    initial: int
    remaining: int | None
    sold: int
    failed: int
    unknown: int
    #: seat -> the buyers (``"run:buyer"`` keys, or buyer numbers for one run) that got it
    double_sold: dict[int, list[str]] = field(default_factory=dict)
    checks: tuple[Check, ...] = ()

    @property
    def oversold(self) -> int:
        """Confirmed sales the store did not account for (never negative)."""
        if self.remaining is not None:
            return max(0, self.sold - (self.initial - self.remaining))
        return max(max(0, self.sold - self.initial), self.extra_sales)

    @property
    def extra_sales(self) -> int:
        return sum(len(buyers) - 1 for buyers in self.double_sold.values())

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def double_sold_seats(self) -> list[int]:
        return sorted(self.double_sold, reverse=True)

    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]


def evaluate(
    ops: Operations,
    initial: int,
    remaining: int | None,
    *,
    store_problem: str | None = None,
    unfinished: str | None = None,
) -> Report:
    """Check one sale's operations against the model (see tickets.linearizability);
    ``unfinished``: why the history has no end, if it has none."""
    finished = unfinished is None
    packed = sorted_sales(ops)
    sold = len(packed)
    failed = ops.count(SOLD_OUT) + ops.count(NO_EFFECT)
    unknown = ops.count(PENDING) + ops.count(UNKNOWN)
    double, out_of_range = _seats(ops, packed, initial, remaining)
    fits = not double and not out_of_range and remaining is not None
    fits = fits and (initial - (remaining or 0)) - sold <= unknown
    real_time, undersell = order_checks(ops, packed, initial, remaining, fits)
    conservation, store_valid = _stock_checks(
        initial, remaining, sold, unknown, store_problem, finished
    )
    checks = (
        _well_formed(ops, unfinished),
        Check("sold <= initial", sold <= initial, f"{sold} sold from a stock of {initial}"),
        _seats_check(initial, remaining, double, out_of_range),
        conservation,
        Check("real-time order", *real_time),
        Check("no undersell", *undersell),
        store_valid,
        _errors_check(ops),
    )
    return Report(initial, remaining, sold, failed, unknown, double, checks)


def _well_formed(ops: Operations, unfinished: str | None) -> Check:
    total = ops.size - ops.count(ABSENT)
    if unfinished is not None:
        return Check("well-formed", False, f"unfinished: {unfinished}")
    detail = f"{total} operation(s), each invoked once and completed at most once"
    return Check("well-formed", True, detail)


def _seats(
    ops: Operations, packed: list[int], initial: int, remaining: int | None
) -> tuple[dict[int, list[str]], list[int]]:
    """Seats sold more than once (seat -> keys), and seats outside the stock taken."""
    double: dict[int, list[str]] = {}
    out_of_range: set[int] = set()
    low = 1 if remaining is None else remaining + 1
    size = ops.size
    group: list[int] = []
    for n, p in enumerate(packed):
        seat, i = divmod(p, size)
        group.append(i)
        if n + 1 < len(packed) and packed[n + 1] // size == seat:
            continue  # the next one got the same seat
        if len(group) > 1:
            double[seat] = [ops.key(j) for j in sorted(group)]
        if not low <= seat <= initial:
            out_of_range.add(seat)
        group = []
    return double, sorted(out_of_range)


def _errors_check(ops: Operations) -> Check:
    """A buyer that could not use the store (a full disk, a lock file it could
    not open) did not take part in the sale: such a run proves nothing."""
    if not ops.errors:
        return Check("no errors", True, "no operation ended on an error")
    detail = f"{ops.errors} operation(s) ended on an error, the first: {ops.first_error}"
    return Check("no errors", False, detail)


def _seats_check(
    initial: int, remaining: int | None, double: dict[int, list[str]], out_of_range: list[int]
) -> Check:
    if double:
        seats = ", ".join(str(s) for s in sorted(double, reverse=True)[:10])
        more = f" and {len(double) - 10} more" if len(double) > 10 else ""
        detail = f"{len(double)} seat(s) sold more than once: {seats}{more}"
    else:
        detail = "every seat sold at most once"
    if out_of_range:
        low = 1 if remaining is None else remaining + 1
        shown = ", ".join(str(s) for s in out_of_range[:10])
        more = f" and {len(out_of_range) - 10} more" if len(out_of_range) > 10 else ""
        detail += f"; seat(s) outside {low}..{initial} (the tickets taken): {shown}{more}"
    return Check("no seat sold twice", not double and not out_of_range, detail)


def _stock_checks(
    initial: int,
    remaining: int | None,
    sold: int,
    unknown: int,
    store_problem: str | None,
    finished: bool,
) -> tuple[Check, Check]:
    """Conservation, and whether the store could be read after the run."""
    if remaining is None:
        why = store_problem or ("the run did not finish" if not finished else "not recorded")
        return (
            Check("conservation", False, f"final stock unknown: {why}"),
            Check("store valid after the run", False, why),
        )
    taken = initial - remaining
    ok = sold <= taken <= sold + unknown
    if sold > taken:
        detail = f"{sold} sold but the store went down by only {taken}: lost updates"
    elif taken > sold + unknown:
        detail = f"the store went down by {taken} but only {sold} sold (+{unknown} unknown)"
    else:
        detail = f"{sold} <= {taken} (initial - remaining) <= {sold + unknown}"
    return (
        Check("conservation", ok, detail),
        Check("store valid after the run", True, f"count is {remaining}"),
    )


def check_history(history: History) -> Report:
    end = history.end or {}
    return evaluate(
        history.ops,
        history.initial,
        history.remaining,
        store_problem=end.get("store_error"),
        unfinished=history.unfinished,
    )


def check_histories(histories: list[History]) -> Report:
    """One sale across several invocations on one store (``--keep-stock`` runs).

    The stock before the sale is the one the earliest run read at its start
    (before any buyer of any run); the stock after is the one the last run to
    end read once all of its buyers, and so everyone's, were done.
    """
    if len(histories) == 1:
        return check_history(histories[0])
    stores = {h.run["store"] for h in histories}
    if len(stores) > 1:
        raise HistoryError(
            histories[0].path, "these histories are of different stores; check them one at a time"
        )
    ordered = sorted(histories, key=lambda h: float(h.run["t"]))
    ids = [h.run["run_id"] for h in ordered]
    if len(set(ids)) != len(ids):
        raise HistoryError(ordered[0].path, "the same history was given twice")
    for h in ordered[1:]:
        if h.run["restocked"]:
            raise HistoryError(
                h.path,
                "restocked the store during the sale; one sale across runs needs --keep-stock runs",
            )
    unfinished = [h for h in ordered if h.end is None]
    last = max(ordered, key=lambda h: float((h.end or {}).get("t", 0.0)))
    problem = next(((h.end or {}).get("store_error") for h in ordered if h.end), None)
    return evaluate(
        Operations.merge([h.ops for h in ordered]),
        ordered[0].initial,
        None if unfinished else last.remaining,
        store_problem=problem,
        unfinished=next((f"{h.path}: {h.unfinished}" for h in unfinished), None),
    )
