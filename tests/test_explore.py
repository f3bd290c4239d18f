"""``tickets explore``: every schedule of a few buyers on real stores; the
races it must find, the strategies it must pass, counts against
hand-computed cases, replay, and the NOT PROVEN cases."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tickets.check.history import read
from tickets.check.verdict import check_history
from tickets.engine.explore.explorer import ExploreConfig, run_explore
from tickets.engine.explore.sale import ExploredSale
from tickets.engine.explore.search import Budget, exhaustive
from tickets.engine.explore.steps import canonical
from tickets.locking.strategies import get
from tickets.stores.spec import parse_db

ROOT = Path(__file__).resolve().parent.parent
BOOKING = str(ROOT / "examples" / "booking.py")

pytestmark = pytest.mark.timeout(180)


def explore_json(invoke: Any, *args: str) -> tuple[int, dict[str, Any]]:
    result = invoke("explore", *args, "--json")
    return result.exit_code, json.loads(result.stdout)


# -- what it must find -------------------------------------------------------


def test_the_tutorial_race_is_found_and_shown_step_by_step(invoke: Any, tmp_path: Path) -> None:
    code, doc = explore_json(invoke, "--lock", "none")
    assert code == 1 and doc["passed"] is False
    found = doc["counterexample"]
    assert found["buyers"] == 2 and found["preemptions"] == 1
    # the lesson: both read the one ticket before either wrote it back
    reads = [i for i, (_, kind, said) in enumerate(found["steps"]) if kind == "read"]
    writes = [i for i, (_, kind, said) in enumerate(found["steps"]) if kind == "write"]
    assert len(reads) == 2 and len(writes) == 2 and max(reads) < max(writes)
    assert [said for _, kind, said in found["steps"] if kind == "read"] == ["reads 1", "reads 1"]
    assert "seat 1 sold twice (buyers 0 and 1)" in found["broke"]
    history = Path(found["history"])
    report = check_history(read(history))  # the saved history fails the ordinary check too
    assert report.double_sold == {1: ["0", "1"]} and report.oversold == 1
    text = invoke("explore", "--lock", "none").output
    assert "buyer 0" in text and "buyer 1" in text and "FAILED: --lock none" in text
    assert "tickets explore --replay" in text
    assert "tickets.json" not in {p.name for p in tmp_path.iterdir()}  # the stock untouched


@pytest.mark.parametrize(
    "args",
    [
        ["--lock", "per-buyer"],
        ["--buy", f"{BOOKING}:take_ticket_broken"],
        ["--lock", "none", "--buyers", "3", "--tickets", "2"],
    ],
)
def test_a_broken_purchase_is_found_every_time(invoke: Any, args: list[str]) -> None:
    code, doc = explore_json(invoke, *args)
    assert code == 1 and doc["counterexample"]["buyers"] == 2  # shrunk to two buyers
    assert any("sold twice" in line for line in doc["counterexample"]["broke"])


def test_a_replay_gives_the_same_history_every_time(invoke: Any) -> None:
    _, doc = explore_json(invoke, "--lock", "none")
    saved = Path(doc["counterexample"]["schedule"])
    schedule = json.loads(saved.read_text())
    assert schedule["format"] == "tickets-schedule" and schedule["steps"]
    first = invoke("explore", "--replay", str(saved), "--json")
    second = invoke("explore", "--replay", str(saved), "--json")
    assert first.exit_code == second.exit_code == 1
    a, b = json.loads(first.output), json.loads(second.output)
    assert a["steps"] == b["steps"] == doc["counterexample"]["steps"]
    assert a["same_as_saved"] and a["broke"] == doc["counterexample"]["broke"]
    # the history of a replay is byte for byte the saved one, but for its run line
    history = Path(doc["counterexample"]["history"]).read_text().splitlines()
    again = run_explore(
        ExploreConfig(store=parse_db("tickets.json"), strategy=get("none"), shrink=False)
    )
    assert again.history is not None
    assert again.history.read_text().splitlines()[1:] == history[1:]


# -- what it must pass -------------------------------------------------------


@pytest.mark.parametrize("lock", ["process", "file", "flock"])
def test_every_lock_passes_exhaustively(invoke: Any, lock: str) -> None:
    code, doc = explore_json(invoke, "--lock", lock, "--buyers", "3", "--tickets", "2")
    assert code == 0 and doc["passed"] and doc["complete"]
    assert doc["schedules"] == doc["distinct"] == 36  # see test_counts_by_hand
    assert doc["counterexample"] is None


@pytest.mark.parametrize("lock", ["atomic", "transaction", "flock"])
def test_sqlite_strategies_pass_exhaustively(invoke: Any, lock: str, tmp_path: Path) -> None:
    code, doc = explore_json(
        invoke, "--db", f"sqlite:{tmp_path / 's.db'}", "--lock", lock, "-n", "3", "-t", "2"
    )
    assert code == 0 and doc["complete"] and doc["schedules"] == doc["distinct"] > 0
    assert not (tmp_path / "s.db").exists()  # a scratch database, not the user's


def test_sqlite_none_oversells(invoke: Any, tmp_path: Path) -> None:
    code, doc = explore_json(invoke, "--db", f"sqlite:{tmp_path / 's.db'}", "--lock", "none")
    assert code == 1 and doc["counterexample"]["buyers"] == 2


@pytest.mark.parametrize(
    "lock, size", [("atomic", ("3", "2")), ("flock", ("3", "2")), ("transaction", ("2", "2"))]
)
def test_redis_strategies_pass_exhaustively(
    invoke: Any, lock: str, size: tuple[str, str], redis_url: str
) -> None:
    """(Every schedule of three WATCH transactions over two tickets: make stress.)"""
    args = ["--db", redis_url, "--lock", lock, "-n", size[0], "-t", size[1]]
    code, doc = explore_json(invoke, *args)
    assert code == 0 and doc["complete"] and doc["schedules"] == doc["distinct"] > 0


def test_redis_leftovers_are_removed(invoke: Any, redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url.split("?")[0])
    before = set(client.keys("*"))
    explore_json(invoke, "--db", redis_url, "--lock", "lease", "-n", "2")
    assert set(client.keys("*")) == before


def test_a_lease_that_outlives_its_ttl_is_found_and_fencing_passes(
    invoke: Any, redis_url: str
) -> None:
    code, doc = explore_json(invoke, "--db", redis_url, "--lock", "lease")
    assert code == 1
    said = [s for _, _, s in doc["counterexample"]["steps"]]
    assert "pauses past its lease: it expires" in said
    code, doc = explore_json(invoke, "--db", redis_url, "--lock", "lease", "--fencing")
    assert code == 0 and doc["complete"], doc


def test_the_correct_example_passes_and_the_pass_states_its_bound(invoke: Any) -> None:
    result = invoke("explore", "--buy", f"{BOOKING}:take_ticket", "-n", "3", "-t", "2")
    assert result.exit_code == 0
    assert "PASSED: all 6 distinct schedules of 3 buyers over 2 tickets" in result.output
    assert "preemption bound none" in result.output


# -- counts against hand-computed cases --------------------------------------


def program_file(tmp_path: Path, name: str, programs: list[list[str]]) -> str:
    """A --buy function running one program per buyer: r (read), w (write
    the count it last read), W (write 0), z (the write delay: a local step)."""
    path = tmp_path / f"{name}.py"
    path.write_text(
        f"PROGRAMS = {programs!r}\n"
        "def buy(store):\n"
        "    seen = store.read() if False else 0\n"
        "    for op in PROGRAMS[store.buyer]:\n"
        "        if op == 'r':\n"
        "            seen = store.read()\n"
        "        elif op == 'w':\n"
        "            store.write(seen)\n"
        "        elif op == 'W':\n"
        "            store.write(0)\n"
        "        else:\n"
        "            store.wait()\n"
        "    return None\n"
    )
    return f"{path}:buy"


def count(spec: str, buyers: int, reduction: bool) -> tuple[int, int, int]:
    cfg = ExploreConfig(
        store=parse_db("tickets.json"),
        strategy=get("none"),
        buy=spec,
        buyers=buyers,
        tickets=0,
        reduction=reduction,
    )
    sale = ExploredSale(cfg.setup())
    try:
        out = exhaustive(
            sale, None, Budget(100_000, 120), reduction=reduction, stop_at_failure=False
        )
    finally:
        sale.close()
    assert out.complete and out.failure is None
    return out.schedules, out.distinct, out.pruned


@pytest.mark.parametrize("k", [1, 2, 3])
def test_counts_by_hand(tmp_path: Path, k: int) -> None:
    """Two buyers of k steps each: C(2k, k) interleavings; every step
    independent (local waits): one class; every step conflicting (writes):
    C(2k, k) classes, each run once."""
    both = math.comb(2 * k, k)
    local = program_file(tmp_path, f"local{k}", [["z"] * k, ["z"] * k])
    writes = program_file(tmp_path, f"writes{k}", [["W"] * k, ["W"] * k])
    assert count(local, 2, reduction=False)[:2] == (both, 1)
    assert count(local, 2, reduction=True)[:2] == (1, 1)
    assert count(writes, 2, reduction=False)[:2] == (both, both)
    assert count(writes, 2, reduction=True)[:2] == (both, both)


OPS = st.lists(st.sampled_from(["r", "w", "W", "z"]), min_size=1, max_size=3)


def brute_force_classes(programs: list[list[str]]) -> int:
    """Every interleaving of the programs, by hand, grouped by class."""
    from tickets.engine.explore import steps as s

    def step(b: int, op: str) -> s.Step:
        return {"r": s.read, "w": s.write, "W": s.write, "z": s.wait}[op](b)

    owners = [b for b, p in enumerate(programs) for _ in p]
    seen = set()
    for sequence in set(itertools.permutations(owners)):  # every interleaving
        cursor = [0] * len(programs)
        steps = []
        for b in sequence:
            steps.append(step(b, programs[b][cursor[b]]))
            cursor[b] += 1
        seen.add(canonical(steps))
    return len(seen)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(OPS, OPS)
def test_the_reduced_search_runs_each_class_once(
    tmp_path: Path, a: list[str], b: list[str]
) -> None:
    """Generated two-buyer programs: the search with sleep sets runs one
    schedule per class, as many classes as a brute-force enumeration of
    every interleaving finds, and the search without them runs every one."""
    spec = program_file(tmp_path, f"p{abs(hash((tuple(a), tuple(b))))}", [a, b])
    ran, distinct, _ = count(spec, 2, reduction=True)
    every, classes, _ = count(spec, 2, reduction=False)
    assert every == math.comb(len(a) + len(b), len(a))
    assert ran == distinct == classes == brute_force_classes([a, b])


# -- not proven, and refused --------------------------------------------------


@pytest.mark.parametrize(
    "args, why",
    [
        (["--tickets", "0"], "no tickets"),
        (["--buyers", "1"], "one buyer cannot race"),
        (["--lock", "flock", "-n", "3", "-t", "2", "--max-schedules", "3"], "budget"),
    ],
)
def test_what_proves_nothing_is_not_proven(invoke: Any, args: list[str], why: str) -> None:
    code, doc = explore_json(invoke, *args)
    assert code == 5 and doc["passed"] is False and doc["unproven"] is True
    assert why in doc["reason"]


def test_a_buyer_that_goes_round_the_scheduler_is_never_passed(invoke: Any, tmp_path: Path) -> None:
    path = tmp_path / "raw.py"
    path.write_text(
        "import json\n"
        "def buy(store):\n"
        "    with store.lock:\n"
        "        with open(store.raw) as f:\n"
        "            count = json.load(f)['count']\n"
        "        if count == 0:\n"
        "            return None\n"
        "        store.write(count - 1)\n"
        "        return count\n"
    )
    code, doc = explore_json(invoke, "--buy", f"{path}:buy", "--lock", "flock")
    assert code == 5 and "store.raw" in doc["reason"]


def test_a_lock_never_let_go_is_a_deadlock(invoke: Any, tmp_path: Path) -> None:
    path = tmp_path / "hold.py"
    path.write_text("def buy(store):\n    store.lock.__enter__()\n    return store.read()\n")
    code, doc = explore_json(invoke, "--buy", f"{path}:buy", "--lock", "flock")
    assert code == 1 and "nobody can go on" in doc["counterexample"]["broke"][0]


@pytest.mark.parametrize(
    "args, says",
    [
        (["--exec", "true"], "--exec command's steps cannot be scheduled"),
        (["--sale", "x"], "named sale"),
        (["--lock", "atomic"], "atomic does not apply to a json store"),
        (["--lock", "flock", "--fencing"], "--fencing"),
        (["--buy", "nope.py:f"], "nope.py"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(invoke: Any, args: list[str], says: str) -> None:
    result = invoke("explore", *args)
    assert result.exit_code == 2 and says in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    "text, says",
    [
        ("not json", "not a schedule file"),
        ('{"format": "x"}', "not a tickets schedule file"),
        (
            '{"format": "tickets-schedule", "version": 1, "store_kind": "json", "lock": "none",'
            ' "buy": null, "buyers": 2, "tickets": 1, "retries": 2, "lease_ttl": 1,'
            ' "fencing": false, "steps": [0, 7]}',
            "steps is not a list of buyer numbers",
        ),
        (
            '{"format": "tickets-schedule", "version": 1, "store_kind": "json", "lock": "none",'
            ' "buy": null, "buyers": 2, "tickets": 1, "retries": 2, "lease_ttl": 1,'
            ' "fencing": false, "steps": [1, 1, 1]}',
            "the schedule ends after",
        ),
        (
            '{"format": "tickets-schedule", "version": 1, "store_kind": "redis", "lock": "none",'
            ' "buy": null, "buyers": 2, "tickets": 1, "retries": 2, "lease_ttl": 1,'
            ' "fencing": false, "steps": [0]}',
            "redis store",
        ),
    ],
)
def test_a_forged_schedule_is_refused(invoke: Any, tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "forged.schedule.json"
    path.write_text(text)
    result = invoke("explore", "--replay", str(path))
    assert result.exit_code == 2 and says in result.output, result.output


def test_pct_samples_find_the_race(invoke: Any) -> None:
    code, doc = explore_json(invoke, "--lock", "none", "--random", "50", "--seed", "3")
    assert code == 1 and doc["search"] == "random"
    code, doc = explore_json(invoke, "--lock", "flock", "--random", "20", "-n", "3", "-t", "2")
    assert code == 0 and doc["schedules"] == 20


def test_a_search_that_let_nothing_overlap_is_not_proven(invoke: Any) -> None:
    code, doc = explore_json(invoke, "--lock", "none", "--preemptions", "0")
    assert code == 5 and "no schedule run let two buyers' purchases overlap" in doc["reason"]
    code, doc = explore_json(
        invoke, "--lock", "file", "-n", "3", "-t", "2", "--max-schedules", "36"
    )
    assert code == 0 and doc["schedules"] == 36  # a budget met exactly is no cut
    code, doc = explore_json(
        invoke, "--lock", "file", "-n", "3", "-t", "2", "--max-schedules", "35"
    )
    assert code == 5 and "budget" in doc["reason"]


def test_a_sqlite_replay_needs_no_db_and_keeps_its_history(invoke: Any, tmp_path: Path) -> None:
    _, doc = explore_json(invoke, "--db", f"sqlite:{tmp_path / 's.db'}", "--lock", "none")
    saved = doc["counterexample"]["schedule"]
    result = invoke("explore", "--replay", saved)  # --db is the default JSON file: no matter
    assert result.exit_code == 1 and "it broke as saved" in result.output
    again = json.loads(invoke("explore", "--replay", saved, "--json").output)
    replayed = Path(again["history"]).read_text().splitlines()
    original = Path(doc["counterexample"]["history"]).read_text().splitlines()
    assert replayed[1:] == original[1:]
    assert check_history(read(Path(again["history"]))).oversold == 1


@pytest.mark.parametrize(
    "extra, says",
    [
        (["--lock", "flock"], "--replay runs the sale the schedule file saved"),
        (["-n", "3"], "--replay runs the sale the schedule file saved"),
        (["--buy", f"{BOOKING}:x"], "is of the built-in buyer; drop --buy"),
    ],
)
def test_a_replay_takes_its_sale_from_the_file(invoke: Any, extra: list[str], says: str) -> None:
    _, doc = explore_json(invoke, "--lock", "none")
    result = invoke("explore", "--replay", doc["counterexample"]["schedule"], *extra)
    assert result.exit_code == 2 and says in result.output


def test_a_schedule_file_never_runs_code_unasked(invoke: Any) -> None:
    broken = f"{BOOKING}:take_ticket_broken"
    _, doc = explore_json(invoke, "--buy", broken)
    saved = doc["counterexample"]["schedule"]
    result = invoke("explore", "--replay", saved)
    assert result.exit_code == 2 and f"give --buy {broken}" in result.output
    assert invoke("explore", "--replay", saved, "--buy", broken).exit_code == 1


def test_a_replay_of_nothing_or_a_fifo_is_refused(invoke: Any, tmp_path: Path) -> None:
    import os

    result = invoke("explore", "--replay", str(tmp_path / "nope.json"))
    assert result.exit_code == 2 and "no such file" in result.output
    os.mkfifo(tmp_path / "f.schedule.json")  # never waited on
    result = invoke("explore", "--replay", str(tmp_path / "f.schedule.json"))
    assert result.exit_code == 2 and "not a regular file" in result.output


HOSTILE = """
import os, sys, time
class Weird:
    def __repr__(self):
        raise RuntimeError("no")
