"""Faults: kills, pauses, dead lock holders, stalls, concurrent invocations."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from helpers import read_json_lines, spec_of
from tickets.check.history import read
from tickets.check.sale import check_histories
from tickets.engine.chaos import Chaos
from tickets.engine.child.plan import Delays
from tickets.engine.child.session import BUYER_KILL_POINTS as BUYER_POINTS
from tickets.engine.ledger import RunResult
from tickets.locking.strategies import STRATEGIES
from tickets.stores import json_file as st
from tickets.stores.json_file import lock_path

Sale = Callable[..., RunResult]
Invoke = Callable[..., Result]


def chaos_run(sale: Sale, seed: int, strategy: str = "file", **kw: object) -> RunResult:
    kw.setdefault("buyers", 30)
    kw.setdefault("tickets", 10)
    return sale(strategy=strategy, seed=seed, chaos=Chaos(0.3, 0.3, seed), **kw)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_chaos_never_breaks_the_invariants_with_the_file_lock(
    sale: Sale, store: Path, seed: int
) -> None:
    result = chaos_run(sale, seed)
    c = result.chaos
    assert c is not None and c["kills_planned"] > 0 and c["killed"] > 0
    assert st.load(store) == result.remaining  # valid JSON, whatever was killed
    assert result.report.passed, [x.detail for x in result.report.failures()]
    assert result.report.oversold == 0
    # Every buyer killed before reporting is unknown, named as killed.
    killed = [r for r in result.rows if r.result == "info"]
    assert len(killed) == result.report.unknown <= c["killed"]
    assert all("SIGKILL" in (r.reason or "") for r in killed)


def test_chaos_is_reproducible() -> None:
    a, b = Chaos(0.3, 0.3, 7), Chaos(0.3, 0.3, 7)
    assert a.buyer_kills(100) == b.buyer_kills(100)
    assert a.pauses(range(100)) == b.pauses(range(100))
    assert a.buyer_kills(100) != Chaos(0.3, 0.3, 8).buyer_kills(100)
    assert {p for _, p in a.buyer_kills(1000)} == set(BUYER_POINTS)


@pytest.mark.timeout(120)
def test_same_seed_kills_the_same_buyers(sale: Sale, store: Path) -> None:
    runs = [chaos_run(sale, 5, tickets=100) for _ in range(2)]
    dead = [sorted(r.number for r in run.rows if r.result == "info") for run in runs]
    assert dead[0] == dead[1] and dead[0]


@pytest.mark.timeout(120)
def test_orphan_temp_files_are_cleaned_at_the_end_and_the_next_start(
    sale: Sale, store: Path
) -> None:
    seed = next(
        s
        for s in range(200)
        if sum(p == "writing" for _, p in Chaos(0.5, 0, s).buyer_kills(20)) >= 3
    )
    # Plenty of stock: every doomed buyer reaches its kill point; the others sell.
    result = sale(buyers=20, tickets=100, seed=seed, chaos=Chaos(0.5, 0.0, seed))
    assert result.chaos is not None and result.chaos["killed"] >= 3 and result.report.sold > 0
    assert st.orphan_temps(store) == []  # the run that saw them die swept them
    assert result.report.passed  # the half-written counts never reached the store
    # A run killed before its end leaves them: the next start sweeps them.
    orphan = store.parent / f".{store.name}.999999999.0123456789ab.tmp"
    orphan.write_text('{"count": 7')
    sale(buyers=2, tickets=None)
    assert st.orphan_temps(store) == [] and not orphan.exists()


def dies_holding_the_lock(buyers: int) -> int:
    """A seed whose first doomed buyer dies holding the lock (kill point ``locked``)."""
    return next(s for s in range(100) if Chaos(0.5, 0, s).buyer_kills(buyers)[0][1] == "locked")


@pytest.mark.timeout(60)
def test_dead_holder_of_a_process_lock_stops_the_run(invoke: Invoke, store: Path) -> None:
    # More tickets than buyers: every buyer goes for the lock (none walks away
    # at its search), so the doomed ones die holding it, every run.
    seed = dies_holding_the_lock(30)
    t = time.monotonic()
    result = invoke(
        "buy",
        "--buyers",
        "30",
        "--tickets",
        "100",
        "--lock",
        "process",
        "--seed",
        str(seed),
        "--chaos",
        "--kill-rate",
        "0.5",
        "--pause-rate",
        "0",
        "--json",
    )
    elapsed = time.monotonic() - t
    doc = json.loads(result.output)
    assert result.exit_code == 4, doc["aborted"]
    assert "multiprocessing.Lock" in doc["aborted"]
    assert elapsed < 10  # well inside the 10 s lock timeout of the waiting buyers
    assert doc["oversold"] == 0 and st.load(store) == doc["remaining"]
    stopped = [b for b in doc["buyers"] if b["reason"] and "left held by a dead" in b["reason"]]
    assert stopped and all(b["result"] == "fail" for b in stopped)


@pytest.mark.timeout(60)
def test_dead_holder_of_a_process_lock_stops_the_queue(store: Path) -> None:
    """A clerk dead holding the run's process lock stops the queue run too
    (it used to crash: the queue mode had no way to probe its lock)."""
    from tickets.engine.config import QueueConfig
    from tickets.engine.queue import run_queue

    config = QueueConfig(
        store=spec_of(store),
        producers=2,
        orders=10,
        clerks=3,
        queue_size=5,
        tickets=20,
        strategy=STRATEGIES["process"],
        kill_at=tuple((c, 1, "locked") for c in range(3)),
        delays=Delays(0.001, 0.001),
    )
    # whichever clerk gets an order first dies holding the lock: under load one
    # clerk may take every order
    result = run_queue(config)
    assert result.aborted is not None and "multiprocessing.Lock" in result.aborted
    assert any(
        n.startswith("clerk ") and n.endswith("died (killed by SIGKILL)") for n in result.notes
    ), result.notes
    assert result.report.oversold == 0 and st.load(store) == result.remaining


@pytest.mark.timeout(60)
@pytest.mark.parametrize("lock", ["file", "flock"])
def test_dead_holder_of_a_file_lock_does_not_stop_the_run(invoke: Invoke, lock: str) -> None:
    seed = dies_holding_the_lock(30)
    result = invoke(
        "buy",
        "--buyers",
        "30",
        "--tickets",
        "100",
        "--lock",
        lock,
        "--seed",
        str(seed),
        "--chaos",
        "--kill-rate",
        "0.5",
        "--json",
    )
    doc = json.loads(result.output)
    assert result.exit_code == 0 and doc["aborted"] is None and doc["passed"]
    assert doc["chaos"]["killed"] > 0


@pytest.mark.timeout(60)
def test_watchdog_stops_a_stalled_run(sale: Sale, store: Path) -> None:
    held: list[int] = []

    def grab(_: object) -> None:  # once buyers are searching, take their lock away
        if not held:
            fd = os.open(lock_path(store), os.O_RDWR)
            fcntl.flock(fd, fcntl.LOCK_EX)
            held.append(fd)

    t = time.monotonic()
    try:
        result = sale(
            buyers=5,
            tickets=5,
            delays=Delays(0.3, 0.001),
            lock_timeout=60,
            stall_timeout=1.0,
            progress=grab,
        )
    finally:
        for fd in held:
            os.close(fd)
    assert time.monotonic() - t < 15
    assert result.aborted and "watchdog" in result.aborted
    # Whoever got through before the lock was taken sold; the rest were stopped.
    stopped = [r for r in result.rows if r.result == "info"]
    assert stopped and all("stopped by the watchdog" in (r.reason or "") for r in stopped)
    assert result.report.unknown + result.report.sold == 5
    assert result.remaining == 5 - result.report.sold


@pytest.mark.timeout(120)
def test_chaos_in_the_queue_mode(invoke: Invoke) -> None:
    # flock hands the lock to waiting clerks in turn, so every doomed clerk
    # reaches its kill point; under the polling file lock one clerk can take
    # the orders of the others (make stress runs chaos queues with it).
    result = invoke(
        "queue",
        "--lock",
        "flock",
        "--clerks",
        "4",
        "--chaos",
        "--kill-rate",
        "0.5",
        "--seed",
        "3",
        "--tickets",
        "50",
        "--orders",
        "30",
        "--json",
    )
    doc = json.loads(result.output)
    assert result.exit_code == 0, result.output
    assert doc["chaos"]["killed"] >= 1 and doc["passed"]
    assert doc["submitted"] == doc["accepted"] + doc["rejected"]


def run_concurrently(store: Path, locks: list[str], extra: list[str]) -> list[dict[str, object]]:
    """One `tickets buy --keep-stock` per lock, all at once on one store."""
    env = {**os.environ, "TICKETS_DB": str(store)}
    cmd = [sys.executable, "-m", "tickets", "buy", "--keep-stock", "--json", *extra]
    procs = [
        subprocess.Popen(
            [*cmd, "--lock", lock],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for lock in locks
    ]
    docs = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode in (0, 1, 5), err  # 5: it began with the stock gone
        docs.append(json.loads(out))
    return docs


@pytest.mark.timeout(240)
@pytest.mark.parametrize(
    "locks", [["file"] * 3, ["flock"] * 3, ["file", "flock", "file", "flock"]], ids="+".join
)
def test_concurrent_invocations_with_file_locks_never_oversell(
    store: Path, locks: list[str]
) -> None:
    """filelock and the kernel's flock take the same lock: mixed, they still exclude."""
    st.save(store, 30)
    docs = run_concurrently(store, locks, ["--buyers", "20", "--write-delay", "10"])
    report = check_histories([read(str(d["history"])) for d in docs])
    assert report.passed and report.sold == 30 and report.remaining == 0
    assert sum(int(str(d["sold"])) for d in docs) == 30


