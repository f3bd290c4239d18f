"""The checks on hand-made histories: each must catch its fault, and every
history a hostile hand made that the old checker passed is refused or failed."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from helpers import kept, spec_of
from histories import T0, Op, end_line, events_of, lines_of, run_line, table, write
from tickets.check.history import HistoryError, read
from tickets.check.sale import check_histories
from tickets.check.verdict import Report, check_history, evaluate


def judge(initial: int, remaining: int | None, ops: list[Op], **kw: Any) -> Report:
    return evaluate(table(ops), initial, remaining, **kw)


def failed_names(report: Report) -> set[str]:
    return {c.name for c in report.failures()}


def detail(report: Report, name: str) -> str:
    return next(c.detail for c in report.checks if c.name == name)


def ok(start: float, done: float, seat: int) -> Op:
    return Op("ok", start, done, seat)


def test_clean_sale_passes() -> None:
    report = judge(3, 0, [ok(0, 1.5, 3), ok(1, 2.5, 2), ok(2, 3, 1), Op("sold out", 3, 4)])
    assert report.passed, report.failures()
    # the three sales overlapped in pairs; the sold-out began after the last ticket went
    assert report.contention.as_dict() == {"operations": 4, "contended": 3, "peak": 2}
    assert (report.sold, report.failed, report.unknown, report.oversold) == (3, 1, 0, 0)
    assert report.double_sold_seats == []
    assert [c.name for c in report.checks] == [
        "well-formed",
        "sold <= initial",
        "no seat sold twice",
        "conservation",
        "real-time order",
        "no undersell",
        "store valid after the run",
        "no errors",
    ]


def test_double_sold_seat_and_lost_update() -> None:
    # Two buyers both read 3 and both wrote 2: one update lost.
    report = judge(3, 1, [ok(0, 2, 3), ok(0, 2, 3), ok(3, 4, 2)])
    assert not report.passed
    assert report.double_sold == {3: ["0", "1"]}
    assert report.oversold == 1
    assert failed_names(report) == {"no seat sold twice", "conservation"}


def test_sold_more_than_initial() -> None:
    report = judge(2, 0, [ok(0, 1, 2), ok(0, 1, 2), ok(2, 3, 1), ok(2, 3, 1)])
    assert "sold <= initial" in failed_names(report)
    assert report.oversold == 2


def test_unknown_outcomes_widen_conservation() -> None:
    # A buyer died after writing: the store went down by 2, one sale confirmed.
    report = judge(5, 3, [ok(1, 2, 5), Op("info", 0)])
    assert report.passed, report.failures()
    assert report.unknown == 1
    # ...but the store may not lose more than sales plus unknowns.
    report = judge(5, 2, [ok(1, 2, 5), Op("info", 0)])
    assert failed_names(report) == {"conservation"}


def test_final_count_alone_cannot_show_oversell() -> None:
    # Ends at count == 0 like a clean sale, yet seat 2 was sold twice.
    report = judge(2, 0, [ok(0, 1, 2), ok(0, 1, 2), ok(2, 3, 1)])
    assert report.remaining == 0 and not report.passed
    assert report.oversold == 1


def test_invalid_store_after_run() -> None:
    report = judge(2, None, [ok(0, 1, 2)], store_problem="x: is empty")
    assert {"store valid after the run", "conservation"} <= failed_names(report)


def test_seat_outside_the_tickets_taken() -> None:
    assert "no seat sold twice" in failed_names(judge(2, 1, [ok(0, 1, 7)]))
    # Seat 1 is one of the two tickets still in the store: nobody can have bought it.
    report = judge(3, 2, [ok(0, 1, 1)])
    assert "outside 3..3" in detail(report, "no seat sold twice")


def test_a_stale_read_is_caught() -> None:
    # Buyer 1 was invoked after buyer 0 got seat 2, yet got seat 3: it read
    # a count older than one already confirmed. Counts and seats are fine.
    report = judge(3, 1, [ok(0, 1, 2), ok(2, 3, 3)])
    assert failed_names(report) == {"real-time order"}
    text = detail(report, "real-time order")
    assert "buyer 1 got seat 3, invoked 1000.0 ms after buyer 0 got seat 2 completed" in text
    assert "stale read" in text


def test_an_undersell_is_caught() -> None:
    # Buyer 0 was told sold out at 1 s; buyer 1 bought the last ticket after that.
    report = judge(1, 0, [Op("sold out", 0, 1), ok(2, 3, 1)])
    assert failed_names(report) == {"no undersell"}
    text = detail(report, "no undersell")
    assert "buyer 0 was told sold out at 1000.0 ms; buyer 1 bought seat 1 after that" in text
    # Told sold out while tickets remained at the end.
    report = judge(2, 1, [ok(0, 1, 2), Op("sold out", 2, 3)])
    assert failed_names(report) == {"no undersell"}
    assert "while tickets remained: the sale ended with 1 left" in detail(report, "no undersell")


def test_an_unconfirmed_seat_needs_an_unknown_buyer_in_time() -> None:
    # Seat 2 went to nobody confirmed; the only unknown buyer began after
    # seat 1 was sold: nobody can have taken seat 2 in time.
    report = judge(2, 0, [ok(0, 1, 1), Op("info", 2)])
    assert failed_names(report) == {"real-time order"}
    assert "seat 2 went to no buyer that could have taken it" in detail(report, "real-time order")
    # Begun in time, it accounts for the seat.
    assert judge(2, 0, [ok(0, 1, 1), Op("info", 0.5)]).passed
    # Begun after a sold out it cannot have been before it.
    report = judge(2, 0, [ok(0, 1, 1), Op("sold out", 1, 1.5), Op("info", 1.7)])
    assert "real-time order" in failed_names(report)
    report = judge(2, 0, [ok(0, 9, 1), Op("sold out", 1, 1.5), Op("info", 1.7)])
    assert failed_names(report) == {"no undersell"}
    assert "before buyer 1 was told sold out" in detail(report, "no undersell")


def test_other_failures_have_no_effect() -> None:
    # A busy buyer took nothing: seat 2 cannot be his.
    report = judge(2, 0, [Op("busy", 0, 5), ok(0, 1, 1)])
    assert "conservation" in failed_names(report)
    # Nor did it race anyone for the stock: one attempt alone tested nothing
    report = judge(2, 1, [Op("busy", 0, 5), ok(0, 1, 2)])
    assert not failed_names(report) and report.uncontended and not report.passed


def test_errors_fail_the_run() -> None:
    ops = table([ok(0, 1, 2)])
    ops.errors, ops.first_error = 1, "error: disk full"
    report = evaluate(ops, 2, 1)
    assert failed_names(report) == {"no errors"}
    assert "disk full" in detail(report, "no errors")


def test_unfinished_history_is_reported_as_such(tmp_path: Path) -> None:
    lines = lines_of(2, 1, [ok(0, 1, 2)])[:-1]
    report = check_history(read(write(tmp_path / "h.jsonl", lines)))
    assert "unfinished" in detail(report, "well-formed")
    assert not report.passed


# -- histories the old checker passed (issue: a checker that cannot be fooled)


def _invoke(buyer: int, t: float) -> dict[str, Any]:
    return {"type": "invoke", "buyer": buyer, "t": t}


def _ok(buyer: int, seat: int, t: float) -> dict[str, Any]:
    return {"type": "ok", "buyer": buyer, "seat": seat, "t": t}


FORGED: dict[str, tuple[list[Any], str]] = {
    "seat sold twice by one buyer": (
        [run_line(1), _invoke(0, 11), _ok(0, 1, 12), _ok(0, 1, 13), end_line(0)],
        "line 4: ok of buyer 0 after its completion",
    ),
    "a later fail hides a sale": (
        [
            run_line(2),
            _invoke(0, 11),
            _invoke(1, 11),
            _ok(0, 2, 12),
            _ok(1, 2, 12),
            {"type": "fail", "buyer": 1, "reason": "sold out", "t": 13},
            end_line(1),
        ],
        "line 6: fail of buyer 1 after its completion",
    ),
    "a later info hides a sale": (
        [
            run_line(2),
            _invoke(0, 11),
            _invoke(1, 11),
            _ok(0, 2, 12),
            _ok(1, 2, 12),
            {"type": "info", "buyer": 1, "t": 13},
            end_line(1),
        ],
        "line 6: info of buyer 1 after its completion",
    ),
    "a buyer number reused": (
        [
            run_line(2),
            _invoke(0, 11),
            _ok(0, 2, 12),
            _invoke(1, 11),
            _ok(1, 1, 12),
            _invoke(1, 13),
            _ok(1, 1, 14),
            end_line(0),
        ],
        "line 6: a second invoke of buyer 1",
    ),
    "an outcome without an invoke": (
        [run_line(1), _ok(0, 1, 12), end_line(0)],
        "line 2: ok of buyer 0 before its invoke",
    ),
    "completed before invoked": (
        [run_line(1), _invoke(0, 12), _ok(0, 1, 11), end_line(0)],
        "before its invoke at 12",
    ),
    "remaining true": (
        [run_line(2), _invoke(0, 11), _ok(0, 2, 12), end_line(True)],
        "remaining True, not a count",
    ),
    "initial over the limit": ([run_line(10**10), end_line(0)], "no valid initial stock"),
    "initial a bool": ([run_line(True), end_line(0)], "no valid initial stock"),
    "unknown mode": ([run_line(1, mode="sell"), end_line(1)], "mode 'sell'"),
    "unknown strategy": ([run_line(1, strategy="hope"), end_line(1)], "strategy 'hope'"),
    "a strategy the store has not": (
        [run_line(1, strategy="atomic"), end_line(1)],
        "which a json store does not have",
    ),
    "an unknown store kind": (
        [run_line(1, store_kind="mongo"), end_line(1)],
        "store kind 'mongo'",
    ),
    "a seat that is a bool": (
        [run_line(1), _invoke(0, 11), _ok(0, True, 12), end_line(0)],
        "seat True",
    ),
    "a buyer beyond the run's": (
        [run_line(1, size=2), _invoke(2, 11), end_line(1)],
        "buyer number 2, not one of 0..1",
    ),
    "a time before the run": ([run_line(1), _invoke(0, 9), end_line(1)], "has time 9"),
    "a string time": ([run_line(1), _invoke(0, "11"), end_line(1)], "has time '11'"),  # type: ignore[arg-type]
    "phases out of order": (
        [
            run_line(1),
            _invoke(0, 11),
            _ok(0, 1, 13) | {"t_search": 12.5, "t_locked": 12},
            end_line(0),
        ],
        "phases out of order",
    ),
    "a line after the end": ([run_line(1), end_line(1), _invoke(0, 11)], "after the end line"),
    "an end before the last event": (
        [run_line(1), _invoke(0, 11), _ok(0, 1, 12), end_line(0, t=11.5)],
        "not after every event",
    ),
    "an initial stock on a stock nobody read": (
        [run_line(5, stock="none"), end_line(None)],
        "says none was read",
    ),
    "no initial stock on a stock that was read": (
        [run_line(None, stock="command"), end_line(0)],  # type: ignore[arg-type]
        "no valid initial stock",
    ),
    "a final stock on a stock nobody read": (
        [run_line(None, stock="none"), end_line(3)],  # type: ignore[arg-type]
        "end line has a final stock but the run line says none was read",
    ),
    "an unknown stock source": ([run_line(1, stock="hope"), end_line(1)], "stock 'hope'"),
    "a ticket id that is not text": (
        [
            run_line(1),
            _invoke(0, 11),
            {"type": "ok", "buyer": 0, "ticket": 7, "t": 12},
            end_line(0),
        ],
        "has ticket 7, not a ticket id",
    ),
    "an empty ticket id": (
        [
            run_line(1),
            _invoke(0, 11),
            {"type": "ok", "buyer": 0, "ticket": "", "t": 12},
            end_line(0),
        ],
        "has ticket '', not a ticket id",
    ),
    "a reason that is not text": (
        [
            run_line(1),
            _invoke(0, 11),
            {"type": "fail", "buyer": 0, "reason": 7, "t": 12},
            end_line(1),
        ],
        "has reason 7",
    ),
    # issue #22 (14, 10): a bool is an int in Python, and 1.0 == 1
    "version true": ([run_line(1) | {"version": True}, end_line(1)], "format version True"),
    "version 1.0": ([run_line(1) | {"version": 1.0}, end_line(1)], "format version 1.0"),
    "a blank line between events": (
        [run_line(1), _invoke(0, 11), "", _ok(0, 1, 12), end_line(0)],
        "line 3: blank",
    ),
    "a whitespace-only line between events": (
        [run_line(1), _invoke(0, 11), " \t\r", _ok(0, 1, 12), end_line(0)],
        "line 3: blank",
    ),
    "a blank first line": (["", run_line(1), end_line(1)], "line 1: blank"),
    # issue #22 (5): one ticket id must not switch off the checks of seats
    "a ticket id beside seats": (
        [
            run_line(2),
            _invoke(0, 11),
            _invoke(1, 11),
            _ok(0, 2, 12),
            {"type": "ok", "buyer": 1, "ticket": "T-1", "t": 12},
            end_line(0),
        ],
        "line 5: ok of buyer 1 has ticket 'T-1', not a seat",
    ),
    "a seat beside ticket ids": (
        [
            run_line(2),
            _invoke(0, 11),
            _invoke(1, 11),
            {"type": "ok", "buyer": 0, "ticket": "T-1", "t": 12},
            _ok(1, 2, 12),
            end_line(0),
        ],
        "line 5: ok of buyer 1 has seat 2, where the sale's other tickets are ids",
    ),
    "ticket_ids in a version 1 run line": (
        [run_line(1, ticket_ids=True), end_line(1)],
        "run line has ticket_ids True",
    ),
    "ticket_ids that is not a bool": (
        [run_line(1, version=2, ticket_ids="yes"), end_line(1)],
        "run line has ticket_ids 'yes'",
    ),
    "a format version from the future": (
        [run_line(1, version=4), end_line(1)],
        "format version 4, not one this tickets reads",
    ),
    "a blank line after the end": ([run_line(1), end_line(1), "  "], "line 3: blank"),
}


@pytest.mark.parametrize("name", sorted(FORGED))
def test_forged_histories_are_malformed(tmp_path: Path, name: str, invoke: Any) -> None:
    lines, problem = FORGED[name]
    path = write(tmp_path / "forged.jsonl", lines)
    with pytest.raises(HistoryError) as caught:
        read(path)
    assert problem in str(caught.value)
    result = invoke("check", str(path))
    assert result.exit_code == 3
    assert problem in result.output and len(result.output.strip().splitlines()) == 1


def _claims_many(tmp_path: Path, name: str, number: int = 0, claimed: int = 10_000_000) -> Path:
    """A run line that claims ``claimed`` buyers, and one sale, by ``number``."""
    return write(
        tmp_path / name,
        [
            run_line(1, size=claimed, run_id=name),
            _invoke(number, 11),
            _ok(number, 1, 12),
            end_line(0),
        ],
    )


FLOODS = {
    "blank lines": "\n",
    "whitespace-only lines": " \t\n",
    "carriage returns": "\r\n",
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("flood", sorted(FLOODS))
def test_forged_floods_are_refused_at_once(tmp_path: Path, flood: str) -> None:
    """A few MB of blank lines after the run line: each one went through the
    JSON decoder's exception path (50 MB took 374 s); the first is refused."""
    path = tmp_path / "flood.jsonl"
    path.write_text(json.dumps(run_line(1)) + "\n" + FLOODS[flood] * 3_000_000)
    began = time.monotonic()
    with pytest.raises(HistoryError, match="line 2: blank"):
        read(path)
    assert time.monotonic() - began < 1.0


