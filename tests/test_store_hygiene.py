"""What a run leaves on disk besides the count: the temp files of writers it
saw killed (swept at its end), the store's claim (beside the store, wherever
its lock is), and the SQLite database's mode bits."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tickets.engine.chaos import Chaos
from tickets.stores import json_file as st

pytestmark = pytest.mark.timeout(120)


def tickets(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """The real command in a process of its own, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "tickets", *args], capture_output=True, text=True, timeout=timeout
    )


# -- (15) a chaos run sweeps its killed writers' temp files at its end --------


def seed_with_killed_writers(buyers: int, at_least: int = 3) -> int:
    """A seed whose chaos kills at least that many buyers mid-write."""
    return next(
        s
        for s in range(200)
        if sum(p == "writing" for _, p in Chaos(1.0, 0, s).buyer_kills(buyers)) >= at_least
    )


@pytest.mark.parametrize("lock", ["file", "flock", "none"])
def test_a_chaos_run_leaves_no_temp_file_of_a_dead_writer(tmp_path: Path, lock: str) -> None:
    store = tmp_path / "t.json"
    # Another process's write in flight (this test's pid is alive): never touched.
    live = tmp_path / f".{store.name}.{os.getpid()}.0123456789ab.tmp"
    live.write_text('{"count": 1')
    seed = seed_with_killed_writers(20)
    done = tickets(
        "--db",
        str(store),
        "buy",
        "--buyers",
        "20",
        "--tickets",
        "100",
        "--lock",
        lock,
        "--seed",
        str(seed),
        "--chaos",
        "--kill-rate",
        "1",
        "--pause-rate",
        "0",
        "--no-delay",
        "--json",
    )
    doc = json.loads(done.stdout)
    assert doc["chaos"]["killed"] >= 3, done.stderr
    temps = sorted(p.name for p in tmp_path.glob(f".{store.name}.*.tmp"))
    assert temps == [live.name], temps  # the killed writers' are gone, the live one stays
    assert live.read_text() == '{"count": 1'
    assert st.load(store) == doc["remaining"]


# -- (6) the claim on a store is the store's, wherever its lock file is -------

HOLDING_BUYER = """
def hold(store):
    with open({ready!r}, "w") as f:  # the test now knows the sale is in flight
        f.write("x")
    with open({go!r}) as f:  # until the test lets it go
        f.read()
    with store.lock:
        count = store.read()
        store.write(count - 1)
        return count
"""


@pytest.fixture(params=["json", "sqlite", "redis"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "json":
        return str(tmp_path / "t.json")
    if request.param == "sqlite":
        return f"sqlite:{tmp_path / 'sale.db'}"
    return str(request.getfixturevalue("redis_url"))


def test_a_restock_waits_for_a_sale_that_locks_another_file(tmp_path: Path, any_store: str) -> None:
    """A sale with ``--lock-file elsewhere.lock``, held in flight by its
    buyer: ``tickets init`` on the same store without --lock-file is refused
    (it used to claim another file and restock mid-sale)."""
    ready, go = tmp_path / "ready", tmp_path / "go"
    os.mkfifo(ready)
    os.mkfifo(go)
    (tmp_path / "holding.py").write_text(HOLDING_BUYER.format(ready=str(ready), go=str(go)))
    (tmp_path / "locks").mkdir()
    assert tickets("--db", any_store, "init", "--tickets", "5").returncode == 0
    sale = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tickets",
            "--db",
            any_store,
            "--lock-file",
            str(tmp_path / "locks" / "elsewhere.lock"),
            "buy",
            "--buyers",
            "1",
            "--keep-stock",
            "--buy",
            f"{tmp_path / 'holding.py'}:hold",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with open(ready) as f:  # blocks until the buyer is in its purchase
            assert f.read() == "x"
        refused = tickets("--db", any_store, "init", "--tickets", "9", "--lock-timeout", "0.2")
        with open(go, "w"):
            pass  # the buyer goes on
        out, err = sale.communicate(timeout=60)
    finally:
        sale.kill()
    assert refused.returncode == 3, refused.stderr
    assert "another sale is running on this store" in refused.stderr
    assert "Traceback" not in refused.stderr
    doc = json.loads(out)
    assert (doc["sold"], doc["remaining"]) == (1, 4), err  # no restock mid-sale


# -- (13) SQLite files keep no setuid, setgid or sticky bit -------------------


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_sqlite_files_lose_setuid_setgid_and_sticky_bits(tmp_path: Path) -> None:
    """As the JSON store's writes promise (README, Safety): permission bits
    kept, setuid, setgid and sticky dropped; on the database and on the WAL
    and shared-memory files SQLite writes beside it."""
    db = tmp_path / "sale.db"
    url = f"sqlite:{db}"
    assert tickets("--db", url, "init", "--tickets", "5").returncode == 0
    os.chmod(db, 0o7640)
    assert tickets("--db", url, "init", "--tickets", "5").returncode == 0  # a restock
    assert mode_of(db) == 0o640
    # An open connection keeps the -wal and -shm in place across the run.
    reader = sqlite3.connect(db)
    try:
        assert reader.execute("SELECT count FROM tickets_stock").fetchone() == (5,)
        for path in (db, tmp_path / "sale.db-wal", tmp_path / "sale.db-shm"):
            os.chmod(path, 0o6644)
        done = tickets("--db", url, "buy", "--buyers", "3", "--keep-stock", "--lock", "atomic")
        assert "Error" not in done.stderr, done.stderr
        for path in (db, tmp_path / "sale.db-wal", tmp_path / "sale.db-shm"):
            assert mode_of(path) == 0o644, path
        assert reader.execute("SELECT count FROM tickets_stock").fetchone() == (2,)
    finally:
        reader.close()
    os.chmod(db, 0o4600)
    assert tickets("--db", url, "status").returncode == 0
    assert mode_of(db) == 0o4600  # a read changes nothing


def test_a_killed_writer_not_yet_reaped_is_dead(tmp_path: Path) -> None:
    """A zombie (exited, its parent not yet told) has no write in flight:
    its temp file is an orphan, whoever reaps it and when."""
    store = tmp_path / "t.json"
    st.save(store, 3)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, left unreaped
        orphan = tmp_path / f".{store.name}.{child.pid}.0123456789ab.tmp"
        orphan.write_text('{"count": 2')
        assert st.orphan_temps(store) == [orphan]
    finally:
        child.wait(timeout=10)