@pytest.mark.timeout(240)
def test_concurrent_invocations_with_process_locks_oversell_across_runs(store: Path) -> None:
    st.save(store, 60)
    docs = run_concurrently(
        store, ["process"] * 3, ["--buyers", "20", "--search-delay", "0", "--write-delay", "40"]
    )
    # Each run alone looks clean or nearly so; together they sold seats twice.
    report = check_histories([read(str(d["history"])) for d in docs])
    assert not report.passed and report.oversold > 0 and report.double_sold


@pytest.mark.timeout(120)
def test_a_restock_waits_for_the_sale_it_would_spoil(store: Path) -> None:
    """init during a --keep-stock sale used to restock mid-sale: the sale's
    verdict then said 'double-sold, lost updates', blaming the lock."""
    st.save(store, 30)
    env = {**os.environ, "TICKETS_DB": str(store)}
    sale = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tickets",
            "buy",
            "--keep-stock",
            "--buyers",
            "20",
            "--search-delay",
            "0",
            "--write-delay",
            "60",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    history = store.parent / "history"
    deadline = time.monotonic() + 30
    while not list(history.glob("*.jsonl")) and time.monotonic() < deadline:
        time.sleep(0.01)
    refused = subprocess.run(
        [sys.executable, "-m", "tickets", "init", "--tickets", "30", "--lock-timeout", "0.2"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    waited = subprocess.run(
        [sys.executable, "-m", "tickets", "init", "--tickets", "30", "--lock-timeout", "60"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    out, err = sale.communicate(timeout=120)
    assert refused.returncode == 3 and "another sale is running" in refused.stderr
    assert waited.returncode == 0, waited.stderr
    doc = json.loads(out)
    assert doc["passed"], doc["checks"]  # the sale was judged on its own
    assert st.load(store) == 30  # and the restock came after it


def blocked_on_a_lock(pid: int) -> bool:
    """Is the process waiting on a futex (a multiprocessing.Lock), not running?"""
    try:
        with open(f"/proc/{pid}/wchan") as wchan:
            return "futex" in wchan.read()
    except OSError:
        return False


@pytest.mark.timeout(120)
@pytest.mark.skipif(not os.path.exists("/proc/self/wchan"), reason="needs /proc/<pid>/wchan")
def test_a_dead_waiter_is_not_a_dead_holder(store: Path) -> None:
    """With a slow holder (1.5 s write delay), kill -9 of a buyer *waiting*
    for the process lock used to stop the run (exit 4) and record the live
    holder as 'never got the lock'. Who holds the lock is now known."""
    env = {**os.environ, "TICKETS_DB": str(store)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tickets",
            "buy",
            "--lock",
            "process",
            "--buyers",
            "4",
            "--tickets",
            "4",
            "--search-delay",
            "0",
            "--write-delay",
            "1500",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 30
    waiting: list[int] = []
    while not waiting and time.monotonic() < deadline:
        histories = list((store.parent / "history").glob("*.jsonl"))
        if histories:
            pids = {e["pid"] for e in read_json_lines(histories[0]) if e["type"] == "invoke"}
            waiting = [pid for pid in pids if blocked_on_a_lock(pid)]
        time.sleep(0.05)
    assert waiting, "no buyer was seen waiting for the lock"
    os.kill(waiting[0], 9)
    out, err = proc.communicate(timeout=90)
    doc = json.loads(out)
    assert proc.returncode == 0, (doc["aborted"], err)
    killed = [b for b in doc["buyers"] if b["pid"] == waiting[0]]
    assert killed and killed[0]["result"] == "info" and "SIGKILL" in killed[0]["reason"]
    assert doc["sold"] == 3 and doc["passed"]
