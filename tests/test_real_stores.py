"""The same sale on a SQLite database and a real Redis server: every strategy
that should keep the sale correct does, on real processes; those that
should not, do not; and each store's bad input is one line, exit 3,
nothing changed. The Redis server is a real redis-server (see conftest)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import REDIS_PASSWORD
from helpers import read_json_lines
from tickets.engine.buy import run_buy
from tickets.engine.child.plan import Delays
from tickets.engine.config import BuyConfig, ConfigError, QueueConfig
from tickets.engine.queue import run_queue
from tickets.locking.strategies import STRATEGIES
from tickets.stores.spec import BadStoreURL, parse_db

pytestmark = pytest.mark.timeout(120)

EXCLUDING = {
    "sqlite": ["process", "file", "flock", "atomic", "transaction"],
    "redis": ["process", "file", "flock", "atomic", "transaction", "lease"],
    "postgres": ["process", "file", "flock", "atomic", "for-update", "advisory"],
}


def kind_of(url: str) -> str:
    kind = url.split(":", 1)[0]
    return "postgres" if kind == "postgresql" else kind


def buy(url: str, **kw: Any) -> Any:
    kw.setdefault("buyers", 20)
    kw.setdefault("tickets", 5)
    kw.setdefault("delays", Delays(0.002, 0.001))
    kw.setdefault("stall_timeout", 30.0)
    return run_buy(BuyConfig(store=parse_db(url), **kw))


def tickets(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The real command in its own process (as a user or CI runs it)."""
    return subprocess.run(
        [sys.executable, "-m", "tickets", *args], capture_output=True, text=True, timeout=timeout
    )


# -- every strategy on every engine ------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_excluding_strategies_sell_exactly_the_stock(real_store: str, seed: int) -> None:
    for strategy in EXCLUDING[kind_of(real_store)]:
        result = buy(real_store, strategy=strategy, seed=seed)
        report = result.report
        assert report.passed, (strategy, [c for c in report.checks if not c.passed])
        assert (report.sold, report.remaining, report.oversold) == (5, 0, 0), strategy
        assert result.history is not None
        run = read_json_lines(result.history)[0]
        assert run["store_kind"] == kind_of(real_store) and run["strategy"] == strategy


def test_no_lock_oversells_on_every_engine(real_store: str) -> None:
    """Everybody reads before anybody writes: a widened window."""
    result = buy(real_store, strategy="none", buyers=12, tickets=10, delays=Delays(0.0, 0.08))
    assert result.report.oversold > 0 and not result.report.passed


def test_a_deferred_transaction_fails_safe(tmp_path: Path) -> None:
    """Two deferred transactions both read; the second to write gets
    "database is locked" and rolls back: fewer sales, never an oversell."""
    url = f"sqlite:{tmp_path / 'sale.db'}"
    result = buy(url, strategy="deferred", buyers=12, tickets=10, delays=Delays(0.0, 0.03))
    report = result.report
    assert report.passed and report.oversold == 0 and report.sold < 10
    refused = [r for r in result.rows if r.result == "fail" and "locked" in (r.reason or "")]
    assert refused, [r.reason for r in result.rows]


def test_redis_transaction_retries_are_counted(redis_url: str) -> None:
    result = buy(redis_url, strategy="transaction", buyers=12, tickets=12, delays=Delays(0, 0.02))
    assert result.report.passed and result.report.sold == 12
    retried = [r for r in result.rows if r.retries]
    assert retried, "twelve buyers in a 10-20 ms window: some WATCH must have failed"
    events = read_json_lines(result.history)
    assert sum(e.get("retries", 0) for e in events) == sum(r.retries or 0 for r in result.rows)
    import io

    from rich.console import Console

    from tickets.render.tables import buyers_view

    console = Console(width=120, record=True, file=io.StringIO())
    console.print(buyers_view(result))
    assert "retries" in console.export_text()


def test_redis_transaction_retries_in_the_queue(redis_url: str) -> None:
    config = QueueConfig(
        store=parse_db(redis_url),
        strategy=STRATEGIES["transaction"],
        tickets=20,
        producers=1,
        orders=20,
        clerks=4,
        queue_size=20,
        batch=1,
        delays=Delays(0.0, 0.01),
        stall_timeout=30.0,
    )
    result = run_queue(config)
    assert result.report.passed and result.report.sold == 20
    assert any(r.retries for r in result.rows), "four clerks in a 5-10 ms window must collide"