def weird(store):
    store.read()
    return Weird()
def exits(store):
    store.read()
    os._exit(0)
def noisy(store):
    print("hello from the buyer")
    sys.stderr.write("and to stderr")
    with store.lock:
        count = store.read()
        if count == 0:
            return None
        store.write(count - 1)
        return count
def forks(store):
    if os.fork() == 0:
        open(os.environ["MARK"] + str(os.getpid()), "w").close()
        time.sleep(300)
        os._exit(0)
    return noisy(store)
"""


@pytest.fixture
def hostile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "hostile.py"
    path.write_text(HOSTILE)
    monkeypatch.setenv("MARK", str(tmp_path / "forked-"))
    return path


def test_buyer_code_cannot_fool_or_end_the_explorer(
    invoke: Any, hostile: Path, tmp_path: Path
) -> None:
    import os
    import signal

    code, doc = explore_json(invoke, "--buy", f"{hostile}:weird")
    assert code == 1 and not doc["passed"]  # an unreadable result: an error, never a pass
    code, doc = explore_json(invoke, "--buy", f"{hostile}:exits")
    assert code == 3 and "ended without an answer" in doc["error"]
    code, doc = explore_json(invoke, "--buy", f"{hostile}:noisy", "--lock", "flock")
    assert code == 0 and doc["passed"]  # its prints went nowhere: the document parsed
    code, doc = explore_json(invoke, "--buy", f"{hostile}:forks", "--lock", "flock")
    assert code == 0
    forked = [int(p.name.split("-")[1]) for p in tmp_path.glob("forked-*")]
    assert forked
    for pid in forked:  # what the buyer code started went with the exploration
        with pytest.raises(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tickets-explore")]


@pytest.mark.timeout(120)
def test_sigterm_stops_an_exploration_cleanly(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    cmd = [sys.executable, "-m", "tickets", "--db", f"sqlite:{tmp_path / 's.db'}", "explore"]
    cmd += ["-n", "3", "-t", "2", "--lock", "deferred", "--json"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not [p for p in tmp_path.iterdir() if p.name.startswith(".tickets-explore")]:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    doc = json.loads(out)
    assert doc["exit_code"] == 143 and doc["passed"] is False
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tickets-explore")]


def test_a_history_folder_that_is_a_file_still_shows_the_finding(
    invoke: Any, tmp_path: Path
) -> None:
    (tmp_path / "history").write_text("not a folder")
    result = invoke("explore", "--lock", "none")
    assert result.exit_code == 3 and "could not save the schedule" in result.output
    assert "seat 1 sold twice" in result.output and "Traceback" not in result.output


def test_a_pct_depth_beyond_the_steps_is_no_traceback(invoke: Any) -> None:
    code, doc = explore_json(invoke, "-n", "2", "--random", "3", "--depth", "10", "--lock", "flock")
    assert code in (0, 5) and doc["search"] == "random"


@pytest.mark.stress
@pytest.mark.timeout(900)
def test_a_fenced_lease_passes_every_schedule_of_three_buyers(invoke: Any, redis_url: str) -> None:
    """~5,700 schedules on a real server: about 45 s on a quiet machine."""
    args = ["--db", redis_url, "--lock", "lease", "--fencing", "-n", "3", "-t", "2"]
    code, doc = explore_json(invoke, *args, "--time-limit", "800")
    assert code == 0 and doc["complete"] and doc["schedules"] == doc["distinct"] > 1000


@pytest.mark.stress
@pytest.mark.timeout(900)
def test_redis_transactions_pass_every_schedule_of_three_buyers(
    invoke: Any, redis_url: str
) -> None:
    code, doc = explore_json(
        invoke, "--db", redis_url, "--lock", "transaction", "-n", "3", "-t", "2"
    )
    assert code == 0 and doc["complete"] and doc["schedules"] == doc["distinct"] > 1000


@pytest.mark.stress
@pytest.mark.timeout(120)
def test_a_buyer_that_loops_is_stopped_at_the_deadline(invoke: Any, tmp_path: Path) -> None:
    path = tmp_path / "loops.py"
    path.write_text("def buy(store):\n    store.read()\n    while True:\n        pass\n")
    code, doc = explore_json(invoke, "--buy", f"{path}:buy", "--time-limit", "1")
    assert code == 3 and "loops, sleeps or waits on something of its own" in doc["error"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tickets-explore")]


MISUSE = """
from greenlet import getcurrent
KEPT = []
def stray_release(store):
    with store.lock:
        pass
    store.lock.__exit__(None, None, None)  # lets go of what another buyer holds
    with store.lock:
        count = store.read()
        if count == 0:
            return None
        store.wait()
        store.write(count - 1)
        return count
