"""The checks every sale is judged by, from its operations.

Pure functions: a final store alone cannot show an oversell (two concurrent
runs can oversell by thousands and still end at ``count == 0``); the history
of every confirmed sale can. Together the checks say whether the history is
linearizable for the store's one operation (see tickets.check.linearizability),
each naming what it found: well-formed, sold <= initial, no seat sold twice
(and every seat within the tickets taken), conservation, real-time order,
no undersell, the store valid after the run, and no errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TypedDict

from ..constants import MAX_COUNT
from ..errors import UsageProblem
from .contention import Contention, contention_of, uncontended_because
from .history import History
from .linearizability import order_checks, sorted_sales, stale_order, undersell_of_ids
from .operations import ABSENT, NO_EFFECT, OK, PENDING, SOLD_OUT, UNKNOWN, Operations

#: What a check that could not run says it is (``passed`` None).
NOT_RUN = "not run"
#: Why the stock checks could not run, when nothing read the stock.
NO_STOCK = "no stock reading: give --stock-cmd CMD (or --db, the store the command sells from)"


class CheckDoc(TypedDict):
    """A check as ``--json`` documents list it."""

    name: str
    passed: bool | None
    detail: str


@dataclass(frozen=True)
class Check:
    name: str
    #: None: the check could not run (the detail says why)
    passed: bool | None
    detail: str

    def as_dict(self) -> CheckDoc:
        return {"name": self.name, "passed": self.passed, "detail": self.detail}


@dataclass(frozen=True)
class Report:
    #: None: nothing read the stock (a command buyer's sale without --stock-cmd)
    initial: int | None
    remaining: int | None
    sold: int
    failed: int
    unknown: int
    #: seat (an int), or ticket id (a command buyer's, a str) -> the buyers
    #: (``"run:buyer"`` keys, or buyer numbers for one run) that got it
    double_sold: dict[int | str, list[str]] = field(default_factory=dict)
    checks: tuple[Check, ...] = ()
    #: why the run was cut short (its end line's ``aborted``: the watchdog,
    #: a signal, an error), or None
    aborted: str | None = None
    #: why the sale tested nothing, or None: no stock, or no operation
    #: completed an attempt against the store (each was busy, refused,
    #: unknown or never began); such a sale is never PASSED
    idle: str | None = None
    #: operations turned away (busy past --lock-timeout, refused and
    #: rolled back), those of them that waited out a lock or the store
    #: held, and the first of those, in words
    refused: int = 0
    held: int = 0
    first_held: str | None = None
    #: what the run said kept it from testing the sale (its end line's
    #: ``run_error``: the buyer code wrote into the event pipe, a full disk)
    run_error: str | None = None
    #: how much the sale contended (see tickets.check.contention)
    contention: Contention = Contention(0, 0, 0)
    #: transactions its buyers ran again (Redis WATCH, PostgreSQL --retries)
    retries: int = 0

    @property
    def uncontended(self) -> str | None:
        """Why a sale that completed attempts tested nothing: no two of
        its operations raced while tickets were left."""
        if self.idle is not None:
            return None
        return uncontended_because(self.contention, self.initial)

    @property
    def untested(self) -> str | None:
        """Why the sale proves nothing though no check may fail, if it does
        not: the run was aborted, could not test it, or it tested nothing
        (no stock, nobody took part, nothing raced)."""
        if self.aborted is not None:
            return f"the run was aborted ({self.aborted})"
        if self.run_error is not None:
            return f"the run could not test the sale: {self.run_error}"
        return self.idle or self.uncontended

    @property
    def oversold(self) -> int:
        """Confirmed sales the store did not account for (never negative)."""
        if self.initial is None:
            return self.extra_sales
        if self.remaining is not None:
            return max(0, self.sold - (self.initial - self.remaining))
        return max(max(0, self.sold - self.initial), self.extra_sales)

    @property
    def extra_sales(self) -> int:
        return sum(len(buyers) - 1 for buyers in self.double_sold.values())

    @property
    def passed(self) -> bool:
        """Every check passed, the stock was known and the run was not cut
        short: a sale whose stock nobody read, or one stopped midway (the
        buyers it never let run tested nothing), is not proven, however its
        checks came out."""
        return (
            self.initial is not None
            and self.untested is None
            and all(c.passed is not False for c in self.checks)
        )

    @property
    def unproven(self) -> bool:
        """No check failed, but those that need the stock could not run, the
        run was aborted, or the sale tested nothing (see ``idle``)."""
        return (self.initial is None or self.untested is not None) and all(
            c.passed is not False for c in self.checks
        )

    @property
    def double_sold_seats(self) -> list[int | str]:
        return sorted(self.double_sold, reverse=True)

    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.passed is False]

    def not_run(self) -> list[Check]:
        return [c for c in self.checks if c.passed is None]


def evaluate(
    ops: Operations,
    initial: int | None,
    remaining: int | None,
    *,
    store_problem: str | None = None,
    unfinished: str | None = None,
    aborted: str | None = None,
    run_error: str | None = None,
    spans: Operations | None = None,
) -> Report:
    """Check one sale's operations against the model (see tickets.check.linearizability);
    ``unfinished``: why the history has no end, if it has none; ``initial``
    None: nothing read the stock, and the checks that need it do not run;
    ``aborted``: why the run was stopped, if it was (it cannot pass);
    ``spans``: the operations whose overlaps are certain, where they are not
    ``ops`` (a named sale's, narrowed by its hosts' clocks)."""
    report = (_evaluate_ids if ops.tickets else _evaluate_seats)(
        ops, initial, remaining, store_problem, unfinished
    )
    return replace(
        report,
        aborted=aborted,
        idle=idle_because(ops, initial),
        refused=ops.refused,
        retries=ops.retries,
        held=ops.held,
        first_held=ops.first_held,
        run_error=run_error,
        contention=contention_of(ops if spans is None else spans, initial),
    )


def idle_because(ops: Operations, initial: int | None) -> str | None:
    """Why the sale tested nothing, if it did: a green must be earned."""
    if initial == 0:
        return (
            "the store had no tickets: nobody could buy, nothing was tested "
            "(restock with --tickets N, or tickets init; a stock --stock-cmd reads, yourself)"
        )
    if ops.count(OK) or ops.count(SOLD_OUT):
        return None
    noun = ops.noun
    parts = []
    if ops.held:
        parts.append(f"{ops.held} busy (a lock or the store held past --lock-timeout)")
    if ops.refused > ops.held:
        parts.append(f"{ops.refused - ops.held} refused by the store")
    if unknown := ops.count(PENDING) + ops.count(UNKNOWN):
        parts.append(f"{unknown} of unknown outcome")
    if other := ops.count(NO_EFFECT) - ops.refused:
        parts.append(f"{other} stopped before the store")
    said = f": {', '.join(parts)}" if parts else ""
    return f"no {noun} completed an attempt against the store{said}"


def _evaluate_seats(
    ops: Operations,
    initial: int | None,
    remaining: int | None,
    store_problem: str | None,
    unfinished: str | None,
) -> Report:
    finished = unfinished is None
    packed = sorted_sales(ops)
    sold = len(packed)
    failed = ops.count(SOLD_OUT) + ops.count(NO_EFFECT)
    unknown = ops.count(PENDING) + ops.count(UNKNOWN)
    double, out_of_range = _seats(ops, packed, initial, remaining)
    fits = not double and not out_of_range and remaining is not None and initial is not None
    fits = fits and (initial or 0) - (remaining or 0) - sold <= unknown
    real_time, undersell = order_checks(ops, packed, initial or 0, remaining, fits)
    conservation, store_valid = _stock_checks(
        initial, remaining, sold, unknown, store_problem, finished
    )
    checks = (
        _well_formed(ops, unfinished),
        _sold_check(sold, initial),
        _seats_check(initial, remaining, double, out_of_range),
        conservation,
        Check("real-time order", *real_time),
        Check("no undersell", *undersell),
        store_valid,
        _errors_check(ops),
    )
    return Report(initial, remaining, sold, failed, unknown, double, checks)


def _evaluate_ids(
    ops: Operations,
    initial: int | None,
    remaining: int | None,
    store_problem: str | None,
    unfinished: str | None,
) -> Report:
    """A sale whose tickets are ids, not seats (a command buyer's): the
    uniqueness and count checks; the order of ids cannot be checked, but
    that of the seats beside them (a run that said --ticket-ids) can."""
    sold = ops.count(OK)
    failed = ops.count(SOLD_OUT) + ops.count(NO_EFFECT)
    unknown = ops.count(PENDING) + ops.count(UNKNOWN)
    double = _double_tickets(ops)
    conservation, store_valid = _stock_checks(
        initial, remaining, sold, unknown, store_problem, unfinished is None
    )
    unique = (
        f"{len(double)} ticket(s) sold more than once: "
        + ", ".join(repr(t) for t in sorted(double)[:10])
        if double
        else f"each of the {sold} ticket(s) sold once"
    )
    packed = sorted_sales(ops)  # the seats among the ids
    if packed:
        _, out_of_range = _seats(ops, packed, initial, remaining)
        if out_of_range:
            unique += "; " + _seats_check(initial, remaining, {}, out_of_range).detail
        order = Check("real-time order", *stale_order(ops, packed))
    else:
        why = "the tickets are ids, not seats (counts): their order cannot be checked"
        order, out_of_range = Check("real-time order", None, f"{NOT_RUN}: {why}"), []
    checks = (
        _well_formed(ops, unfinished),
        _sold_check(sold, initial),
        Check("no ticket sold twice", not double and not out_of_range, unique),
        conservation,
        order,
        Check("no undersell", *undersell_of_ids(ops, initial, remaining)),
        store_valid,
        _errors_check(ops),
    )
    return Report(initial, remaining, sold, failed, unknown, double, checks)


def _double_tickets(ops: Operations) -> dict[int | str, list[str]]:
    """Tickets (ids, and seats taken as text) that went to more than one sale."""
    holders: dict[str, list[int]] = {}
    tickets, seats, kinds = ops.tickets, ops.seats, ops.kinds
    for i in range(ops.size):
        if kinds[i] == OK:
            holders.setdefault(tickets.get(i, str(seats[i])), []).append(i)
    return {t: [ops.key(i) for i in who] for t, who in holders.items() if len(who) > 1}


def _sold_check(sold: int, initial: int | None) -> Check:
    if initial is None:
        return Check("sold <= initial", None, f"{NOT_RUN}: {sold} sold; {NO_STOCK}")
    return Check("sold <= initial", sold <= initial, f"{sold} sold from a stock of {initial}")


def _well_formed(ops: Operations, unfinished: str | None) -> Check:
    total = ops.size - ops.count(ABSENT)
    if unfinished is not None:
        return Check("well-formed", False, f"unfinished: {unfinished}")
    detail = f"{total} operation(s), each invoked once and completed at most once"
    return Check("well-formed", True, detail)


def _seats(
    ops: Operations, packed: list[int], initial: int | None, remaining: int | None
) -> tuple[dict[int | str, list[str]], list[int]]:
    """Seats sold more than once (seat -> keys), and seats outside the stock taken."""
    double: dict[int | str, list[str]] = {}
    out_of_range: set[int] = set()
    low = 1 if remaining is None else remaining + 1
    high = MAX_COUNT if initial is None else initial
    size = ops.size
    group: list[int] = []
    for n, p in enumerate(packed):
        seat, i = divmod(p, size)
        group.append(i)
        if n + 1 < len(packed) and packed[n + 1] // size == seat:
            continue  # the next one got the same seat
        if len(group) > 1:
            double[seat] = [ops.key(j) for j in sorted(group)]
        if not low <= seat <= high:
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
    initial: int | None,
    remaining: int | None,
    double: dict[int | str, list[str]],
    out_of_range: list[int],
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
        high = "" if initial is None else initial
        if initial is not None and low > initial:
            detail += f"; seat(s) sold though the store never went down: {shown}{more}"
        else:
            detail += f"; seat(s) outside {low}..{high} (the tickets taken): {shown}{more}"
    return Check("no seat sold twice", not double and not out_of_range, detail)


def _stock_checks(
    initial: int | None,
    remaining: int | None,
    sold: int,
    unknown: int,
    store_problem: str | None,
    finished: bool,
) -> tuple[Check, Check]:
    """Conservation, and whether the store could be read after the run."""
    if initial is None:
        return (
            Check("conservation", None, f"{NOT_RUN}: {NO_STOCK}"),
            Check("store valid after the run", None, f"{NOT_RUN}: {NO_STOCK}"),
        )
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
    """The verdict of one history (as ``tickets check`` gives it)."""
    if not isinstance(history, History):
        raise UsageProblem(f"check a History (read_history(path) reads one), not {history!r}")
    return evaluate(
        history.ops,
        history.initial,
        history.remaining,
        store_problem=None if history.end is None else history.end.get("store_error"),
        unfinished=history.unfinished,
        aborted=aborted_of(history),
        run_error=run_error_of(history),
    )


def aborted_of(history: History) -> str | None:
    """Why the run was stopped, from its end line: any text there, even
    none, says it was (the tool writes null for a run that was not)."""
    why = None if history.end is None else history.end.get("aborted")
    return None if why is None else (why[:300] or "no reason given")


def run_error_of(history: History) -> str | None:
    """What kept the run from testing the sale, from its end line."""
    why = None if history.end is None else history.end.get("run_error")
    return None if why is None else (why[:300] or "no reason given")