@pytest.mark.parametrize("batch", [1, 20])
def test_queue_sells_exactly_the_stock_on_every_engine(real_store: str, batch: int) -> None:
    strategies = ["atomic", "transaction", "file"]
    if kind_of(real_store) == "redis":
        strategies.append("lease")
    if kind_of(real_store) == "postgres":  # serializable retried: every batch gets through
        strategies = ["atomic", "for-update", "advisory", "serializable", "file"]
    for strategy in strategies:
        config = QueueConfig(
            store=parse_db(real_store),
            strategy=STRATEGIES[strategy],
            tickets=30,
            producers=2,
            orders=25,
            clerks=3,
            queue_size=50,
            batch=batch,
            delays=Delays.none(),
            stall_timeout=30.0,
            retries=50,
        )
        result = run_queue(config)
        report = result.report
        assert not report.failures() and (report.sold, report.remaining) == (30, 0), strategy
        # Without delays three clerks may not overlap (a busy machine runs
        # them one after another): then the sale proved nothing, and says so.
        assert report.passed or report.uncontended, strategy


def test_chaos_kills_on_real_stores_never_oversell(real_store: str) -> None:
    from tickets.engine.chaos import Chaos

    strategy = "atomic"
    result = buy(
        real_store,
        strategy=strategy,
        buyers=30,
        tickets=10,
        chaos=Chaos(kill_rate=0.4, pause_rate=0.0, seed=3),
    )
    assert result.chaos is not None and result.chaos["killed"] > 0
    assert result.report.passed, [c for c in result.report.checks if not c.passed]
    assert result.report.unknown > 0  # the killed are info, not fail


# -- the lease: not a mutex, unless fenced -----------------------------------


def lease_sale(url: str, fencing: bool) -> Any:
    """Every buyer holds the lease 300 ms between its read and its write;
    the lease lives 60 ms: the next buyer takes it and reads the same count."""
    from tickets.engine.chaos import Chaos

    chaos = Chaos(kill_rate=0.0, pause_rate=1.0, pause_length=0.3)
    return buy(
        url,
        strategy="lease",
        buyers=4,
        tickets=10,
        delays=Delays.none(),
        lease_ttl=0.06,
        fencing=fencing,
        chaos=chaos,
    )


def test_a_lease_outlived_by_its_holder_oversells(redis_url: str) -> None:
    from tickets.render.tables import verdict

    result = lease_sale(redis_url, fencing=False)
    report = result.report
    assert report.oversold > 0 and report.double_sold_seats, report
    assert not report.passed
    assert "a lease is not a mutex" in verdict(report, None, result.config.strategy).plain


def test_fencing_refuses_the_stale_holder(redis_url: str) -> None:
    result = lease_sale(redis_url, fencing=True)
    report = result.report
    assert report.passed and report.oversold == 0 and report.sold >= 1
    fenced = [r for r in result.rows if "fenced" in (r.reason or "")]
    assert fenced and all(r.result == "fail" for r in fenced)


@pytest.mark.parametrize("fencing", [False, True])
def test_clerks_that_outlive_their_lease(redis_url: str, fencing: bool) -> None:
    """The queue's clerks pause holding the lease too: three clerks, each
    holding a 60 ms lease for 250 ms between read and write."""
    from tickets.engine.chaos import Chaos

    config = QueueConfig(
        store=parse_db(redis_url),
        strategy=STRATEGIES["lease"],
        tickets=10,
        producers=1,
        orders=6,
        clerks=3,
        queue_size=6,
        batch=1,
        delays=Delays.none(),
        lease_ttl=0.06,
        fencing=fencing,
        chaos=Chaos(kill_rate=0.0, pause_rate=1.0, pause_length=0.25),
        stall_timeout=30.0,
    )
    result = run_queue(config)
    assert result.chaos is not None and result.chaos["paused"] == 3
    if fencing:
        assert result.report.passed and result.report.oversold == 0
        assert any("fenced" in (r.reason or "") for r in result.rows)
    else:
        assert result.report.oversold > 0 and not result.report.passed


