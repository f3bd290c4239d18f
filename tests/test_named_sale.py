"""One sale across several hosts (``buy --sale NAME --hosts N``), without
root: several invocations on this machine join one sale on a real Redis
server on loopback, start together, stream their histories, and are
judged as one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.timeout(180)


def tickets(db: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``tickets`` here, or (``cwd``) as on another machine: its own folder
    and its own lock and claim files (``$XDG_RUNTIME_DIR``)."""
    env = None
    if cwd is not None:
        (cwd / "run").mkdir(mode=0o700, exist_ok=True)
        env = {**os.environ, "XDG_RUNTIME_DIR": str(cwd / "run")}
    return subprocess.run(
        [sys.executable, "-m", "tickets", "--db", db, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=env,
    )


def start(db: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tickets", "--db", db, *args, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(procs: list[subprocess.Popen[str]]) -> list[tuple[int, dict[str, Any]]]:
    done = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        done.append((proc.returncode, json.loads(out)))
    return done


@pytest.fixture
def db(redis_url: str) -> str:
    """A key on the test server, whose database starts empty: no sale left."""
    return redis_url


def test_three_hosts_start_together_and_are_judged_as_one(db: str) -> None:
    assert tickets(db, "init", "--tickets", "30").returncode == 0
    procs = [
        start(db, "buy", "--sale", "s1", "--hosts", "3", "-n", "12", "--lock", "atomic")
        for _ in range(3)
    ]
    results = finish(procs)
    for code, doc in results:  # each host prints the whole sale's verdict
        assert code == 0 and doc["passed"] and (doc["sold"], doc["initial"]) == (30, 30)
    own = [sum(1 for b in doc["buyers"] if b["result"] == "ok") for _, doc in results]
    assert sum(own) == 30  # each host's table is its own buyers
    merged = tickets(db, "check", "--sale", "s1", "--json")
    doc = json.loads(merged.stdout)
    assert merged.returncode == 0 and doc["sold"] == 30 and len(doc["hosts"]) == 3
    for host in doc["hosts"]:  # every host measured its clock against the server's
        assert 0 <= host["clock"]["uncertainty"] < 0.05
    order = next(c for c in doc["checks"] if c["name"] == "real-time order")["detail"]
    assert "3 hosts, on the server's clock, each known to within" in order
    shown = json.loads(tickets(db, "sale", "show", "s1", "--json").stdout)
    assert shown["state"] == "started" and shown["ended"] == 3 and len(shown["joined"]) == 3
    # Each host kept its own file too: the stream holds the same lines.
    files = sorted(Path("history").glob("*.jsonl"))
    assert len(files) == 3
    assert shown["events"] == sum(len(f.read_text().splitlines()) for f in files)


def test_an_oversell_across_hosts_shows_only_in_the_merged_verdict(db: str) -> None:
    assert tickets(db, "init", "--tickets", "10").returncode == 0
    # flock locks a file on each host (here, a lock file each): it cannot see the others.
    args = ["buy", "--sale", "s2", "--hosts", "3", "-n", "15", "--lock", "flock"]
    procs = [
        start(db, *args, "--lock-file", f"host{i}.lock", "--write-delay", "20") for i in range(3)
    ]
    results = finish(procs)
    assert all(code == 1 and doc["oversold"] > 0 for code, doc in results)
    assert tickets(db, "check", "--sale", "s2").returncode == 1
    drawn = tickets(db, "timeline", "--sale", "s2", "--width", "120")
    assert drawn.returncode == 0 and "host 1 (" in drawn.stdout and "host 3 (" in drawn.stdout
    assert "sold twice or more" in drawn.stdout  # the overlapping writes of different hosts


def test_a_late_joiner_and_a_wrong_host_count_are_refused(db: str, tmp_path: Path) -> None:
    assert tickets(db, "init", "--tickets", "4").returncode == 0
    finish([start(db, "buy", "--sale", "s1", "--hosts", "1", "-n", "4", "--lock", "atomic")])
    late = tickets(db, "buy", "--sale", "s1", "--hosts", "1", "-n", "4")
    assert late.returncode == 3 and "has already started" in late.stderr
    assert len(late.stderr.strip().splitlines()) == 1
    assert len(list(Path("history").glob("*.jsonl"))) == 1  # the refused one left none
    waiting = start(db, "buy", "--sale", "s2", "--hosts", "2", "-n", "2", "--join-timeout", "6")
    deadline = time.monotonic() + 60
    while not json.loads(tickets(db, "sale", "show", "s2", "--json").stdout or "{}").get("joined"):
        assert time.monotonic() < deadline, "the first host never joined"
        time.sleep(0.05)
    wrong = tickets(db, "buy", "--sale", "s2", "--hosts", "3", "-n", "2")
    assert wrong.returncode == 3 and "expects 2 hosts, not 3" in wrong.stderr
    elsewhere = tmp_path / "another-machine"  # its own claim file: nothing here stops it
    elsewhere.mkdir()
    assert tickets(db, "init", "--tickets", "9", cwd=elsewhere).returncode == 0
    moved = tickets(db, "buy", "--sale", "s2", "--hosts", "2", "-n", "2", "--join-timeout", "1")
    assert moved.returncode == 3 and "began with a stock of 0, and this host read 9" in moved.stderr
    [(code, doc)] = finish([waiting])
    assert code == 4 and "only 1 of 2 hosts joined" in doc["aborted"] and doc["sold"] == 0
    # The last host to leave a sale that never started frees its name.
    gone = tickets(db, "sale", "show", "s2")
    assert gone.returncode == 3 and "no such sale" in gone.stderr


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--db", "t.json", "buy", "--sale", "s1"], "needs a Redis store"),
        (["buy", "--sale", "bad name!"], "a sale's name"),
        (["buy", "--hosts", "2"], "--hosts is for a named sale"),
        (["buy", "--sale", "s1", "--tickets", "5"], "prepare it once"),
        (["check", "--sale", "s1", "h.jsonl"], "give no files"),
    ],
)
def test_bad_sale_flags_are_usage_errors(db: str, args: list[str], words: str, invoke: Any) -> None:
    done = invoke("--db", db, *args)
    assert done.exit_code == 2 and words in done.output, done.output
    assert not Path("history").exists()