def escape(store):
    getcurrent().parent.switch()
def stale(store):
    KEPT.append(store)
    count = KEPT[0].read()
    return None if count == 0 else count
"""


def test_misused_handles_are_found_or_refused_never_passed(invoke: Any, tmp_path: Path) -> None:
    path = tmp_path / "misuse.py"
    path.write_text(MISUSE)
    code, doc = explore_json(invoke, "--buy", f"{path}:stray_release", "--lock", "process")
    assert code == 1  # a semaphore anyone lets go of excludes nobody: the oversell is found
    for name, says in (("escape", "switched greenlets"), ("stale", "used outside buyer")):
        code, doc = explore_json(invoke, "--buy", f"{path}:{name}", "--lock", "process")
        assert code == 2 and says in doc["error"], (name, doc)


def test_a_preemption_bound_runs_every_schedule_within_it(invoke: Any) -> None:
    args = ["--lock", "file", "-n", "3", "-t", "2", "--preemptions", "1"]
    _, bounded = explore_json(invoke, *args)
    _, every = explore_json(invoke, *args, "--no-reduction")
    assert bounded["distinct"] == every["distinct"] == 30 and bounded["passed"]


@pytest.mark.timeout(120)
def test_a_parent_killed_outright_leaves_no_scratch(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    cmd = [sys.executable, "-m", "tickets", "--db", f"sqlite:{tmp_path / 's.db'}", "explore"]
    proc = subprocess.Popen([*cmd, "-n", "3", "-t", "2", "--lock", "deferred"], cwd=tmp_path)
    deadline = time.monotonic() + 60
    while not [p for p in tmp_path.iterdir() if p.name.startswith(".tickets-explore")]:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    while [p for p in tmp_path.iterdir() if p.name.startswith(".tickets-explore")]:
        assert time.monotonic() < deadline, "the warden did not clean up"
        time.sleep(0.01)


def test_a_lease_left_held_runs_out_rather_than_deadlocks(
    invoke: Any, tmp_path: Path, redis_url: str
) -> None:
    path = tmp_path / "held.py"
    path.write_text(
        "def buy(store):\n"
        "    store.lock.__enter__()  # never let go: the lease runs out\n"
        "    count = store.read()\n"
        "    if count == 0:\n"
        "        return None\n"
        "    store.write(count - 1)\n"
        "    return count\n"
    )
    code, doc = explore_json(invoke, "--db", redis_url, "--buy", f"{path}:buy", "--lock", "lease")
    assert code != 1 or "nobody can go on" not in " ".join(doc["counterexample"]["broke"])