def test_the_lease_options_need_the_lease(tmp_path: Path, invoke: Any) -> None:
    url = f"sqlite:{tmp_path / 'sale.db'}"
    result = invoke("--db", url, "buy", "--fencing", "--lock", "atomic")
    assert result.exit_code == 2 and "--fencing is for --lock lease" in result.output
    result = invoke("--db", url, "buy", "--lease-ttl", "50")
    assert result.exit_code == 2 and "--lease-ttl is for --lock lease" in result.output
    with pytest.raises(ConfigError, match="does not apply to a sqlite store"):
        BuyConfig(store=parse_db(url), strategy=STRATEGIES["lease"], buyers=2)


@pytest.mark.parametrize(
    ("db", "strategy"),
    [("tickets.json", "atomic"), ("sqlite:s.db", "lease"), ("redis://127.0.0.1:1/0", "deferred")],
)
def test_a_strategy_of_another_store_is_a_usage_error(invoke: Any, db: str, strategy: str) -> None:
    before = set(os.listdir("."))
    result = invoke("--db", db, "buy", "--lock", strategy, "--tickets", "3")
    assert result.exit_code == 2
    assert f"--lock {strategy} does not apply" in result.output
    assert "it takes none," in result.output
    assert set(os.listdir(".")) == before


# -- URLs --------------------------------------------------------------------


def test_urls_parse() -> None:
    spec = parse_db("redis://u:p%40ss@10.0.0.5:6380/3?key=sale:1")
    assert (spec.host, spec.port, spec.db, spec.key, spec.username, spec.password) == (
        "10.0.0.5",
        6380,
        3,
        "sale:1",
        "u",
        "p@ss",
    )
    assert spec.label == "redis://u:***@10.0.0.5:6380/3?key=sale:1"
    assert parse_db("redis://localhost").label == "redis://localhost:6379/0?key=tickets"
    assert parse_db("sqlite:///srv/x.db").path == "/srv/x.db"
    assert parse_db("sqlite:rel/x.db").path == "rel/x.db"
    assert parse_db("file:t.json").kind == "json" and parse_db("t.json").path == "t.json"
    assert parse_db("odd:name.json").path == "odd:name.json"  # a file name with a colon


@pytest.mark.parametrize(
    "url",
    [
        "redis://:hunter2@h:99999/0",
        "redis://:hunter2@h:port/0",
        "redis://:hunter2@h/1x",
        "redis://:hunter2@h/0?key=",
        "redis://:hunter2@h/0?kee=x",
        "redis://:hunter2@h/0?key=a&key=b",
        "rediss://:hunter2@h/0",
        "sqlite://remote/x.db",
        "sqlite:",
        "sqlite:///x.db?mode=ro",
        "postgres://:hunter2@h:99999/db",
        "postgresql://:hunter2@h/db?sslmode=require",
        "postgresql://:hunter2@h1,h2/db",
        "postgresql://:hunter2@h/db?table=no;drop",
        "postgresql://:hunter2@h/db?key=",
        "postgresql://:hunter2@h/a/b",
        "postgresql://:hunter2@h/db?host=relative/path",
        "postgres:/:hunter2@h/db",
        "redis://:hunter2@h/x",
    ],
)
def test_a_malformed_url_is_a_usage_error_without_its_password(invoke: Any, url: str) -> None:
    with pytest.raises(BadStoreURL):
        parse_db(url)
    result = invoke("--db", url, "status")
    assert result.exit_code == 2 and "--db" in result.output, result.output
    assert "hunter2" not in result.output
    assert "Traceback" not in result.output and not Path("history").exists()


# -- bad input and faults: one line, exit 3, nothing changed -----------------


def one_line_error(result: Any) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 3 and len(lines) == 1, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    return str(lines[0])


def test_an_unreachable_server_is_one_line(tmp_path: Path) -> None:
    from redis_server import free_port

    url = f"redis://:{REDIS_PASSWORD}@127.0.0.1:{free_port()}/0?key=k"
    for args in (["status"], ["buy", "-n", "3"], ["init"]):
        line = one_line_error(tickets("--db", url, *args))
        assert "cannot be reached" in line and REDIS_PASSWORD not in line
    assert not (tmp_path / "history").exists()


def test_a_stopped_server_times_out_at_the_connect_timeout(redis_server: Any) -> None:
    """SIGSTOPped: the TCP connection is accepted by the kernel, nothing
    answers. --connect-timeout bounds the wait."""
    redis_server.pause()
    try:
        t = time.monotonic()
        line = one_line_error(
            tickets("--connect-timeout", "0.5", "--db", redis_server.url(), "status", timeout=30)
        )
        took = time.monotonic() - t
    finally:
        redis_server.resume()
    assert "cannot be reached" in line and took < 15