def test_a_run_line_that_claims_millions_costs_what_is_there(tmp_path: Path) -> None:
    """10,000,000 buyers claimed, one present: the table holds one (it held
    ten million, 210 MB), and the verdict is the same as for a dense table."""
    history = read(_claims_many(tmp_path, "h.jsonl"))
    assert history.ops.size == 1 and history.ops.claimed == 10_000_000
    assert len(history.ops.invoked) == 1
    report = check_history(history)
    assert not report.failures() and report.sold == 1
    assert report.unproven and "one purchase cannot race" in (report.untested or "")
    dense = evaluate(table([ok(1, 2, 1)]), 1, 0)
    assert report.checks == dense.checks


def test_a_far_buyer_number_is_the_only_one_held(tmp_path: Path) -> None:
    """One sale by buyer 999,999 of a million: numbers below it are absent,
    exactly as before, and it is named by its own number."""
    history = read(_claims_many(tmp_path, "far.jsonl", 999_999, 1_000_000))
    ops = history.ops
    assert ops.size == 1_000_000 and ops.count(0) == 999_999  # ABSENT
    report = check_history(history)
    assert not report.failures() and "1 operation(s)" in detail(report, "well-formed")
    with pytest.raises(HistoryError, match="buyer number 1000000, not one of 0..999999"):
        read(_claims_many(tmp_path, "beyond.jsonl", 1_000_000, 1_000_000))


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_nan_and_infinite_times_are_malformed(tmp_path: Path, constant: str) -> None:
    text = [json.dumps(run_line(1)), f'{{"type": "invoke", "buyer": 0, "t": {constant}}}']
    with pytest.raises(HistoryError, match="line 2"):
        read(write(tmp_path / "h.jsonl", text))


