"""The PostgreSQL store on a real PostgreSQL 16 server (tests/pg_server.py,
started by the session): its URLs, each isolation strategy's verdict, the
explorer's READ COMMITTED lost update, the user's own code and commands on
it, and its faults, each one line, exit 3, nothing half made."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from helpers import read_json_lines
from tickets.stores.spec import BadStoreURL, parse_db

pytestmark = pytest.mark.timeout(120)

ISOLATION = "read-committed,repeatable-read,serializable,for-update,advisory,atomic"
EXAMPLE = str(Path(__file__).resolve().parent.parent / "examples" / "booking.py")


def tickets(*args: str, timeout: float = 90, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tickets", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        **kw,
    )


def one_line_error(done: subprocess.CompletedProcess[str], code: int = 3) -> str:
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, done.stderr
    return lines[0]


def table_of(url: str) -> str:
    return url.split("table=")[1].split("&")[0]


def tables(pg_server: Any) -> set[str]:
    rows = pg_server.sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {str(row[0]) for row in rows}


# -- the URL -------------------------------------------------------------------


def test_the_url_forms_libpq_reads() -> None:
    spec = parse_db("postgresql://ann:s%40cret@db.example:5433/shop?table=sales.stock&key=gig")
    assert (spec.kind, spec.host, spec.port, spec.db) == ("postgres", "db.example", 5433, "shop")
    assert (spec.username, spec.password, spec.table, spec.key) == (
        "ann",
        "s@cret",
        "sales.stock",
        "gig",
    )
    assert "s@cret" not in spec.label and "s%40cret" not in spec.label
    assert spec.label == "postgresql://ann:***@db.example:5433/shop?table=sales.stock&key=gig"
    env = spec.environment()
    assert env["TICKETS_STORE"] == "postgresql://ann:s%40cret@db.example:5433/shop"
    assert (env["TICKETS_STORE_TABLE"], env["TICKETS_STORE_KEY"]) == ("sales.stock", "gig")
    # pgserver's form: an empty host, the socket's folder as ?host=
    sock = parse_db("postgres://postgres@/postgres?host=/tmp/pg.sock.d")
    assert (sock.host, sock.port, sock.table, sock.key) == (
        "/tmp/pg.sock.d",
        None,
        "tickets_stock",
        "tickets",
    )
    assert (
        sock.label
        == "postgresql://postgres@/postgres?host=/tmp/pg.sock.d&table=tickets_stock&key=tickets"
    )
    # libpq's parameters win over the URL's parts, as in libpq
    given = parse_db("postgresql:///?user=bob&password=pw&port=6000&dbname=d&host=h")
    assert (given.username, given.password, given.port, given.db, given.host) == (
        "bob",
        "pw",
        6000,
        "d",
        "h",
    )
    bare = parse_db("postgresql://")  # everything from libpq's defaults (PGHOST, ...)
    assert (bare.host, bare.port, bare.db, bare.username) == (None, None, None, None)
    assert parse_db("postgresql://[::1]:5432/x").host == "::1"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://:pw-secret@h:0/db",
        "postgresql://:pw-secret@h/db?sslmode=require",
        "postgresql://:pw-secret@h1,h2/db",
        "postgresql://:pw-secret@h/db?table=1abc",
        "postgresql://:pw-secret@h/db?table=a;drop",
        "postgresql://:pw-secret@h/db?key=",
        "postgresql://:pw-secret@h/db?key=a&key=b",
        "postgresql://:pw-secret@h/db#x",
        "postgresql://:pw-secret@h/db?host=not/absolute",
        "postgresql://:pw-secret@h/d%ffb",
        "postgres:pw-secret@h/db",
    ],
)
def test_a_bad_url_is_one_line_exit_2_without_its_password(url: str) -> None:
    with pytest.raises(BadStoreURL) as err:
        parse_db(url)
    assert "pw-secret" not in str(err.value)
    done = tickets("--db", url, "status")
    assert done.returncode == 2 and "pw-secret" not in done.stderr + done.stdout, done.stderr
    assert "Traceback" not in done.stderr


def test_without_psycopg_a_postgres_store_names_the_extra(tmp_path: Path) -> None:
    """psycopg missing (hidden from the interpreter): exit 2, one line naming
    ``pip install 'tickets[postgres]'``; the other stores work as before."""
    blocker = (
        "import sys, importlib.abc\n"
        "class Hide(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.partition('.')[0] == 'psycopg':\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Hide())\n"
        "from tickets.__main__ import main\n"
        "sys.argv[0] = 'tickets'\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", blocker, "--db", "postgresql://u@/d?host=/tmp", "status"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    line = one_line_error(done, 2)
    assert "pip install 'tickets[postgres]'" in line
    json_store = tmp_path / "t.json"
    done = subprocess.run(
        [sys.executable, "-c", blocker, "--db", str(json_store), "init", "-t", "3"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and json.loads(json_store.read_text()) == {"count": 3}


# -- the strategies, side by side ------------------------------------------------


def race(url: str, *extra: str) -> dict[str, Any]:
    done = tickets(
        "--db", url, "race", "--strategies", ISOLATION, "-n", "16", "-t", "5",
        "--write-delay", "20", "--json", *extra,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def test_the_isolation_levels_side_by_side(pg_url: str) -> None:
    """READ COMMITTED loses updates; REPEATABLE READ and SERIALIZABLE refuse
    the second writer (known failures, nothing oversold); FOR UPDATE, the
    advisory lock and the conditional UPDATE sell exactly the stock."""
    assert tickets("--db", pg_url, "init", "-t", "5").returncode == 0
    doc = race(pg_url)
    runs = {run["strategy"]: run for run in doc["runs"]}
    sides = {side["strategy"]: side for side in doc["strategies"]}
    assert runs["read-committed"]["oversold"] > 0 and not runs["read-committed"]["passed"]
    assert runs["read-committed"]["double_sold_seats"]
    for name in ("repeatable-read", "serializable"):
        run = runs[name]
        assert run["passed"] and run["oversold"] == 0, name
        assert run["turned_away"] > 0 and run["sold"] < 5, name  # refused, not retried
        assert run["sold"] == 5 - run["remaining"], name
        assert any(b["reason"].startswith("refused: the database refused") for b in run["buyers"]
                   if b["reason"]), name  # fmt: skip
        assert sides[name]["turned_away"] == run["turned_away"], name
    for name in ("for-update", "advisory", "atomic"):
        run = runs[name]
        assert run["passed"] and (run["sold"], run["remaining"], run["oversold"]) == (5, 0, 0)
    history = read_json_lines(Path(runs["serializable"]["history"]))
    assert history[0]["store_kind"] == "postgres" and history[0]["version"] == 3
    assert history[0]["retries"] == 0
    checked = tickets("check", runs["serializable"]["history"])
    assert checked.returncode == 0, checked.stdout


def test_with_retries_every_ticket_sells_exactly_once(pg_url: str) -> None:
    assert tickets("--db", pg_url, "init", "-t", "5").returncode == 0
    done = tickets(
        "--db", pg_url, "race", "--strategies", "repeatable-read,serializable", "-n", "16",
        "-t", "5", "--write-delay", "20", "--retries", "100", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    for run in doc["runs"]:
        assert (run["sold"], run["remaining"], run["oversold"]) == (5, 0, 0), run["strategy"]
        assert run["retries"] > 0 and run["retries"] == sum(
            b.get("retries", 0) for b in run["buyers"]
        )
        assert run["turned_away"] == 0
        history = read_json_lines(Path(run["history"]))
        assert history[0]["retries"] == 100
        assert sum(ev.get("retries", 0) for ev in history[1:]) == run["retries"]
    assert [side["retries"] for side in doc["strategies"]] == [r["retries"] for r in doc["runs"]]


def test_retries_is_refused_where_nothing_can_be_refused(pg_url: str, tmp_path: Path) -> None:
    done = tickets("--db", pg_url, "buy", "--lock", "for-update", "--retries", "3", "-t", "3",
                   "--write-delay", "5")  # fmt: skip
    assert done.returncode == 0, done.stderr  # a deadlock may refuse for-update too
    line = one_line_error(tickets("--db", str(tmp_path / "t.json"), "buy", "--retries", "3"), 2)
    assert "--retries" in line and not (tmp_path / "t.json").exists()
    line = one_line_error(tickets("--db", pg_url, "buy", "--lock", "transaction"), 2)
    assert "transaction" in line and "for-update" in line


def test_the_tool_s_own_locks_work_on_postgres(pg_url: str) -> None:
    for lock in ("file", "flock", "process"):
        done = tickets(
            "--db", pg_url, "buy", "--lock", lock, "-n", "12", "-t", "4",
            "--write-delay", "5", "--json",
        )  # fmt: skip
        doc = json.loads(done.stdout)
        assert done.returncode == 0 and (doc["sold"], doc["remaining"]) == (4, 0), lock
    done = tickets("--db", pg_url, "buy", "--lock", "none", "-n", "12", "-t", "4",
                   "--write-delay", "20", "--json")  # fmt: skip
    assert done.returncode == 1 and json.loads(done.stdout)["oversold"] > 0


def test_a_queue_of_clerks_retries_a_refused_batch(pg_url: str) -> None:
    done = tickets(
        "--db", pg_url, "queue", "--lock", "serializable", "-t", "20", "--producers", "2",
        "--orders", "15", "--clerks", "4", "--write-delay", "5", "--retries", "100", "--json",
    )  # fmt: skip
    doc = json.loads(done.stdout)
    assert done.returncode in (0, 5) and (doc["sold"], doc["remaining"]) == (20, 0), doc


# -- the explorer ------------------------------------------------------------------


def test_explore_finds_the_read_committed_lost_update(pg_url: str, tmp_path: Path) -> None:
    done = tickets("--db", pg_url, "explore", "--lock", "read-committed", "-n", "2", "-t", "1",
                   cwd=tmp_path)  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "seat 1 sold twice (buyers 0 and 1)" in done.stdout
    assert "FAILED: --lock read-committed, 2 buyers over 1 ticket, 1 preemption" in done.stdout
    replay = next(line for line in done.stdout.splitlines() if line.startswith("replay "))
    again = subprocess.run(
        [sys.executable, "-m", *replay.split(None, 1)[1].replace("'", "").split()],
        capture_output=True, text=True, timeout=90, cwd=tmp_path,
    )  # fmt: skip
    assert again.returncode == 1 and "it broke as saved" in again.stdout, again.stdout
    for lock in ("repeatable-read", "for-update", "advisory", "atomic"):
        done = tickets("--db", pg_url, "explore", "--lock", lock, "-n", "2", "-t", "1",
                       cwd=tmp_path)  # fmt: skip
        assert done.returncode == 0 and "PASSED: all" in done.stdout, (lock, done.stdout)
    leftover = [t for t in tables_of(pg_url) if t.startswith("tickets_explore_")]
    assert leftover == []


@pytest.mark.parametrize("lock", ["repeatable-read", "serializable", "for-update"])
def test_explore_waits_for_the_row_lock_as_the_server_does(
    pg_url: str, tmp_path: Path, lock: str
) -> None:
    """A write in one buyer's transaction while another's holds the row: the
    explorer lets it wait for the commit (as the server does), never
    refuses it, so correct code is not failed by a wait the explorer made up."""
    done = tickets("--db", pg_url, "explore", "--buy", f"{EXAMPLE}:take_ticket", "--lock", lock,
                   "-n", "2", "-t", "1", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0 and "PASSED: all" in done.stdout, done.stdout[-3000:]
    broken = tickets("--db", pg_url, "explore", "--buy", f"{EXAMPLE}:take_ticket_broken",
                     "--lock", lock, "-n", "2", "-t", "1", cwd=tmp_path)  # fmt: skip
    assert broken.returncode == 1 and "sold twice" in broken.stdout, broken.stdout[-3000:]


def tables_of(url: str) -> list[str]:
    from tickets import open_db

    store = open_db(url)
    try:
        raw: Any = store.raw_handle()
        rows = raw.execute("SELECT tablename FROM pg_tables").fetchall()
        return [str(row[0]) for row in rows]
    finally:
        store.close()


# -- the user's own code and commands ------------------------------------------------

BUYERS = '''
def naive(store):
    """The bug the tool exists to catch: read, then write what was read, minus one."""
    conn = store.raw
    table, key = store.table, store.key
    (count,) = conn.execute(f"SELECT count FROM {table} WHERE key = %s", (key,)).fetchone()
    if count == 0:
        return None
    store.wait()
    conn.execute(f"UPDATE {table} SET count = %s WHERE key = %s", (count - 1, key))
    return count


def locked(store):
    conn = store.raw
    table, key = store.table, store.key
    with conn.transaction():
        row = conn.execute(
            f"SELECT count FROM {table} WHERE key = %s FOR UPDATE", (key,)
        ).fetchone()
        if row[0] == 0:
            return None
        store.wait()
        conn.execute(f"UPDATE {table} SET count = %s WHERE key = %s", (row[0] - 1, key))
    return row[0]
'''


def test_the_user_s_function_is_called_again_when_the_database_refuses(pg_url: str) -> None:
    """Under serializable, the handle's transaction refused: without --retries
    the purchase ends on the error; with it the function runs again."""
    common = ("--db", pg_url, "buy", "--buy", f"{EXAMPLE}:take_ticket", "--lock",
              "serializable", "-n", "10", "-t", "5", "--write-delay", "20", "--json")  # fmt: skip
    once = tickets(*common)
    doc = json.loads(once.stdout)
    assert once.returncode == 1 and doc["unknown"] > 0 and doc["oversold"] == 0, once.stdout
    again = tickets(*common, "--retries", "30")
    doc = json.loads(again.stdout)
    assert again.returncode == 0 and (doc["sold"], doc["remaining"]) == (5, 0), again.stdout
    assert doc["retries"] > 0


def test_the_user_s_own_sql_is_judged(pg_url: str, tmp_path: Path) -> None:
    (tmp_path / "shop.py").write_text(BUYERS)
    common = ("-n", "12", "-t", "4", "--write-delay", "20", "--json")
    naive = tickets("--db", pg_url, "buy", "--buy", "shop.py:naive", *common, cwd=tmp_path)
    assert naive.returncode == 1, naive.stderr
    assert json.loads(naive.stdout)["oversold"] > 0
    good = tickets("--db", pg_url, "buy", "--buy", "shop.py:locked", *common, cwd=tmp_path)
    assert good.returncode == 0, good.stdout[-2000:] + good.stderr
    assert (json.loads(good.stdout)["sold"], json.loads(good.stdout)["remaining"]) == (4, 0)


EXEC_BUYER = (
    "import os, sys, psycopg\n"
    "conn = psycopg.connect(os.environ['TICKETS_STORE'], autocommit=True)\n"
    "t, k = os.environ['TICKETS_STORE_TABLE'], os.environ['TICKETS_STORE_KEY']\n"
    "row = conn.execute(f'UPDATE {t} SET count = count - 1 WHERE key = %s AND count > 0 '\n"
    "                   'RETURNING count + 1', (k,)).fetchone()\n"
    "sys.exit(22) if row is None else print(row[0])\n"
)


def test_a_command_buyer_gets_the_url_and_the_password_stays_hidden(
    pg_server: Any, tmp_path: Path
) -> None:
    secret = "pw-" + os.urandom(6).hex()
    url = pg_server.password_url(secret, "t_" + os.urandom(6).hex())
    (tmp_path / "buyer.py").write_text(EXEC_BUYER)
    assert tickets("--db", url, "init", "-t", "4").returncode == 0
    done = tickets(
        "--db", url, "buy", "--exec", f"{sys.executable} buyer.py", "-n", "8",
        "--history", str(tmp_path / "h.jsonl"), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode in (0, 5), done.stdout[-2000:] + done.stderr
    assert "4 sold from a stock of 4" in done.stdout
    assert secret not in done.stdout + done.stderr
    assert secret not in (tmp_path / "h.jsonl").read_text()
    wrong = url.replace(secret, "nope")
    line = one_line_error(tickets("--db", wrong, "status"))
    assert "refused the user name or password" in line and "nope" not in line


# -- faults: one line, exit 3, nothing half made -----------------------------------------


def test_a_table_of_another_shape_is_refused_and_left_alone(pg_server: Any) -> None:
    name = "t_" + os.urandom(6).hex()
    pg_server.sql(f"CREATE TABLE {name} (key integer PRIMARY KEY, count text)")
    pg_server.sql(f"INSERT INTO {name} VALUES (1, 'x')")
    url = pg_server.url(table=name)
    for args in (["status"], ["init", "-t", "5"], ["buy", "-n", "3", "-t", "5"]):
        line = one_line_error(tickets("--db", url, *args))
        assert f"table {name} is not a tickets table" in line, line
    assert pg_server.sql(f"SELECT * FROM {name}") == [(1, "x")]


def test_a_role_that_may_not_write_is_refused_before_anything(pg_server: Any, pg_url: str) -> None:
    assert tickets("--db", pg_url, "init", "-t", "5").returncode == 0
    table = table_of(pg_url)
    role = "ro_" + os.urandom(4).hex()
    pg_server.sql(f"CREATE ROLE {role} LOGIN")
    pg_server.sql(f"GRANT SELECT ON {table} TO {role}")
    url = pg_url.replace("postgres@", f"{role}@")
    line = one_line_error(tickets("--db", url, "buy", "-n", "4", "--keep-stock"))
    assert "is not writable by this role" in line
    line = one_line_error(tickets("--db", url, "init", "-t", "9"))
    assert "not writable" in line or "not allowed" in line
    assert pg_server.sql(f"SELECT count FROM {table}") == [(5,)]
    new = "t_" + os.urandom(6).hex()
    one_line_error(tickets("--db", url.replace(table, new), "init", "-t", "3"))
    assert new not in tables(pg_server)  # nothing half made
    pg_server.sql(f"ALTER ROLE {role} SET default_transaction_read_only = on")
    pg_server.sql(f"GRANT ALL ON {table} TO {role}")
    line = one_line_error(tickets("--db", url, "buy", "-n", "4", "-t", "3"))
    assert "is read-only" in line
    assert pg_server.sql(f"SELECT count FROM {table}") == [(5,)]


def test_a_table_held_by_another_session_is_a_timeout(pg_server: Any, pg_url: str) -> None:
    assert tickets("--db", pg_url, "init", "-t", "5").returncode == 0
    with pg_server.connect() as other:
        other.execute("BEGIN")
        other.execute(f"LOCK TABLE {table_of(pg_url)} IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        done = tickets("--db", pg_url, "buy", "-n", "4", "-t", "5", "--lock-timeout", "0.5")
        line = one_line_error(done)
        assert "was not acquired within 0.5s" in line and time.monotonic() - started < 30
        other.execute("ROLLBACK")
    assert pg_server.sql(f"SELECT count FROM {table_of(pg_url)}") == [(5,)]


def test_no_server_and_a_silent_server_are_one_line(tmp_path: Path) -> None:
    line = one_line_error(tickets("--db", f"postgresql://u@/d?host={tmp_path}", "status"))
    assert "cannot be reached" in line
    with socket.socket() as silent:  # accepts connections and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        started = time.monotonic()
        done = tickets("--connect-timeout", "1", "--db", f"postgresql://u:pw-x@127.0.0.1:{port}/d",
                       "buy", "-n", "3", "-t", "3")  # fmt: skip
        line = one_line_error(done)
        assert "cannot be reached (connection timeout expired)" in line and "pw-x" not in line
        assert time.monotonic() - started < 20


def test_the_server_killed_mid_sale(tmp_path: Path) -> None:
    """In-flight purchases are unknown outcomes; the run ends (exit 3: the
    stock after the sale cannot be read), its history finished, no process left."""
    from pg_server import PostgresServer, find_binaries

    binaries = find_binaries()
    assert binaries is not None
    server = PostgresServer(binaries)
    try:
        url = server.url(table="k")
        assert tickets("--db", url, "init", "-t", "20").returncode == 0
        history = tmp_path / "h.jsonl"
        run = subprocess.Popen(
            [sys.executable, "-m", "tickets", "--db", url, "buy", "-n", "30", "--write-delay",
             "300", "--lock", "for-update", "--history", str(history)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not (history.exists() and history.read_text().count('"type":"ok"') >= 2):
            assert time.monotonic() < deadline and run.poll() is None, "no sale began"
            time.sleep(0.02)
        server.kill()
        out, err = run.communicate(timeout=90)
        assert run.returncode == 3, out[-2000:] + err
        assert "Traceback" not in err
        events = read_json_lines(history)
        assert events[-1]["type"] == "end" and events[-1]["store_error"]
        assert sum(1 for ev in events if ev["type"] == "ok") >= 2
        assert any(ev["type"] == "info" for ev in events)
        pids = {ev["pid"] for ev in events if "pid" in ev} - {os.getpid()}
        alive = [pid for pid in pids if Path(f"/proc/{pid}").exists()]
        assert alive == []
    finally:
        server.stop()


def test_a_postgres_history_of_an_older_format_is_refused(pg_url: str, tmp_path: Path) -> None:
    assert tickets("--db", pg_url, "init", "-t", "3").returncode == 0
    done = tickets("--db", pg_url, "buy", "-n", "6", "--lock", "for-update", "--write-delay",
                   "5", "--history", str(tmp_path / "h.jsonl"))  # fmt: skip
    assert done.returncode == 0, done.stdout[-1500:]
    lines = (tmp_path / "h.jsonl").read_text().splitlines()
    assert tickets("check", str(tmp_path / "h.jsonl")).returncode == 0
    forged = tmp_path / "old.jsonl"
    forged.write_text(
        "\n".join([lines[0].replace('"version":3', '"version":2'), *lines[1:]]) + "\n"
    )
    line = one_line_error(tickets("check", str(forged)))
    assert "format version 2 lacks" in line