def test_a_database_the_server_does_not_have_is_one_line(redis_server: Any) -> None:
    line = one_line_error(tickets("--db", redis_server.url(db=99), "status"))
    assert "DB index is out of range" in line and REDIS_PASSWORD not in line


def test_a_refused_password_is_one_line(redis_server: Any) -> None:
    line = one_line_error(tickets("--db", redis_server.url(password="wrong-secret"), "status"))
    assert "refused the user name or password" in line and "wrong-secret" not in line
    line = one_line_error(tickets("--db", redis_server.url(password=None), "status"))
    assert "refused the user name or password" in line


@pytest.mark.parametrize(
    ("setup", "words"),
    [
        (lambda c: c.rpush("t", "x"), "holds a list, not a count"),
        (lambda c: c.set("t", "ten"), "holds 'ten', not a whole number"),
        (lambda c: c.set("t", "-3"), "holds '-3', not a whole number"),
        (lambda c: c.set("t", "7.5"), "not a whole number"),
        (lambda c: None, "no such key"),
    ],
)
def test_a_bad_redis_key_is_one_line_and_unchanged(
    redis_server: Any, redis_url: str, setup: Any, words: str
) -> None:
    client = redis_server.client()
    setup(client)
    before = client.dump("t")
    for args in (
        ["status"],
        ["buy", "-n", "3", "--keep-stock"],
        ["queue", "--orders", "3", "--keep-stock"],
    ):
        line = one_line_error(tickets("--db", redis_url, *args))
        assert words in line and REDIS_PASSWORD not in line, line
    assert client.dump("t") == before
    assert not Path("history").exists()


def test_bad_sqlite_files_are_one_line_and_unchanged(tmp_path: Path) -> None:
    cases: dict[str, tuple[Any, str]] = {
        "text.db": (lambda p: p.write_text("not a database, " * 100), "not a SQLite database"),
        "empty-table.db": (
            lambda p: sqlite3.connect(p).execute("CREATE TABLE other (x)").close(),
            "has no tickets_stock table",
        ),
        "missing.db": (lambda p: None, "no such database"),
    }
    for name, (make, words) in cases.items():
        path = tmp_path / name
        make(path)
        before = path.read_bytes() if path.exists() else None
        for args in (["status"], ["buy", "-n", "2", "--keep-stock"]):
            line = one_line_error(tickets("--db", f"sqlite:{path}", *args))
            assert words in line, (name, line)
        assert (path.read_bytes() if path.exists() else None) == before, name
    fifo = tmp_path / "fifo.db"
    os.mkfifo(fifo)
    assert "not a regular file" in one_line_error(tickets("--db", f"sqlite:{fifo}", "status"))
    assert "not a regular file" in one_line_error(tickets("--db", f"sqlite:{fifo}", "init"))


def test_a_read_only_database_is_refused_before_anything_changes(tmp_path: Path) -> None:
    path = tmp_path / "sale.db"
    assert tickets("--db", f"sqlite:{path}", "init", "--tickets", "4").returncode == 0
    path.chmod(0o444)
    before = path.read_bytes()
    line = one_line_error(tickets("--db", f"sqlite:{path}", "buy", "-n", "2"))
    assert "read-only" in line and path.read_bytes() == before


