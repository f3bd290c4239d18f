"""No verdict without contention: every sale says how much it raced, and a
sale in which nothing raced is NOT PROVEN (exit 5), never PASSED."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from histories import Op, lines_of, table, write
from tickets.check.contention import contention_of
from tickets.check.history import read
from tickets.check.operations import INF, Operations
from tickets.check.sale import check_sale
from tickets.check.verdict import check_history, evaluate


def brute_force(spans: list[tuple[float, float]], cut: float) -> tuple[int, int]:
    """Contended operations and the peak, pair by pair and moment by moment."""
    cut_spans = [(s, min(e, cut)) for s, e in spans]
    live = [(s, e) for s, e in cut_spans if e > s]
    contended = sum(
        1
        for i, (s, e) in enumerate(live)
        if any(j != i and max(s, s2) < min(e, e2) for j, (s2, e2) in enumerate(live))
    )
    moments = {s for s, _ in live}
    peak = max((sum(1 for s, e in live if s <= m < e) for m in moments), default=0)
    return contended, peak


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 20), st.integers(0, 8), st.sampled_from(["ok", "sold out"])),
        min_size=1,
        max_size=12,
    ),
    st.integers(0, 6),
)
def test_contention_matches_a_brute_force_count(raw: list[Any], initial: int) -> None:
    ops = [Op(kind, float(s), float(s + d)) for s, d, kind in raw]
    ops = [o._replace(seat=1) if o.kind == "ok" else o for o in ops]
    got = contention_of(table(ops), initial)
    oks = sorted(o.done for o in ops if o.kind == "ok")
    cut = -INF if initial == 0 else (oks[initial - 1] if len(oks) >= initial else INF)
    want = brute_force([(o.start, o.done) for o in ops], cut)
    assert (got.contended, got.peak) == want
    assert got.operations == len(ops)


def test_a_sale_after_the_stock_ran_out_is_no_race() -> None:
    # Both sales overlap, but only after the only ticket had gone.
    report = evaluate(table([Op("ok", 0, 1, 1), Op("sold out", 2, 4), Op("sold out", 3, 5)]), 1, 0)
    assert report.contention.contended == 0 and not report.passed and report.unproven
    assert "no two purchases overlapped while tickets were left" in (report.untested or "")
    # The same, with the two sold-outs beginning before the sale completed: they raced.
    raced = evaluate(
        table([Op("ok", 0, 2.5, 1), Op("sold out", 2, 4), Op("sold out", 2.2, 5)]), 1, 0
    )
    assert raced.passed and raced.contention.contended == 3


def test_an_unknown_outcome_is_in_flight_until_its_info_a_pending_one_to_the_end() -> None:
    ops = table([Op("ok", 0, 1, 2), Op("info", 0.5), Op("ok", 90, 91, 1)])
    assert contention_of(ops, 2).contended == 3  # the info came at 99
    early = Operations(3, 10.0)
    for ev in (
        {"type": "invoke", "buyer": 0, "t": 10.0},
        {"type": "invoke", "buyer": 1, "t": 10.5},
        {"type": "info", "buyer": 1, "reason": "no outcome reported", "t": 10.6},
        {"type": "ok", "buyer": 0, "seat": 2, "t": 11.0},
        {"type": "invoke", "buyer": 2, "t": 20.0},
        {"type": "ok", "buyer": 2, "seat": 1, "t": 21.0},
    ):
        early.add(ev)  # type: ignore[arg-type]
    assert contention_of(early, 2).contended == 2  # not buyer 2: the info was long over
    pending = table([Op("ok", 0, 1, 2), Op("pending", 0.5), Op("ok", 90, 91, 1)])
    assert contention_of(pending, 2).contended == 3


def queue_ops(batches: list[tuple[int, float, float, int]]) -> Operations:
    """Orders sold by clerks in batches: (clerk, began, done, orders)."""
    ops = Operations(sum(n for *_, n in batches), 10.0, "order")
    number = 0
    for clerk, began, done, n in batches:
        for _ in range(n):
            ops.add({"type": "invoke", "buyer": number, "t": 10.0, "producer": 0, "t_start": 10.0})
            ops.add(
                {
                    "type": "fail",
                    "buyer": number,
                    "reason": "sold out",
                    "clerk": clerk,
                    "t_search": 10 + began,
                    "t": 10 + done,
                }
            )
            number += 1
    return ops


def test_one_clerk_s_batch_is_one_sale_and_only_clerks_race() -> None:
    one = queue_ops([(0, 1, 2, 10), (0, 2, 3, 10)])
    assert contention_of(one, 5).as_dict() == {"operations": 20, "contended": 0, "peak": 1}
    two = queue_ops([(0, 1, 2, 10), (1, 1.5, 2.5, 10)])
    assert contention_of(two, 5).as_dict() == {"operations": 20, "contended": 20, "peak": 2}


def host_history(path: Path, run_id: str, offset: float, start: float) -> Any:
    lines = lines_of(2, 1, [Op("ok", start, start + 0.01, 2 if run_id == "a" else 1)])
    lines[0] |= {"run_id": run_id, "clock": {"offset": offset, "uncertainty": 0.02}}
    return read(write(path, lines))


def test_a_named_sale_counts_only_the_overlaps_its_clocks_make_certain(tmp_path: Path) -> None:
    # Two hosts' purchases 5 ms apart in 10 ms spans: they overlap on the
    # server's clock, but each host's clock is known to 20 ms only.
    a = host_history(tmp_path / "a.jsonl", "a", 0.0, 0.0)
    b = host_history(tmp_path / "b.jsonl", "b", 0.0, 0.005)
    report = check_sale([a, b], final=0)
    assert report.contention.contended == 0 and report.unproven and not report.failures()


def test_check_of_an_uncontended_history_is_not_proven(tmp_path: Path, invoke: Any) -> None:
    path = write(tmp_path / "h.jsonl", lines_of(3, 1, [Op("ok", 0, 1, 3), Op("ok", 2, 3, 2)]))
    assert check_history(read(path)).contention.contended == 0
    result = invoke("check", str(path), "--json")
    doc = json.loads(result.output)
    assert result.exit_code == 5 and doc["unproven"] and not doc["passed"]
    assert doc["contention"] == {"operations": 2, "contended": 0, "peak": 1}
    assert "nothing raced" in doc["uncontended"]
    assert "NOT PROVEN: no two purchases overlapped" in invoke("check", str(path)).output


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "args, why",
    [
        (["buy", "--buyers", "1", "-t", "5", "--lock", "none"], "one purchase cannot race"),
        (
            ["buy", "-n", "20", "-t", "40", "--no-delay", "--workers", "1", "--concurrency", "1"],
            "no two purchases overlapped",
        ),
        (["queue", "--clerks", "1", "--orders", "10", "-t", "20"], "no two clerks' sales"),
        (["queue", "--clerks", "1", "--batch", "5", "--orders", "10", "-t", "20"], "clerks'"),
    ],
)
def test_a_sale_that_raced_nothing_is_not_proven(invoke: Any, args: list[str], why: str) -> None:
    result = invoke(*args, "--json")
    doc = json.loads(result.output)
    assert result.exit_code == 5, result.output[-400:]
    assert doc["passed"] is False and doc["unproven"] is True
    assert doc["contention"]["contended"] == 0 and why in doc["uncontended"]
    text = invoke(*args).output
    assert "NOT PROVEN" in text and "PASSED" not in text and "contention" in text


@pytest.mark.timeout(120)
def test_an_empty_store_is_not_proven_even_unlocked(invoke: Any) -> None:
    assert invoke("init", "--tickets", "0").exit_code == 0
    result = invoke("buy", "--buyers", "20", "--lock", "none", "--json")
    doc = json.loads(result.output)
    assert result.exit_code == 5 and not doc["passed"] and "no tickets" in doc["nothing_tested"]


@pytest.mark.timeout(120)
def test_a_raced_sale_says_how_much(invoke: Any) -> None:
    result = invoke("buy", "--buyers", "20", "-t", "10", "--json")
    doc = json.loads(result.output)
    assert result.exit_code == 0 and doc["passed"]
    assert doc["contention"]["contended"] >= 2 and doc["contention"]["peak"] >= 2
    assert doc["uncontended"] is None
    text = invoke("buy", "--buyers", "20", "-t", "10").output
    assert "purchases overlapped another; peak" in text


@pytest.mark.timeout(120)
def test_an_expected_oversell_that_could_not_race_is_not_proven_not_failed(invoke: Any) -> None:
    result = invoke("race", "--buyers", "1", "-t", "3", "--expect-oversell", "--json")
    doc = json.loads(result.stdout)
    assert result.exit_code == 5 and not doc["passed"]
    assert any("one purchase cannot race" in r for r in doc["reasons"])