def test_two_runs_one_sale_cross_run_oversell(tmp_path: Path) -> None:
    # Each run had its own process lock: each is clean alone, together seat 2 sold twice.
    a = write(
        tmp_path / "a.jsonl",
        [
            run_line(2, t=1.0, run_id="a", restocked=True),
            _invoke(0, 1.05),
            _ok(0, 2, 1.1),
            end_line(1, t=1.5),
        ],
    )
    b = write(
        tmp_path / "b.jsonl",
        [
            run_line(2, t=1.04, run_id="b", restocked=False),
            _invoke(0, 1.05),
            _ok(0, 2, 1.1),
            _invoke(1, 1.15),
            _ok(1, 1, 1.2),
            end_line(0, t=1.6),
        ],
    )
    assert not check_history(read(a)).failures()
    report = check_histories([read(a), read(b)])
    assert not report.passed
    assert report.double_sold == {2: ["1:0", "2:0"]}
    assert report.oversold == 1


def test_two_runs_one_sale_real_time_across_runs(tmp_path: Path) -> None:
    # Run 2's buyer began after run 1's sale of seat 1 completed, yet got seat 2.
    a = write(
        tmp_path / "a.jsonl",
        [run_line(2, t=1.0, run_id="a"), _invoke(0, 1.05), _ok(0, 1, 1.1), end_line(0, t=1.5)],
    )
    b = write(
        tmp_path / "b.jsonl",
        [
            run_line(2, t=1.11, run_id="b", restocked=False),
            _invoke(0, 1.2),
            _ok(0, 2, 1.3),
            end_line(0, t=1.6),
        ],
    )
    report = check_histories([read(a), read(b)])
    assert failed_names(report) == {"real-time order"}
    assert "run 2 buyer 0 got seat 2" in detail(report, "real-time order")
    assert "run 1 buyer 0 got seat 1" in detail(report, "real-time order")


