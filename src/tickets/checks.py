"""The invariants every run is checked against, from its history.

Pure functions: a final store alone cannot show an oversell (two concurrent
runs can oversell by thousands and still end at ``count == 0``); the history
of every confirmed sale can.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from .history import History, HistoryError, outcomes

#: The reason of an outcome that ended on an error (see tickets.child.buyer).
ERROR_PREFIX = "error: "


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
    initial: int,
    remaining: int | None,
    outcome_events: list[tuple[str, dict[str, Any]]],
    *,
    store_problem: str | None = None,
    finished: bool = True,
) -> Report:
    """Check one sale. ``outcome_events`` pairs a buyer key with its last event."""
    sold = failed = unknown = 0
    holders: dict[int, list[str]] = defaultdict(list)
    out_of_range: list[int] = []
    errors: list[str] = []
    for key, ev in outcome_events:
        kind = ev["type"]
        reason = ev.get("reason")
        if isinstance(reason, str) and reason.startswith(ERROR_PREFIX):
            errors.append(reason)
        if kind == "ok":
            sold += 1
            holders[ev["seat"]].append(key)
            if not 1 <= ev["seat"] <= initial:
                out_of_range.append(ev["seat"])
        elif kind == "fail":
            failed += 1
        else:  # info, or an invoke never answered: the outcome is unknown
            unknown += 1
    double = {seat: keys for seat, keys in holders.items() if len(keys) > 1}

    checks = [
        Check("sold <= initial", sold <= initial, f"{sold} sold from a stock of {initial}"),
        _seats_check(initial, double, out_of_range),
        *_stock_checks(initial, remaining, sold, unknown, store_problem, finished),
        _errors_check(errors),
    ]
    return Report(initial, remaining, sold, failed, unknown, double, tuple(checks))


def _errors_check(errors: list[str]) -> Check:
    """A buyer that could not use the store (a full disk, a lock file it could
    not open) did not take part in the sale: such a run proves nothing."""
    if not errors:
        return Check("no errors", True, "no operation ended on an error")
    detail = f"{len(errors)} operation(s) ended on an error, the first: {errors[0]}"
    return Check("no errors", False, detail)


def _seats_check(initial: int, double: dict[int, list[str]], out_of_range: list[int]) -> Check:
    if double:
        seats = ", ".join(str(s) for s in sorted(double, reverse=True)[:10])
        more = f" and {len(double) - 10} more" if len(double) > 10 else ""
        detail = f"{len(double)} seat(s) sold more than once: {seats}{more}"
    else:
        detail = "every seat sold at most once"
    if out_of_range:
        detail += f"; seat(s) outside 1..{initial}: {sorted(set(out_of_range))[:10]}"
    return Check("no seat sold twice", not double and not out_of_range, detail)


def _stock_checks(
    initial: int,
    remaining: int | None,
    sold: int,
    unknown: int,
    store_problem: str | None,
    finished: bool,
) -> list[Check]:
    """Conservation, and whether the store could be read after the run."""
    if remaining is None:
        why = store_problem or ("the run did not finish" if not finished else "not recorded")
        return [
            Check("conservation", False, f"final stock unknown: {why}"),
            Check("store valid after the run", False, why),
        ]
    taken = initial - remaining
    ok = sold <= taken <= sold + unknown
    if sold > taken:
        detail = f"{sold} sold but the store went down by only {taken}: lost updates"
    elif taken > sold + unknown:
        detail = f"the store went down by {taken} but only {sold} sold (+{unknown} unknown)"
    else:
        detail = f"{sold} <= {taken} (initial - remaining) <= {sold + unknown}"
    return [
        Check("conservation", ok, detail),
        Check("store valid after the run", True, f"count is {remaining}"),
    ]


def check_history(history: History) -> Report:
    end = history.end
    last = outcomes(history.events)
    return evaluate(
        history.initial,
        history.remaining,
        [(str(b), ev) for b, ev in sorted(last.items())],
        store_problem=(end or {}).get("store_error"),
        finished=end is not None,
    )


def check_histories(histories: list[History]) -> Report:
    """One sale across several invocations on one store (``--keep-stock`` runs).

    The stock before the sale is the one the earliest run read at its start
    (before any buyer of any run); the stock after is the one the last run to
    end read once all of its buyers, and so everyone's, were done.
    """
    if len(histories) == 1:
        return check_history(histories[0])
    stores = {h.run.get("store") for h in histories}
    if len(stores) > 1:
        raise HistoryError(
            histories[0].path, "these histories are of different stores; check them one at a time"
        )
    ordered = sorted(histories, key=lambda h: float(h.run.get("t", 0.0)))
    for h in ordered[1:]:
        if h.run.get("restocked"):
            raise HistoryError(
                h.path,
                "restocked the store during the sale; one sale across runs needs --keep-stock runs",
            )
    ids = [h.run.get("run_id") for h in ordered]
    if len(set(ids)) != len(ids):
        raise HistoryError(ordered[0].path, "the same history was given twice")
    pairs: list[tuple[str, dict[str, Any]]] = []
    for i, h in enumerate(ordered):
        for buyer, ev in sorted(outcomes(h.events).items()):
            pairs.append((f"{i + 1}:{buyer}", ev))
    unfinished = [h for h in ordered if h.end is None]
    last = max(ordered, key=lambda h: float((h.end or {}).get("t", 0.0)))
    problem = next(((h.end or {}).get("store_error") for h in ordered if h.end), None)
    return evaluate(
        ordered[0].initial,
        None if unfinished else last.remaining,
        pairs,
        store_problem=problem,
        finished=not unfinished,
    )