def test_sqlite_init_and_status(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "sale.db"
    out = tickets("--db", f"sqlite:{path}", "init", "--tickets", "12", "--json")
    doc = json.loads(out.stdout)
    assert doc["count"] == 12 and doc["kind"] == "sqlite" and doc["store"] == f"sqlite:{path}"
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT count FROM tickets_stock").fetchone()[0] == 12
    assert "12 tickets left" in tickets("--db", f"sqlite:{path}", "status").stdout


# -- the password never shows ------------------------------------------------


def test_the_password_never_shows(redis_url: str, tmp_path: Path) -> None:
    texts = []
    for args in (
        ["init", "-t", "5"],
        ["status"],
        ["buy", "-n", "6", "--no-delay"],
        ["buy", "-n", "6", "--no-delay", "--json"],
        ["queue", "--orders", "4"],
        ["race", "-n", "4", "--no-delay", "--json"],
        ["history"],
    ):
        done = tickets("--db", redis_url, *args)
        assert done.returncode in (0, 1, 5), (args, done.stderr)  # 5: the key was sold out
        texts += [done.stdout, done.stderr]
    histories = list((tmp_path / "history").glob("*.jsonl"))
    assert histories
    texts += [p.read_text() for p in histories]
    texts.append(tickets("check", str(tmp_path / "history")).stdout)
    assert all(REDIS_PASSWORD not in text for text in texts)
    assert any("redis://:***@127.0.0.1" in text for text in texts)


# -- histories of different stores -------------------------------------------


def test_check_refuses_to_merge_histories_of_different_stores(
    tmp_path: Path, redis_url: str
) -> None:
    paths: list[str] = []
    for url in (f"sqlite:{tmp_path / 'a.db'}", redis_url, str(tmp_path / "c.json")):
        history = tmp_path / f"{len(paths)}.jsonl"
        result = buy(url, strategy="file", buyers=3, tickets=3, history=history)
        paths.append(str(result.history))
    line = one_line_error(tickets("check", "--one-sale", *paths))
    assert "different stores" in line
    assert tickets("check", *paths).returncode == 0  # one at a time: each passes


# -- a server that dies mid-sale ---------------------------------------------


@pytest.mark.timeout(180)
def test_a_server_killed_mid_sale_ends_the_run_without_a_hang(tmp_path: Path) -> None:
    from redis_server import RedisServer, find_binary

    binary = find_binary()
    assert binary is not None
    server = RedisServer(binary)
    try:
        url = server.url(key="dies")
        assert tickets("--db", url, "init", "-t", "100").returncode == 0
        run = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tickets",
                "--connect-timeout",
                "1",
                "--db",
                url,
                "buy",
                "-n",
                "60",
                "--lock",
                "flock",
                "--search-delay",
                "300",
                "--write-delay",
                "80",
                "--json",
                "--history",
                str(tmp_path / "h.jsonl"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        history, deadline = tmp_path / "h.jsonl", time.monotonic() + 60
        while not (history.exists() and '"invoke"' in history.read_text()):  # under way
            assert time.monotonic() < deadline and run.poll() is None, "the sale never began"
            time.sleep(0.02)
        server.kill()
        out, err = run.communicate(timeout=120)
    finally:
        server.stop()
    assert run.returncode in (3, 4), (run.returncode, err[-2000:])
    doc = json.loads(out)
    assert doc["passed"] is False and "cannot be reached" in str(doc.get("checks"))
    checked = tickets("check", str(tmp_path / "h.jsonl"), "--json")
    report = json.loads(checked.stdout)
    names = {c["name"]: c["passed"] for c in report["checks"]}
    assert names["store valid after the run"] is False
    assert names["no seat sold twice"] is True  # what is known is still judged


def test_race_and_timeline_on_a_real_store(real_store: str, tmp_path: Path) -> None:
    """The unlocked side oversells and the store's own strategy does not, side
    by side; the worst run's timeline draws from its history."""
    svg = tmp_path / "race.svg"
    done = tickets(
        "--db",
        real_store,
        "race",
        "-n",
        "12",
        "-t",
        "10",  # a missing key is made only when asked (a typo would make one)
        "--strategies",
        "none,atomic",
        "--write-delay",
        "60",
        "--search-delay",
        "1",
        "--expect-oversell",
        "--json",
        "--svg",
        str(svg),
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    sides = {s["strategy"]: s for s in doc["strategies"]}
    assert sides["none"]["oversold_trials"] == 1 and sides["atomic"]["oversold_trials"] == 0
    assert {run["store_kind"] for run in doc["runs"]} == {kind_of(real_store)}
    assert svg.read_text().startswith("<svg")
    history = next(run["history"] for run in doc["runs"] if run["strategy"] == "none")
    drawn = tickets("timeline", history, "--width", "100")
    assert drawn.returncode == 0 and "same seat as another buyer" in drawn.stdout


def test_init_makes_an_empty_sqlite_file_a_store(tmp_path: Path) -> None:
    """A 0-byte file is an empty SQLite database (`touch`, another
    connection's): init makes it a store, where it said to run init."""
    db = tmp_path / "e.db"
    db.touch()
    url = f"sqlite:{db}"
    status = tickets("--db", url, "status")
    assert status.returncode == 3 and "tickets init" in status.stderr
    assert tickets("--db", url, "init", "-t", "5").returncode == 0
    done = tickets("--db", url, "status")
    assert done.returncode == 0 and "5 tickets left" in done.stdout