def test_combining_refuses_restocks_and_other_stores(tmp_path: Path) -> None:
    a = write(tmp_path / "a.jsonl", [run_line(2, t=1.0, run_id="a"), end_line(2, t=2)])
    b = write(tmp_path / "b.jsonl", [run_line(2, t=1.5, run_id="b"), end_line(2, t=2)])
    with pytest.raises(HistoryError, match="restocked"):
        check_histories([read(a), read(b)])
    with pytest.raises(HistoryError, match="twice"):
        check_histories([read(a), read(a)])
    c = write(tmp_path / "c.jsonl", [run_line(2, t=1.6, run_id="c", store="/elsewhere.json")])
    with pytest.raises(HistoryError, match="different stores"):
        check_histories([read(a), read(c)])


@pytest.mark.parametrize(
    "content, problem",
    [
        ("", "empty"),
        ("hello\n", "not a tickets history"),
        ('{"count": 3}\n', "is a store, not a history"),
        ('{"type": "invoke", "buyer": 1}\n', "does not start with a run line"),
        (json.dumps({"type": "run", "version": 9, "initial": 1}) + "\n", "format version"),
        (json.dumps(run_line(-1)) + "\n", "initial stock"),
        (json.dumps(run_line(1)) + '\n{"type": "what"}\n', "unknown event type 'what'"),
        (json.dumps(run_line(1)) + "\n[1, 2]\n", "line 2: not a JSON object"),
        (
            json.dumps(run_line(1)) + '\n{"type": "invoke", "buyer": 0, "t": 11}\n'
            '{"type": "ok", "buyer": 0, "t": 12}\n',
            "seat None",
        ),
        (json.dumps(run_line(1)) + "\n{torn\n", "line 2: not valid JSON"),
        (json.dumps(run_line(1)) + "\n" + "[" * 60000 + "\n", "line 2: not valid JSON"),
    ],
)
def test_not_a_history(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "h.jsonl"
    path.write_text(content)
    with pytest.raises(HistoryError, match=problem) as info:
        read(path)
    assert str(path) in str(info.value)


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    path.write_bytes(json.dumps(run_line(1)).encode() + b'\n{"type": "\xff"}\n')
    with pytest.raises(HistoryError, match="line 2 is not UTF-8"):
        read(path)


def test_events_of_real_shape_round_trip(tmp_path: Path) -> None:
    ops = [ok(0, 1, 2), Op("info", 0.5), Op("sold out", 2, 3), Op("pending", 4)]
    history = read(write(tmp_path / "h.jsonl", lines_of(2, 0, ops)))
    assert history.ops.kinds == table(ops).kinds
    assert len(events_of(ops)) == 7
    assert check_history(history).passed
    assert T0 == history.ops.t_run


# -- the parent's ledger keeps its history well-formed whatever children send


def test_the_ledger_writes_well_formed_histories_from_any_order_of_reports(
    tmp_path: Path,
) -> None:
    import time

    from tickets.engine.config import BuyConfig
    from tickets.engine.ledger import SaleLedger

    config = BuyConfig(
        store=spec_of(tmp_path / "s.json"), tickets=2, buyers=4, history=tmp_path / "h.jsonl"
    )
    ledger = SaleLedger(config, 4, {"buyers": 4})
    try:
        now = time.monotonic()
        ledger.record({"type": "invoke", "buyer": 0, "t": now})
        ledger.record({"type": "ok", "buyer": 0, "seat": 2, "t": now + 0.001})
        ledger.record({"type": "invoke", "buyer": 0, "t": now + 0.002})  # late: dropped
        ledger.record({"type": "fail", "buyer": 0, "reason": "sold out", "t": now})  # dropped
        # An outcome whose invoke never came: the parent writes one, at the run's start.
        ledger.record({"type": "fail", "buyer": 1, "reason": "never started", "t": now})
        # A report the history cannot hold becomes an unknown outcome.
        ledger.record({"type": "invoke", "buyer": 2, "t": now})
        ledger.record({"type": "ok", "buyer": 2, "seat": "one", "t": now + 0.003})  # type: ignore[typeddict-item]
        ledger.record({"type": "ok", "buyer": 99, "seat": 1, "t": now})  # no such buyer
        ledger.unknown(3, "killed by SIGKILL")
        result = ledger.close_run(now, None)
    finally:
        ledger.close()
    history = read(kept(result))
    lines = [json.loads(x) for x in kept(result).read_text().splitlines()]
    parent_invokes = [x for x in lines if x.get("by") == "parent"]
    assert [x["buyer"] for x in parent_invokes] == [1, 3]
    assert all(x["t"] == history.run["t"] for x in parent_invokes)
    assert [x["type"] for x in lines if x.get("buyer") == 0] == ["invoke", "ok"]
    assert [x["type"] for x in lines if x.get("buyer") == 2] == ["invoke", "info"]
    info = next(x for x in lines if x.get("buyer") == 2 and x["type"] == "info")
    assert info["reason"].startswith("error: its report was malformed (ok of buyer 2 has seat")
    assert any("no operation of this run" in n for n in result.notes)
    # The run's verdict and tickets check of its history are one computation.
    assert result.report == check_history(history)
    assert result.report.passed is False  # an error outcome: the run proves nothing


# -- ticket ids and a stock nobody read (command buyers) ------------------------


def _ticket(buyer: int, ticket: str, t: float) -> dict[str, Any]:
    return {"type": "ok", "buyer": buyer, "ticket": ticket, "t": t}


def _sold_out(buyer: int, t: float) -> dict[str, Any]:
    return {"type": "fail", "buyer": buyer, "reason": "sold out", "t": t}


def _report(tmp_path: Path, lines: list[dict[str, Any]]) -> Any:
    from tickets.check.verdict import check_history

    return check_history(read(write(tmp_path / "h.jsonl", lines)))


def _verdicts(report: Any) -> dict[str, bool | None]:
    return {c.name: c.passed for c in report.checks}


def test_ticket_ids_pass_when_unique_and_counted(tmp_path: Path) -> None:
    report = _report(
        tmp_path,
        [
            run_line(2, size=3),
            _invoke(0, 11),
            _invoke(1, 11),
            _invoke(2, 11),
            _ticket(0, "A", 12),
            _ticket(1, "B", 12),
            _sold_out(2, 13),
            end_line(0),
        ],
    )
    assert report.passed and not report.unproven and report.sold == 2
    assert _verdicts(report)["real-time order"] is None  # ids have no order to check
    assert [c.name for c in report.not_run()] == ["real-time order"]


@pytest.mark.parametrize(
    ("events", "remaining", "failed"),
    [
        ([_ticket(0, "A", 12), _ticket(1, "A", 12)], 0, "no ticket sold twice"),
        ([_ticket(0, "A", 12), _ticket(1, "B", 12)], 1, "conservation"),
        ([_ticket(0, "A", 12), _ticket(1, "B", 12), _ticket(2, "C", 12)], 0, "sold <= initial"),
        ([_ticket(0, "A", 12), _sold_out(1, 12)], 1, "no undersell"),  # sold out, one left
        ([_sold_out(2, 11.5), _ticket(0, "A", 12), _ticket(1, "B", 13)], 0, "no undersell"),
    ],
)
def test_ticket_ids_fail_what_they_can_be_checked_for(
    tmp_path: Path, events: list[dict[str, Any]], remaining: int, failed: str
) -> None:
    invokes = [_invoke(0, 11), _invoke(1, 11), _invoke(2, 11)]
    if events[0]["type"] == "fail":  # the sold out completed before the others were invoked
        invokes = [_invoke(2, 11), events[0], _invoke(0, 11.6), _invoke(1, 11.6)]
        events = events[1:]
    report = _report(tmp_path, [run_line(2, size=3), *invokes, *events, end_line(remaining)])
    assert _verdicts(report)[failed] is False and not report.passed and not report.unproven


def test_a_stock_nobody_read_is_not_proven_and_never_passes(tmp_path: Path, invoke: Any) -> None:
    lines = [
        run_line(None, size=2, stock="none"),  # type: ignore[arg-type]
        _invoke(0, 11),
        _invoke(1, 11),
        _ok(0, 2, 12),
        _ok(1, 1, 12),
        end_line(None),
    ]
    report = _report(tmp_path, lines)
    assert not report.passed and report.unproven and report.initial is None
    assert {c.name for c in report.not_run()} == {
        "sold <= initial",
        "conservation",
        "store valid after the run",
    }
    result = invoke("check", str(tmp_path / "h.jsonl"), "--json")
    doc = json.loads(result.output)
    assert result.exit_code == 5 and doc["passed"] is False and doc["unproven"] is True
    # What could run still fails a bad sale: a seat sold twice is exit 1.
    lines[-2] = _ok(1, 2, 12)
    report = _report(tmp_path, lines)
    assert not report.passed and not report.unproven
    assert invoke("check", str(tmp_path / "h.jsonl")).exit_code == 1


# -- an aborted run (issue #22, 14): what it sold is checked, but it never passes


ABORTED = "watchdog: no process reported for 30s"


@pytest.mark.parametrize("bad", [False, True])
def test_an_aborted_run_is_not_proven_or_failed_never_passed(
    tmp_path: Path, invoke: Any, bad: bool
) -> None:
    """The end line says the watchdog stopped the run: with no check failing
    that is NOT PROVEN (exit 5) with the reason; a failing check stays FAILED."""
    seat = 2 if bad else 1  # bad: seat 2 sold twice
    lines = [
        run_line(2, size=3),
        _invoke(0, 11),
        _invoke(1, 11.5),
        _ok(0, 2, 12),
        _ok(1, seat, 13),
        _invoke(2, 13.5),
        {
            "type": "info",
            "buyer": 2,
            "t": 14,
            "reason": "no outcome reported (the run was stopped)",
        },
        end_line(0, aborted=ABORTED),
    ]
    path = write(tmp_path / "h.jsonl", lines)
    report = check_history(read(path))
    assert not report.passed and report.aborted == ABORTED
    assert report.unproven is (not bad)
    result = invoke("check", str(path), "--json")
    doc = json.loads(result.output)
    assert result.exit_code == (1 if bad else 5)
    assert doc["passed"] is False and doc["unproven"] is (not bad) and doc["aborted"] == ABORTED
    text = invoke("check", str(path)).output
    if bad:
        assert "FAILED" in text and "NOT PROVEN" not in text
    else:
        assert "NOT PROVEN: the run was aborted (watchdog: no process reported" in text
    # The same run, not aborted, passes or fails as before.
    write(path, [*lines[:-1], end_line(0)])
    assert invoke("check", str(path)).exit_code == (1 if bad else 0)


def test_an_aborted_run_in_a_sale_of_several_is_not_proven(tmp_path: Path, invoke: Any) -> None:
    a = write(
        tmp_path / "a.jsonl",
        [
            run_line(2, t=1.0, run_id="a"),
            _invoke(0, 1.05),
            _ok(0, 2, 1.1),
            end_line(1, t=1.5, aborted="interrupted (SIGINT)"),
        ],
    )
    b = write(
        tmp_path / "b.jsonl",
        [
            run_line(1, t=1.2, run_id="b", restocked=False),
            _invoke(0, 1.25),
            _ok(0, 1, 1.3),
            end_line(0, t=1.6),
        ],
    )
    report = check_histories([read(a), read(b)])
    assert report.unproven and not report.passed
    assert report.aborted == f"{a}: interrupted (SIGINT)"
    assert invoke("check", str(a), str(b), "--one-sale").exit_code == 5
    each = invoke("check", str(a), str(b), "--json")
    doc = json.loads(each.output)
    assert each.exit_code == 5 and doc["passed"] is False
    assert [r["aborted"] for r in doc["results"]] == ["interrupted (SIGINT)", None]
    assert "were of aborted runs" in invoke("check", str(a), str(b)).output


@pytest.mark.parametrize("aborted", ["", "\x1b[2Jx" * 200])
def test_any_text_in_aborted_means_aborted(tmp_path: Path, aborted: str) -> None:
    """The tool writes null for a run it did not stop; an empty reason is
    still a stop, and a forged one is cut and made printable."""
    lines = [run_line(1, size=1), _invoke(0, 11), _ok(0, 1, 12), end_line(0, aborted=aborted)]
    report = check_history(read(write(tmp_path / "h.jsonl", lines)))
    assert report.unproven and report.aborted is not None
    assert "\x1b" not in report.aborted and 0 < len(report.aborted) <= 300


def _stale_read_beside(third: dict[str, Any]) -> list[Any]:
    """Three buyers of three tickets: buyer 1 took seat 3 after buyer 0 had
    completed seat 2 (a stale read); buyer 2 sold ``third``."""
    return [
        run_line(3, version=2, ticket_ids=True),
        _invoke(0, 11),
        _ok(0, 2, 12),
        _invoke(1, 13),
        _ok(1, 3, 14),
        _invoke(2, 13),
        {"type": "ok", "buyer": 2, "t": 14, **third},
        end_line(0),
    ]


def test_a_ticket_id_no_longer_switches_off_the_order_of_seats(tmp_path: Path) -> None:
    """The issue's case: the stale read FAILS with a seat as the third sale,
    and used to PASS once the third sale carried an id. A run that said
    --ticket-ids may mix them: its seats are still ordered."""
    seats = read(write(tmp_path / "seats.jsonl", _stale_read_beside({"seat": 1})))
    assert not check_history(seats).passed
    mixed = check_history(
        read(write(tmp_path / "mixed.jsonl", _stale_read_beside({"ticket": "T-1"})))
    )
    order = next(c for c in mixed.checks if c.name == "real-time order")
    assert order.passed is False and "stale read" in order.detail
    assert not mixed.passed
    lines = _stale_read_beside({"ticket": "T-1"})
    lines[0] = run_line(3)  # a version 1 run line: tickets are seats; an id is malformed
    with pytest.raises(HistoryError, match="line 7: ok of buyer 2 has ticket 'T-1', not a seat"):
        read(write(tmp_path / "v1.jsonl", lines))


def test_a_version_1_history_still_checks(tmp_path: Path) -> None:
    path = write(
        tmp_path / "v1.jsonl",
        [run_line(2), _invoke(0, 11), _invoke(1, 11.5), _ok(0, 2, 12), _ok(1, 1, 14), end_line(0)],
    )
    assert check_history(read(path)).passed
