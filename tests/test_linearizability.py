"""The checker against the brute-force oracle, on thousands of small sales.

Histories come from simulated correct executions (linearizable by
construction), from lossy ones (reads and writes apart: lost updates and
stale reads), from random mutations of correct ones, and at random. On
every one, ``tickets check`` must pass exactly when the oracle finds the
history linearizable: never wrong in the passing direction, nor the other.
Times sit on a coarse grid so that ties and touching intervals are common.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from histories import T0, Op, events_of, lines_of, table, write
from oracle import linearizable
from tickets.check.history import read
from tickets.check.operations import Operations
from tickets.check.verdict import Report, check_history, evaluate

QUICK = int(os.environ.get("TICKETS_ORACLE_EXAMPLES", "600"))
#: Examples per kind under `make stress`.
MANY = 30_000
SETTINGS = settings(
    max_examples=QUICK,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
GRID = st.integers(0, 12).map(float)

Sale = tuple[int, int, list[Op]]


def verdict(initial: int, remaining: int, ops: list[Op]) -> Report:
    return evaluate(table(ops), initial, remaining)


@st.composite
def intervals(draw: st.DrawFn) -> tuple[float, float]:
    start = draw(GRID)
    return start, start + draw(st.integers(0, 5))


@st.composite
def correct_sales(draw: st.DrawFn) -> Sale:
    """A counter run for real: each operation takes effect at a point inside its interval."""
    initial = draw(st.integers(0, 5))
    fates = st.sampled_from(["sell"] * 4 + ["busy", "info", "info-none", "pending"])
    plan = []
    for i in range(draw(st.integers(1, 8))):
        start, done = draw(intervals())
        point = draw(st.floats(start, done))
        plan.append((point, i, start, done, draw(fates)))
    count, ops = initial, [Op("busy", 0.0)] * len(plan)
    for _, i, start, done, fate in sorted(plan):
        if fate == "sell":
            ops[i] = Op("ok", start, done, count) if count else Op("sold out", start, done)
            count = max(0, count - 1)
        elif fate == "busy":
            ops[i] = Op("busy", start, done)
        else:
            ops[i] = Op("pending" if fate == "pending" else "info", start)
            if fate != "info-none" and count:
                count -= 1
    return initial, count, ops


@st.composite
def lossy_sales(draw: st.DrawFn) -> Sale:
    """Unlocked: each buyer reads the count, and writes it less one later;
    some are killed before they report, having written or not."""
    initial = draw(st.integers(0, 5))
    fates = st.sampled_from(["reports"] * 4 + ["killed before writing", "killed after writing"])
    steps, fate = [], []
    for i in range(draw(st.integers(1, 7))):
        start, done = draw(intervals())
        read_at = draw(st.floats(start, done))
        steps.append((read_at, 0, i, start, done))
        steps.append((draw(st.floats(read_at, done)), 1, i, start, done))
        fate.append(draw(fates))
    count, seen, ops = initial, {}, {}
    for _, phase, i, start, done in sorted(steps):
        if phase == 0:
            seen[i] = count
        elif fate[i] != "reports":
            ops[i] = Op("info", start)
            if seen[i] and fate[i] == "killed after writing":
                count = seen[i] - 1
        elif seen[i] == 0:
            ops[i] = Op("sold out", start, done)
        else:
            count = seen[i] - 1
            ops[i] = Op("ok", start, done, seen[i])
    return initial, count, [ops[i] for i in sorted(ops)]


@st.composite
def mutated_sales(draw: st.DrawFn) -> Sale:
    initial, remaining, ops = draw(correct_sales())
    ops = list(ops)
    for _ in range(draw(st.integers(1, 2))):
        i = draw(st.integers(0, len(ops) - 1))
        op = ops[i]
        how = draw(st.sampled_from(["seat", "remaining", "swap", "shift", "kind", "kind"]))
        if how == "seat" and op.kind == "ok":
            ops[i] = op._replace(seat=(op.seat or 0) + draw(st.sampled_from([-1, 1])))
        elif how == "remaining":
            remaining = max(0, remaining + draw(st.sampled_from([-1, 1])))
        elif how == "swap":  # two sales trade seats
            j = draw(st.integers(0, len(ops) - 1))
            if op.kind == ops[j].kind == "ok":
                ops[i], ops[j] = op._replace(seat=ops[j].seat), ops[j]._replace(seat=op.seat)
        elif how == "shift":
            start, done = draw(intervals())
            ops[i] = op._replace(start=start, done=done)
        elif how == "kind":
            kind = draw(st.sampled_from(["ok", "sold out", "busy", "info", "pending"]))
            seat = draw(st.integers(1, max(1, initial))) if kind == "ok" else None
            done = op.done if op.kind not in ("info", "pending") else op.start + 1
            ops[i] = Op(kind, op.start, done, seat)
    return initial, remaining, ops


@st.composite
def random_sales(draw: st.DrawFn) -> Sale:
    initial = draw(st.integers(0, 4))
    ops = []
    for _ in range(draw(st.integers(1, 7))):
        kind = draw(st.sampled_from(["ok", "ok", "ok", "sold out", "busy", "info", "pending"]))
        start, done = draw(intervals())
        seat = draw(st.integers(0, initial + 1)) if kind == "ok" else None
        ops.append(Op(kind, start, done, seat))
    return initial, draw(st.integers(0, initial + 1)), ops


def sound(report: Report) -> bool:
    """No check failed: the history is linearizable, as the checker sees it.
    (PASSED asks more: a sale that tested nothing, no stock or nobody
    taking part, is not proven; tests/test_checks.py holds that.)"""
    return not report.failures()


def agree(sale: Sale) -> None:
    initial, remaining, ops = sale
    report = verdict(initial, remaining, ops)
    expected = linearizable(ops, initial, remaining)
    assert sound(report) == expected, (sale, [c for c in report.checks if not c.passed])


@SETTINGS
@given(correct_sales())
def test_correct_executions_pass(sale: Sale) -> None:
    initial, remaining, ops = sale
    assert linearizable(ops, initial, remaining)  # the oracle agrees with the construction
    agree(sale)


@SETTINGS
@given(lossy_sales())
def test_lossy_executions_agree_with_the_oracle(sale: Sale) -> None:
    agree(sale)


@SETTINGS
@given(mutated_sales())
def test_mutated_executions_agree_with_the_oracle(sale: Sale) -> None:
    agree(sale)


@SETTINGS
@given(random_sales())
def test_random_histories_agree_with_the_oracle(sale: Sale) -> None:
    agree(sale)


def with_ids(ops: list[Op]) -> Operations:
    """The table of these operations as a command buyer's: every sale's
    ticket an id (distinct), not a seat."""
    ids = Operations(len(ops), T0)
    ev: Any
    for ev in events_of(ops):
        if ev["type"] == "ok":
            ev = {**ev, "ticket": f"T-{ev['buyer']}"}
            del ev["seat"]
        ids.add(ev)
    return ids


def agree_without_seats(sale: Sale) -> None:
    """Ticket ids: the checks that run pass exactly when the oracle, taking a
    sale at any count, finds the history linearizable."""
    initial, remaining, ops = sale
    table = with_ids(ops)
    report = evaluate(table, initial, remaining)
    expected = linearizable(ops, initial, remaining, ids=True)
    assert sound(report) == expected, (sale, report.failures())
    if table.tickets:  # a sale at all: no seats to order
        assert [c.name for c in report.not_run()] == ["real-time order"]


@settings(SETTINGS, max_examples=max(100, QUICK // 2))  # the simpler model; 20x in stress
@given(st.one_of(correct_sales(), lossy_sales(), mutated_sales(), random_sales()))
def test_ticket_ids_agree_with_the_oracle(sale: Sale) -> None:
    agree_without_seats(sale)


@settings(max_examples=max(50, QUICK // 10), deadline=None, database=None)
@given(st.one_of(correct_sales(), mutated_sales(), lossy_sales()))
def test_the_file_path_gives_the_same_verdict(sale: Sale) -> None:
    """Written as history lines, read back and checked: the same answer."""
    initial, remaining, ops = sale
    with tempfile.TemporaryDirectory() as folder:
        history = read(write(Path(folder) / "h.jsonl", lines_of(initial, remaining, ops)))
    assert sound(check_history(history)) == linearizable(ops, initial, remaining)


@settings(max_examples=max(50, QUICK // 10), deadline=None, database=None)
@given(st.one_of(correct_sales(), mutated_sales(), lossy_sales()), st.data())
def test_scattered_numbers_give_the_same_verdict(sale: Sale, data: st.DataObject) -> None:
    """The reader's table grows with the numbers it meets: operations
    numbered anywhere below what the run line claims (up to ten million, few
    present) read back to the oracle's verdict, and every number never seen
    is absent."""
    initial, remaining, ops = sale
    claimed = data.draw(st.sampled_from([len(ops), 1_500, 10_000_000]))
    numbers = data.draw(
        st.lists(
            st.integers(0, min(claimed, 5_000) - 1),
            min_size=len(ops),
            max_size=len(ops),
            unique=True,
        )
    )
    lines = lines_of(initial, remaining, ops)
    lines[0]["buyers"] = claimed
    for ev in lines[1:-1]:
        ev["buyer"] = numbers[ev["buyer"]]
    with tempfile.TemporaryDirectory() as folder:
        history = read(write(Path(folder) / "h.jsonl", lines))
    assert history.ops.size == max(numbers) + 1
    assert history.ops.size - history.ops.count(0) == len(ops)  # the rest ABSENT
    assert sound(check_history(history)) == linearizable(ops, initial, remaining)


@pytest.mark.parametrize(
    "name, sale, passes",
    [
        ("sequential", (2, 0, [Op("ok", 0, 1, 2), Op("ok", 2, 3, 1)]), True),
        ("touching intervals are concurrent", (2, 0, [Op("ok", 0, 1, 1), Op("ok", 1, 2, 2)]), True),
        ("stale read", (2, 0, [Op("ok", 0, 1, 1), Op("ok", 2, 3, 2)]), False),
        ("sold out then sold", (1, 0, [Op("sold out", 0, 1), Op("ok", 2, 3, 1)]), False),
        ("sold out while left", (1, 1, [Op("sold out", 0, 1)]), False),
        ("unknown took the gap", (2, 0, [Op("info", 0), Op("ok", 1, 2, 1)]), True),
        ("unknown too late", (2, 0, [Op("ok", 0, 1, 1), Op("info", 2)]), False),
        ("unknown had no effect", (2, 1, [Op("info", 5), Op("ok", 0, 1, 2)]), True),
        ("busy took nothing", (1, 0, [Op("busy", 0, 1)]), False),
    ],
)
def test_fixed_examples(name: str, sale: Sale, passes: bool) -> None:
    initial, remaining, ops = sale
    assert linearizable(ops, initial, remaining) is passes
    assert sound(verdict(initial, remaining, ops)) is passes


@pytest.mark.stress
@pytest.mark.timeout(1800)
def test_many_more_examples() -> None:
    """The same properties with twenty times the examples (``make stress``)."""
    many = settings(SETTINGS, max_examples=MANY)
    for strategy in (correct_sales(), lossy_sales(), mutated_sales(), random_sales()):
        many(given(strategy)(agree))()
        many(given(strategy)(agree_without_seats))()