def test_checking_a_sale_that_does_not_exist_is_exit_3(db: str) -> None:
    done = tickets(db, "check", "--sale", "lonely")
    assert done.returncode == 3 and "has no history on the server" in done.stderr


def test_ctrl_c_while_waiting_to_join_leaves_the_sale(db: str) -> None:
    import signal

    assert tickets(db, "init", "--tickets", "3").returncode == 0
    waiting = start(db, "buy", "--sale", "s1", "--hosts", "2", "-n", "2", "--join-timeout", "60")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # until it has joined
        shown = tickets(db, "sale", "show", "s1", "--json")
        if shown.returncode == 0 and json.loads(shown.stdout)["joined"]:
            break
        time.sleep(0.1)
    waiting.send_signal(signal.SIGINT)
    [(code, doc)] = finish([waiting])
    assert code == 130 and doc["sold"] == 0
    gone = tickets(db, "sale", "show", "s1")
    assert gone.returncode == 3 and "no such sale" in gone.stderr  # its name is free again


def test_timeline_takes_a_file_or_a_sale(db: str, invoke: Any) -> None:
    assert invoke("--db", db, "timeline").exit_code == 2
    both = invoke("--db", db, "timeline", "h.jsonl", "--sale", "s1")
    assert both.exit_code == 2 and "not both" in both.output
    missing = invoke("--db", db, "timeline", "--sale", "nothing-here")
    assert missing.exit_code == 3 and "has no history on the server" in missing.output


def test_a_forged_or_broken_stream_is_refused_with_one_line(
    db: str, redis_server: Any, invoke: Any
) -> None:
    client = redis_server.client()
    events = "tickets:sale:forged:events"
    client.xadd(events, {"run": "abc", "seq": 1, "line": '{"type": "run", "version": 1}'})
    done = invoke("--db", db, "check", "--sale", "forged")
    assert done.exit_code == 3 and "run line has mode None" in done.output
    client.delete(events)
    lines = [
        json.dumps(line)
        for line in (
            {
                "type": "run",
                "version": 1,
                "run_id": "abc",
                "mode": "buy",
                "store": "x",
                "strategy": "atomic",
                "store_kind": "redis",
                "initial": 1,
                "restocked": False,
                "buyers": 1,
                "t": 10.0,
                "sale": "forged",
                "clock": {"offset": 0.0, "uncertainty": 0.0},
            },
            {"type": "invoke", "buyer": 0, "t": 11.0},
        )
    ]
    client.xadd(events, {"run": "abc", "seq": 1, "line": lines[0]})
    client.xadd(events, {"run": "abc", "seq": 3, "line": lines[1]})  # line 2 never came
    done = invoke("--db", db, "check", "--sale", "forged")
    assert done.exit_code == 3 and "line 2 is missing from the sale's stream" in done.output
    client.delete(events)
    client.xadd(events, {"run": "abc", "seq": 1, "line": lines[0].replace("forged", "other")})
    done = invoke("--db", db, "check", "--sale", "forged")
    assert done.exit_code == 3 and "is not a host of this sale" in done.output


def test_a_restock_of_a_key_a_sale_is_selling_is_refused(db: str, tmp_path: Path) -> None:
    assert tickets(db, "init", "--tickets", "6").returncode == 0
    args = ["buy", "--sale", "s1", "--hosts", "2", "-n", "6", "--lock", "flock"]
    procs = [start(db, *args, "--lock-file", f"h{i}.lock", "--write-delay", "300") for i in (1, 2)]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        shown = tickets(db, "sale", "show", "s1", "--json")
        if shown.returncode == 0 and json.loads(shown.stdout)["state"] == "started":
            break
        time.sleep(0.05)
    elsewhere = tmp_path / "another-machine"
    elsewhere.mkdir()
    refused = tickets(db, "init", "--tickets", "50", cwd=elsewhere)
    finish(procs)
    assert refused.returncode == 3 and "is being sold by the named sale s1" in refused.stderr
    assert tickets(db, "init", "--tickets", "50", cwd=elsewhere).returncode == 0  # once it ended


def test_a_sale_whose_state_holds_odd_digits_is_described_not_a_traceback(
    db: str, redis_server: Any
) -> None:
    """'²' is a digit to str.isdigit() and no number to int(): sale show,
    sale list and every init on the server crashed on it."""
    from tickets.named_sale.registry import NamedSale
    from tickets.stores import open_store
    from tickets.stores.redis import RedisStore
    from tickets.stores.spec import parse_db

    store = open_store(parse_db(db))
    assert isinstance(store, RedisStore)
    meta = NamedSale(store, "evil").meta
    redis_server.client().hset(meta, mapping={"hosts": "²", "stock": "٣", "state": "joining"})
    for args in (["sale", "show", "evil"], ["sale", "list"], ["init", "-t", "3"]):
        done = tickets(db, *args)
        assert "Traceback" not in done.stderr and done.returncode in (0, 3), (args, done.stderr)
