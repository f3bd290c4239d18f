"""`tickets queue`: the producer-consumer model on real processes."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from helpers import assert_run_fields, kept, read_json_lines, spec_of
from tickets.check.history import read
from tickets.check.verdict import check_history
from tickets.engine.child.plan import Delays
from tickets.engine.config import ConfigError, QueueConfig
from tickets.engine.ledger import RunResult
from tickets.engine.queue import run_queue

Invoke = Callable[..., Result]


@pytest.fixture
def orders(store: Path) -> Callable[..., RunResult]:
    def run(**kw: Any) -> RunResult:
        kw.setdefault("producers", 3)
        kw.setdefault("orders", 10)
        kw.setdefault("clerks", 2)
        kw.setdefault("queue_size", 5)
        kw.setdefault("tickets", 20)
        kw.setdefault("delays", Delays(0.002, 0.002))
        kw.setdefault("stall_timeout", 20.0)
        return run_queue(QueueConfig(store=spec_of(store), **kw))

    return run


def assert_accounting(result: RunResult) -> None:
    """submitted == accepted + rejected, and every order has exactly one outcome."""
    q = result.queue_stats()
    assert q.submitted == q.accepted + q.rejected == len(result.rows)
    assert sum(p["submitted"] for p in q.producers) == q.submitted
    events = read_json_lines(kept(result))
    invoked = Counter(e["buyer"] for e in events if e["type"] == "invoke")
    answered = Counter(e["buyer"] for e in events if e["type"] in ("ok", "fail", "info"))
    assert set(invoked) == set(answered) == {r.number for r in result.rows}
    assert max(invoked.values()) == 1 and max(answered.values()) == 1
    assert all(r.result != "pending" for r in result.rows)
    # The run's verdict is tickets check's verdict on its history, check for
    # check; the history's end line also says if the run was stopped, which
    # the run's own result carries beside its report (and exits 4 for).
    assert check_history(read(kept(result))) == replace(result.report, aborted=result.aborted)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("shutdown", ["sentinel", "join"])
def test_both_shutdowns_sell_exactly_and_lose_nothing(
    orders: Callable[..., RunResult], shutdown: str
) -> None:
    result = orders(shutdown=shutdown)
    assert_accounting(result)
    q = result.queue_stats()
    assert (q.submitted, q.accepted, q.rejected, q.left_in_queue) == (30, 30, 0, 0)
    assert (result.report.sold, result.remaining, result.report.oversold) == (20, 0, 0)
    assert result.passed and result.aborted is None
    assert Counter(r.reason for r in result.rows if r.result == "fail") == {"sold out": 10}
    assert sum(c["taken"] for c in q.clerks) == 30
    assert sum(c["sold"] for c in q.clerks) == 20


@pytest.mark.timeout(60)
@pytest.mark.parametrize("put_timeout", [0.0, 0.005])
def test_full_queue_rejects_busy(orders: Callable[..., RunResult], put_timeout: float) -> None:
    # A queue of 1 and a slow clerk: producers meet queue.Full.
    result = orders(queue_size=1, clerks=2, put_timeout=put_timeout, delays=Delays(0.0, 0.03))
    assert_accounting(result)
    q = result.queue_stats()
    assert q.rejected > 0 and q.accepted > 0
    assert all(
        r.reason and r.reason.startswith("busy")
        for r in result.rows
        if r.result == "fail" and r.clerk is None
    )
    # With no put timeout nearly every order may be turned away: a sale of
    # one order races nothing, and says so; no check fails either way.
    assert not result.report.failures() and (result.passed or result.report.uncontended)


@pytest.mark.timeout(60)
def test_idle_clerks_go_home_and_nothing_is_lost(orders: Callable[..., RunResult]) -> None:
    # Producers pause up to 300 ms between orders; clerks idle for 50 ms leave (queue.Empty).
    result = orders(
        producers=1, orders=4, queue_size=10, get_timeout=0.05, delays=Delays(0.3, 0.001)
    )
    assert_accounting(result)
    assert all("exited with code 0" == c["exit"] for c in result.queue_stats().clerks)
    left = [r for r in result.rows if (r.reason or "").startswith("unsold")]
    assert len(left) == result.queue_stats().left_in_queue
    if result.aborted is None:  # orders that came after every clerk left stay unsold
        assert result.report.sold + len(left) == 4


@pytest.mark.timeout(60)
def test_killed_clerk_under_join_does_not_hang(orders: Callable[..., RunResult]) -> None:
    # flock, the kernel's queue, hands the lock to the waiting clerk at once, so
    # both clerks sell and clerk 1 reaches its third order; a polling lock can
    # let one clerk take every order in a row.
    result = orders(shutdown="join", strategy="flock", kill_at=((1, 2, "written"),))
    assert result.aborted is not None and "join() would wait forever" in result.aborted
    assert "clerk 1 died (killed by SIGKILL)" in result.notes
    unknown = [r for r in result.rows if r.result == "info"]
    assert len(unknown) == 1 and unknown[0].clerk == 1
    assert "with it in hand" in (unknown[0].reason or "")
    assert_accounting(result)
    # The write landed before the kill: the unknown order covers the count;
    # no check fails, and a run cut short is not proven.
    assert not result.report.failures() and result.report.unproven


@pytest.mark.timeout(60)
def test_killed_clerk_under_sentinel_leaves_an_unknown(orders: Callable[..., RunResult]) -> None:
    result = orders(strategy="flock", kill_at=((0, 3, "locked"),))  # see the join test
    assert result.aborted is None
    assert result.report.unknown == 1 and result.report.passed
    assert_accounting(result)
    assert result.queue_stats().left_in_queue == 0


@pytest.mark.timeout(60)
def test_one_clerk_serialises_even_without_a_lock(orders: Callable[..., RunResult]) -> None:
    result = orders(clerks=1, strategy="none", delays=Delays(0.0, 0.01))
    assert (result.report.sold, result.report.oversold) == (20, 0)
    # ... and tested nothing: one clerk races nobody
    assert not result.passed and result.report.unproven and not result.report.failures()
    assert result.report.contention.contended == 0
    assert "no two clerks' sales overlapped" in (result.report.uncontended or "")


@pytest.mark.timeout(60)
def test_two_clerks_without_a_lock_oversell(orders: Callable[..., RunResult]) -> None:
    result = orders(clerks=2, strategy="none", delays=Delays(0.0, 0.03), queue_size=30)
    assert result.report.oversold > 0
    assert not result.passed
    assert not check_history(read(kept(result))).passed


@pytest.mark.timeout(60)
def test_batch_group_commit(orders: Callable[..., RunResult]) -> None:
    result = orders(
        producers=2,
        orders=200,
        clerks=2,
        queue_size=100,
        tickets=300,
        batch=50,
        delays=Delays.none(),
    )
    assert_accounting(result)
    assert (result.report.sold, result.remaining, result.report.oversold) == (300, 0, 0)
    events = read_json_lines(kept(result))
    takes = [e for e in events if e["type"] == "take"]
    assert len(takes) < 400 and max(len(t["orders"]) for t in takes) > 1
    assert all(e["t_locked"] <= e["t"] for e in events if e["type"] == "ok")


def test_config_errors(store: Path) -> None:
    base = {"store": store, "producers": 1, "orders": 1, "clerks": 1, "queue_size": 1}
    for change, message in (
        ({"producers": 0}, "producers"),
        ({"queue_size": 0}, "queue size"),
        ({"batch": 1000}, "batch"),
        ({"shutdown": "hope"}, "shutdown"),
        ({"get_timeout": 1.0, "shutdown": "join"}, "join"),
        ({"put_timeout": -1.0}, "put timeout"),
    ):
        with pytest.raises(ConfigError, match=message):
            run_queue(QueueConfig(**(base | change)))  # type: ignore[arg-type]
    assert not store.exists()


@pytest.mark.timeout(60)
def test_cli_queue_json_and_history_tools(invoke: Invoke) -> None:
    result = invoke(
        "queue",
        "--producers",
        "2",
        "--orders",
        "6",
        "--clerks",
        "2",
        "--queue-size",
        "3",
        "--tickets",
        "8",
        "--search-delay",
        "1",
        "--write-delay",
        "1",
        "--json",
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert_run_fields(doc)
    for key in ("producers", "clerks", "submitted", "accepted", "rejected"):
        assert key in doc, key
    assert (doc["submitted"], doc["accepted"], doc["rejected"], doc["sold"]) == (12, 12, 0, 8)
    assert [p["submitted"] for p in doc["producers"]] == [6, 6]
    assert invoke("check", doc["history"]).exit_code == 0
    out = invoke("timeline", doc["history"], "--width", "100").output
    assert "order" in out and "waiting in the queue" in out


@pytest.mark.timeout(60)
def test_cli_queue_table_and_oversell_exit(invoke: Invoke) -> None:
    result = invoke(
        "queue",
        "--clerks",
        "2",
        "--lock",
        "none",
        "--queue-size",
        "30",
        "--search-delay",
        "0",
        "--write-delay",
        "30",
    )
    assert result.exit_code == 1
    for needle in ("producers", "clerks", "orders taken", "rejected busy", "oversold", "FAILED"):
        assert needle in result.output


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--producers", "0"], "--producers"),
        (["--clerks", "-1"], "--clerks"),
        (["--queue-size", "0"], "--queue-size"),
        (["--batch", "0"], "--batch"),
        (["--put-timeout", "-1"], "--put-timeout"),
        (["--get-timeout", "0"], "--get-timeout"),
        (["--shutdown", "maybe"], "--shutdown"),
        (["--shutdown", "join", "--get-timeout", "1"], "--get-timeout"),
    ],
)
def test_cli_queue_usage_errors(
    invoke: Invoke, tmp_path: Path, args: list[str], needle: str
) -> None:
    result = invoke("queue", *args)
    assert result.exit_code == 2, result.output
    assert needle in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.timeout(120)
@pytest.mark.parametrize("shutdown", ["sentinel", "join"])
def test_hundreds_of_producers_on_workers_lose_nothing(
    orders: Callable[..., RunResult], shutdown: str
) -> None:
    """Over 64 producers run as threads of a worker per core, all submitting
    at once; the accounting and the checks are those of producer processes."""
    result = orders(
        producers=300, orders=4, clerks=3, queue_size=50, tickets=1000, shutdown=shutdown, batch=10
    )
    assert isinstance(result.config, QueueConfig) and result.config.workers == 2 and result.passed
    assert result.report.sold == 1000 and result.remaining == 0
    assert_accounting(result)
    producers = result.queue_stats().producers
    assert len(producers) == 300 and all(p["submitted"] == 4 for p in producers)
    assert len({p["pid"] for p in producers}) == 2  # their two workers


@pytest.mark.timeout(60)
def test_producers_on_workers_reject_busy_orders_and_the_history_checks(
    orders: Callable[..., RunResult],
) -> None:
    result = orders(
        producers=200, orders=10, clerks=2, queue_size=2, put_timeout=0, tickets=2000, workers=2
    )
    assert result.passed and result.queue_stats().rejected > 0
    assert_accounting(result)


def test_a_process_per_producer_stops_at_64(store: Path) -> None:
    with pytest.raises(ConfigError, match="a process per producer takes at most 64"):
        QueueConfig(store=spec_of(store), producers=65, orders=1, clerks=1, queue_size=1, workers=0)
