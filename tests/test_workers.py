"""Buyers multiplexed on worker processes (``--workers``): every strategy
keeps its meaning per buyer, a worker's death is accounted for buyer by
buyer, and a big sale stays small in the parent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from helpers import spec_of
from tickets.check.history import read
from tickets.engine.chaos import Chaos
from tickets.engine.child.plan import Delays
from tickets.engine.config import BuyConfig, ConfigError

pytestmark = pytest.mark.timeout(120)

#: every buyer's delays overlap with its worker's other buyers'
RACY = Delays(0.002, 0.02)


def check_exit(history: Path) -> int:
    done = subprocess.run(
        [sys.executable, "-m", "tickets", "check", str(history), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode


@pytest.mark.parametrize("strategy", ["process", "file", "flock"])
@pytest.mark.parametrize("seed", [0, 1])
def test_excluding_strategies_never_oversell_on_workers(
    sale: Any, strategy: str, seed: int
) -> None:
    result = sale(
        buyers=400,
        tickets=150,
        strategy=strategy,
        workers=2,
        concurrency=16,
        seed=seed,
        delays=Delays(0.002, 0.001),
    )
    report = result.report
    assert result.passed, result.report.failures()
    assert (report.sold, report.failed, report.unknown, result.remaining) == (150, 250, 0, 0)
    assert result.config.workers == 2 and result.workers is not None
    assert [w["buyers"] for w in result.workers] == [200, 200]
    assert sum(w["sold"] for w in result.workers) == 150
    assert check_exit(result.history) == 0


@pytest.mark.parametrize("strategy", ["none", "per-buyer"])
def test_no_exclusion_still_oversells_on_workers(sale: Any, strategy: str) -> None:
    result = sale(buyers=200, tickets=20, strategy=strategy, workers=2, concurrency=50, delays=RACY)
    assert result.report.oversold > 0 and not result.passed
    assert check_exit(result.history) == 1  # the history says the same


@pytest.mark.parametrize("strategy", ["file", "flock"])
def test_two_buyers_of_one_worker_exclude_each_other(sale: Any, strategy: str) -> None:
    """One worker, two buyers at once: each holds its own descriptor, so
    the second waits in the lock for the first one's write delay."""
    result = sale(
        buyers=2, tickets=5, strategy=strategy, workers=1, concurrency=2, delays=Delays(0.0, 0.2)
    )
    assert result.passed and result.report.sold == 2 and result.remaining == 3
    waits = sorted(row.lock_wait or 0.0 for row in result.rows)
    assert waits[1] >= 0.08  # the write delay is drawn from 0.1 to 0.2 s
    seats = sorted(row.seat for row in result.rows)
    assert seats == [4, 5]  # and never both from one count, as without a lock:
    unlocked = sale(
        buyers=2, tickets=5, strategy="none", workers=1, concurrency=2, delays=Delays(0.0, 0.2)
    )
    assert [row.seat for row in unlocked.rows] == [5, 5]


@pytest.mark.parametrize("strategy", ["flock", "file", "process"])
def test_a_thread_waiting_for_the_lock_times_out(sale: Any, strategy: str) -> None:
    """A buyer holds the lock for 2 s (a chaos pause): the other buyers of
    its worker give up after the lock timeout (under flock a signal ends
    each thread's wait in the kernel), and the run ends."""
    t = time.monotonic()
    result = sale(
        buyers=3,
        tickets=5,
        strategy=strategy,
        workers=1,
        concurrency=3,
        lock_timeout=0.3,
        delays=Delays.none(),
        chaos=Chaos(kill_rate=0.0, pause_rate=1.0, pause_length=2.0),
    )
    took = time.monotonic() - t
    reasons = sorted((row.reason or "ok").partition(":")[0] for row in result.rows)
    assert reasons == ["busy", "busy", "ok"]
    busy = [row for row in result.rows if (row.reason or "").startswith("busy: ")]
    assert all("was not acquired within 0.3s" in (row.reason or "") for row in busy)
    assert all(0.25 <= (row.total or 0) < 1.5 for row in busy)
    # the busy two never reached the stock: one purchase raced nobody
    assert result.report.sold == 1 and result.report.uncontended and took < 10
    assert not result.report.failures()


