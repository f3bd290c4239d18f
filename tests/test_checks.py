"""The invariants on hand-made histories: each check must catch its fault."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tickets.checks import check_histories, check_history, evaluate
from tickets.history import HistoryError, read


def ok(buyer: int, seat: int) -> tuple[str, dict[str, Any]]:
    return str(buyer), {"type": "ok", "buyer": buyer, "seat": seat}


def fail(buyer: int) -> tuple[str, dict[str, Any]]:
    return str(buyer), {"type": "fail", "buyer": buyer, "reason": "sold out"}


def info(buyer: int) -> tuple[str, dict[str, Any]]:
    return str(buyer), {"type": "info", "buyer": buyer}


def failed_names(report: Any) -> set[str]:
    return {c.name for c in report.failures()}


def test_clean_sale_passes() -> None:
    report = evaluate(3, 0, [ok(0, 3), ok(1, 2), ok(2, 1), fail(3)])
    assert report.passed
    assert (report.sold, report.failed, report.unknown, report.oversold) == (3, 1, 0, 0)
    assert report.double_sold_seats == []


def test_double_sold_seat_and_lost_update() -> None:
    # Two buyers both read 3 and both wrote 2: one update lost.
    report = evaluate(3, 1, [ok(0, 3), ok(1, 3), ok(2, 2)])
    assert not report.passed
    assert report.double_sold == {3: ["0", "1"]}
    assert report.oversold == 1
    assert failed_names(report) == {"no seat sold twice", "conservation"}


def test_sold_more_than_initial() -> None:
    report = evaluate(2, 0, [ok(0, 2), ok(1, 2), ok(2, 1), ok(3, 1)])
    assert "sold <= initial" in failed_names(report)
    assert report.oversold == 2


def test_unknown_outcomes_widen_conservation() -> None:
    # A buyer died after writing: the store went down by 2, one sale confirmed.
    report = evaluate(5, 3, [ok(0, 5), info(1)])
    assert report.passed
    assert report.unknown == 1
    # ...but the store may not lose more than sales plus unknowns.
    report = evaluate(5, 2, [ok(0, 5), info(1)])
    assert failed_names(report) == {"conservation"}


def test_final_count_alone_cannot_show_oversell() -> None:
    # Ends at count == 0 like a clean sale, yet seat 2 was sold twice.
    report = evaluate(2, 0, [ok(0, 2), ok(1, 2), ok(2, 1)])
    assert report.remaining == 0 and not report.passed
    assert report.oversold == 1


def test_invalid_store_after_run() -> None:
    report = evaluate(2, None, [ok(0, 2)], store_problem="x: is empty")
    assert "store valid after the run" in failed_names(report)


def test_seat_outside_stock() -> None:
    report = evaluate(2, 1, [ok(0, 7)])
    assert "no seat sold twice" in failed_names(report)


def write_history(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def run_line(initial: int, t: float, run_id: str, restocked: bool = False) -> dict[str, Any]:
    return {
        "type": "run",
        "version": 1,
        "run_id": run_id,
        "store": "/s/tickets.json",
        "strategy": "process",
        "initial": initial,
        "restocked": restocked,
        "t": t,
    }


def test_two_runs_one_sale_cross_run_oversell(tmp_path: Path) -> None:
    # Each run had its own process lock: each is clean alone, together seat 2 sold twice.
    a = write_history(
        tmp_path / "a.jsonl",
        [
            run_line(2, 1.0, "a"),
            {"type": "ok", "buyer": 0, "seat": 2, "t": 1.1},
            {"type": "end", "remaining": 1, "t": 1.5},
        ],
    )
    b = write_history(
        tmp_path / "b.jsonl",
        [
            run_line(2, 1.05, "b"),
            {"type": "ok", "buyer": 0, "seat": 2, "t": 1.1},
            {"type": "ok", "buyer": 1, "seat": 1, "t": 1.2},
            {"type": "end", "remaining": 0, "t": 1.6},
        ],
    )
    assert check_history(read(a)).passed
    report = check_histories([read(a), read(b)])
    assert not report.passed
    assert report.double_sold == {2: ["1:0", "2:0"]}
    assert report.oversold == 1


def test_combining_refuses_restocks_and_other_stores(tmp_path: Path) -> None:
    a = write_history(
        tmp_path / "a.jsonl", [run_line(2, 1.0, "a"), {"type": "end", "remaining": 2, "t": 2}]
    )
    b = write_history(
        tmp_path / "b.jsonl",
        [run_line(2, 1.5, "b", restocked=True), {"type": "end", "remaining": 2, "t": 2}],
    )
    with pytest.raises(HistoryError, match="restocked"):
        check_histories([read(a), read(b)])
    with pytest.raises(HistoryError, match="twice"):
        check_histories([read(a), read(a)])
    other = run_line(2, 1.6, "c") | {"store": "/elsewhere.json"}
    c = write_history(tmp_path / "c.jsonl", [other])
    with pytest.raises(HistoryError, match="different stores"):
        check_histories([read(a), read(c)])


@pytest.mark.parametrize(
    "content, problem",
    [
        ("", "empty"),
        ("hello\n", "not a tickets history"),
        ('{"count": 3}\n', "unknown event type"),
        ('{"type": "invoke", "buyer": 1}\n', "does not start with a run line"),
        (json.dumps({"type": "run", "version": 9, "initial": 1}) + "\n", "format version"),
        (json.dumps({"type": "run", "version": 1, "initial": -1}) + "\n", "initial stock"),
        (
            json.dumps({"type": "run", "version": 1, "initial": 1})
            + '\n{"type": "ok", "buyer": 1}\n',
            "without a seat",
        ),
        (
            json.dumps({"type": "run", "version": 1, "initial": 1}) + "\n{torn",
            "line 2 is not valid JSON",
        ),
    ],
)
def test_not_a_history(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "h.jsonl"
    path.write_text(content)
    with pytest.raises(HistoryError, match=problem) as info:
        read(path)
    assert str(path) in str(info.value)