def test_a_killed_worker_leaves_no_buyer_without_an_outcome(sale: Any) -> None:
    """Chaos kills both workers mid-share: each of their buyers that began is
    unknown, each that did not never started, and the history checks the same."""
    result = sale(
        buyers=600,
        tickets=600,
        workers=2,
        concurrency=8,
        strategy="flock",
        chaos=Chaos(kill_rate=1.0, pause_rate=0.0, seed=3),
    )  # every kill point is reached
    assert result.workers is not None
    assert [w["exit"] for w in result.workers] == ["killed by SIGKILL"] * 2
    assert result.chaos is not None and result.chaos["killed"] == 2
    events = read(result.history).ops
    assert events.count(1) == 0  # nothing left pending
    never = {k: n for k, n in (result.outcomes or {}).items() if "never started" in k}
    assert never and all("its worker killed by SIGKILL" in k for k in never)
    report = result.report
    assert report.sold + report.failed + report.unknown + sum(never.values()) == 600
    assert result.report.unknown >= 1 and result.report.oversold == 0
    assert check_exit(result.history) == (0 if result.passed else 1)


def test_paused_workers_still_finish(sale: Any) -> None:
    """SIGSTOP and SIGCONT of whole workers (every buyer in them stops)."""
    result = sale(
        buyers=900,
        tickets=900,
        workers=3,
        concurrency=8,
        strategy="flock",
        chaos=Chaos(kill_rate=0.0, pause_rate=1.0, seed=1),
    )
    assert result.passed and result.report.sold == 900
    assert result.chaos is not None and result.chaos["paused"] >= 1


def test_a_big_sale_runs_on_workers_by_itself(sale: Any, invoke: Any) -> None:
    """Above 1,000 buyers the sale goes on workers unasked, says so, and
    keeps rows only for the buyers worth a look; its timeline is binned."""
    result = sale(buyers=20_000, tickets=300, delays=Delays.none(), stall_timeout=60)
    assert result.config.workers == len(os.sched_getaffinity(0))
    assert result.passed and result.report.sold == 300
    assert result.outcomes == {"ok": 300, "fail: sold out": 19_700}
    assert not result.every_row and len(result.rows) <= 20
    assert check_exit(result.history) == 0
    drawn = invoke("timeline", str(result.history), "--width", "100")
    assert drawn.exit_code == 0
    assert "every 20,000 operations, per" in drawn.output
    strips = {line.split(" (≤")[0] for line in drawn.output.splitlines() if " (≤" in line}
    assert strips == {"sold", "no ticket", "active"}  # no unknown outcome: no strip for it
    refused = invoke("timeline", str(result.history), "--all")
    assert refused.exit_code == 2 and "--all draws at most 5,000 rows" in refused.output


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"buyers": 6000, "workers": 0}, "at most 5,000 buyers"),
        (
            {"buyers": 10, "workers": 2, "command": "true", "strategy": "none"},
            "--workers does not apply to --exec",
        ),
        ({"buyers": 10, "workers": 2, "start_method": "spawn"}, "needs --start-method fork"),
        ({"buyers": 10, "workers": 300}, "workers must be"),
        ({"buyers": 10, "workers": 1, "concurrency": 0}, "concurrency must be"),
        ({"buyers": 10, "concurrency": 5}, "--concurrency is for buyers on workers"),
        ({"buyers": 10_000_001}, "buyers must be"),
    ],
)
def test_bad_worker_settings_are_refused(store: Path, fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        BuyConfig(store=spec_of(store), **fields)


def test_all_is_refused_for_a_big_sale(invoke: Any, store: Path) -> None:
    result = invoke("--db", str(store), "buy", "--buyers", "6000", "--all")
    assert result.exit_code == 2 and "--all shows at most 5,000 buyers" in result.output
    assert not store.exists()


def test_the_json_document_of_a_sale_on_workers(invoke: Any, store: Path) -> None:
    result = invoke(
        "--db",
        str(store),
        "buy",
        "--buyers",
        "40",
        "--tickets",
        "10",
        "--workers",
        "2",
        "--concurrency",
        "5",
        "--no-delay",
        "--json",
    )
    doc = json.loads(result.stdout)
    assert doc["passed"] and doc["workers"] == 2 and doc["concurrency"] == 5
    assert [w["buyers"] for w in doc["per_worker"]] == [20, 20]
    assert doc["outcomes"] == {"ok": 10, "fail: sold out": 30} and doc["all_buyers"]
    assert len(doc["buyers"]) == 40


def test_the_real_stores_sell_exactly_on_workers(sale: Any, real_store: str) -> None:
    """Each buyer of a worker opens its own connection: the engines' own
    strategies and a file lock stay exact on SQLite and a real Redis server."""
    native = ["atomic", "transaction"] + (["lease"] if real_store.startswith("redis") else [])
    if real_store.startswith("postgresql"):
        native = ["atomic", "for-update", "advisory"]
    for strategy in [*native, "flock"]:
        result = sale(
            store=real_store,
            buyers=300,
            tickets=100,
            strategy=strategy,
            workers=2,
            concurrency=8,
            delays=Delays(0.001, 0.001),
        )
        report = result.report
        assert result.passed, (strategy, report.failures())
        assert (report.sold, report.unknown, result.remaining) == (100, 0, 0), strategy
