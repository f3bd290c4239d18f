"""What a developer wiring the tool into CI on a Friday afternoon falls
into: each trap found by trying the README as a new user would, and the
behaviour that replaced it (their own database, their own bug, what a
PASSED leaves unsold, a typo in ``?key=``, a narrow terminal, the newest
history by default, the live line of a big sale)."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tickets.cli.console import LiveProgress
from tickets.engine.rows import Progress

ROOT = Path(__file__).resolve().parent.parent
BROKEN = f"{ROOT / 'examples' / 'booking.py'}:take_ticket_broken"
#: A race window every buyer overlaps in, even on a busy machine.
WIDE = ["--search-delay", "20", "--write-delay", "20"]

#: A correct purchase that sells from a database of its own (BEGIN IMMEDIATE).
OWN_DB = """
import sqlite3

def buy(store):
    db = sqlite3.connect("shop.db", timeout=30, isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        (count,) = db.execute("SELECT count FROM stock").fetchone()
        if count <= 0:
            db.execute("ROLLBACK")
            return None
        db.execute("UPDATE stock SET count = ?", (count - 1,))
        db.execute("COMMIT")
        return count
    finally:
        db.close()
"""
SHOP_STOCK = (
    f'{sys.executable} -c "import sqlite3; '
    "print(sqlite3.connect('shop.db').execute('SELECT count FROM stock').fetchone()[0])\""
)


def tickets(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tickets", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def own_shop(tmp_path: Path) -> None:
    (tmp_path / "shop.py").write_text(OWN_DB)
    db = sqlite3.connect(tmp_path / "shop.db")
    db.execute("CREATE TABLE stock (count INTEGER)")
    db.execute("INSERT INTO stock VALUES (10)")
    db.commit()
    db.close()


@pytest.mark.timeout(120)
def test_a_function_selling_from_its_own_database_is_told_about_stock_cmd(tmp_path: Path) -> None:
    own_shop(tmp_path)
    done = tickets("buy", "--buy", "shop.py:buy", "-n", "20", "-t", "10", *WIDE)
    assert done.returncode == 1  # judged by a store it never touched: it looks oversold
    assert "hint: your function sold 10 but the store it was handed" in done.stdout
    assert "--stock-cmd" in done.stdout and "tickets.json) never changed" in done.stdout
    # Judged by its own stock, read before and after: it passes
    db = sqlite3.connect(tmp_path / "shop.db")
    db.execute("UPDATE stock SET count = 10")
    db.commit()
    done = tickets("buy", "--buy", "shop.py:buy", "-n", "20", "--stock-cmd", SHOP_STOCK, *WIDE)
    assert done.returncode == 0, done.stdout
    assert "PASSED: 10 sold from a stock of 10" in done.stdout and "hint" not in done.stdout


@pytest.mark.timeout(60)
def test_the_users_own_oversell_is_their_bug_not_an_expected_one() -> None:
    done = tickets("buy", "--buy", BROKEN, "--lock", "none", "-n", "20", "-t", "5", *WIDE)
    assert done.returncode == 1
    assert "as expected" not in done.stdout
    assert re.search(r"^FAILED: oversold by \d+$", done.stdout, re.M), done.stdout
    # the tool's own lock-free strategy is still the expected demonstration
    done = tickets("buy", "--lock", "none", "-n", "20", "-t", "5", *WIDE)
    assert done.returncode == 1 and "FAILED, as expected with --lock none" in done.stdout


@pytest.mark.timeout(60)
def test_a_passed_sale_that_left_tickets_says_how_many_and_why() -> None:
    """More tickets than buyers: every buyer served, the rest unsold."""
    done = tickets("buy", "-n", "4", "-t", "9", *WIDE)
    assert done.returncode == 0, done.stdout
    assert done.stdout.strip().splitlines()[-1] == (
        "PASSED: 4 sold from a stock of 9, nothing oversold; 5 left unsold: "
        "every buyer who came was served (more tickets than buyers)"
    )


@pytest.mark.timeout(60)
def test_the_ticket_ids_hint_is_not_given_for_a_real_oversell() -> None:
    """Every command answers seat 5: a genuine oversell, which ids would hide."""
    done = tickets("buy", "-n", "4", "--exec", "echo 5", "--stock-cmd", "echo 5")
    assert done.returncode == 1 and "sold more than once" in done.stdout
    assert "--ticket-ids" not in done.stdout


@pytest.mark.timeout(120)
@pytest.mark.parametrize("command", ["buy", "queue", "race"])
def test_a_missing_redis_key_is_refused_not_made(redis_url: str, command: str) -> None:
    import redis

    typo = redis_url.replace("key=t", "key=typo")
    done = tickets("--db", typo, command)
    assert done.returncode == 3, done.stdout + done.stderr
    [line] = done.stderr.strip().splitlines()
    assert "key=typo: no such key" in line and "init -t N" in line and "a typo" in line
    client = redis.Redis.from_url(redis_url.split("?")[0])
    try:
        assert client.exists("typo") == 0  # nothing was made
        tickets_given = tickets("--db", typo, command, "-t", "6", *WIDE)
        assert tickets_given.returncode in (0, 5), tickets_given.stdout  # asked for: made
        assert client.exists("typo") == 1
    finally:
        client.close()
    assert not list(Path.cwd().glob("redis-*"))  # lock and claim: not in this folder
    assert list((Path(os.environ["XDG_RUNTIME_DIR"]) / "tickets").glob("redis-*.sale"))


def test_a_server_store_s_lock_folder_must_be_the_user_s_own(
    redis_url: str, tmp_path: Path
) -> None:
    folder = Path(os.environ["XDG_RUNTIME_DIR"]) / "tickets"
    folder.mkdir(parents=True, mode=0o777)
    folder.chmod(0o777)  # open to others: anyone could plant a lock file
    done = tickets("--db", redis_url, "init", "-t", "3")
    assert done.returncode == 3 and "is not this user's own folder" in done.stderr
    folder.chmod(0o700)
    assert tickets("--db", redis_url, "init", "-t", "3").returncode == 0


@pytest.mark.timeout(60)
def test_check_and_timeline_take_the_newest_history(tmp_path: Path) -> None:
    for command in ("check", "timeline"):
        done = tickets(command)
        assert done.returncode == 2 and "history/ to " in done.stderr, command
        assert "run a sale first, or name a history file" in done.stderr
    assert tickets("buy", "-n", "3", "-t", "1", "--lock", "flock", *WIDE).returncode == 0
    assert tickets("buy", "-n", "6", "-t", "5", "--lock", "none", *WIDE).returncode == 1
    newest = max(tmp_path.glob("history/*.jsonl"), key=lambda p: p.stat().st_mtime_ns)
    done = tickets("check", "--json")
    assert done.returncode == 1 and json.loads(done.stdout)["histories"] == [str(newest)]
    assert done.stderr.strip() == f"check: the newest history, {newest}"
    done = tickets("timeline", "--width", "80")
    assert done.returncode == 0 and "strategy none" in done.stdout
    # A newer history of another store beside it is not this store's newest
    assert tickets("--db", "other.json", "buy", "-n", "3", "-t", "3", *WIDE).returncode == 0
    done = tickets("check", "--json")
    assert done.returncode == 1 and json.loads(done.stdout)["histories"] == [str(newest)]


def test_make_run_says_where_the_command_is() -> None:
    text = (ROOT / "Makefile").read_text()
    run = text.split("\nrun:", 1)[1].split("\n\n", 1)[0]
    assert "activate' puts tickets on your PATH" in run and "exit $$status" in run
    readme = (ROOT / "README.md").read_text()
    assert ". .venv/bin/activate" in readme[:2000]


@pytest.mark.timeout(120)
def test_a_narrow_terminal_keeps_history_paths_whole() -> None:
    env = {**os.environ, "COLUMNS": "60"}
    for args in (["buy", "-n", "5", "-t", "3"], ["race", "-n", "5", "-t", "3"]):
        done = tickets(*args, *WIDE, env=env)
        assert done.returncode == 0, done.stdout
        paths = re.findall(r"\S*history/\S+\.jsonl", done.stdout)
        assert paths and all(Path(p).is_file() for p in paths), done.stdout
        if args[0] == "race":
            assert all(f"\n  {p}\n" in done.stdout for p in paths)  # indented, whole


@pytest.mark.timeout(60)
def test_queue_shows_its_summary_before_its_tables() -> None:
    done = tickets("queue", "--clerks", "2", "-t", "5", *WIDE)
    lines = done.stdout.splitlines()
    assert lines[0].startswith("initial") and lines.index("") < next(
        i for i, line in enumerate(lines) if "producers" in line
    )


def test_the_live_line_counts_with_separators_and_waits_for_a_real_eta(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No ETA from the first second, none while the stock lasts (the sold
    out buyers to come are far faster), then one from the recent rate."""
    now = [100.0]
    monkeypatch.setattr("time.monotonic", lambda: now[0])
    live = LiveProgress("", "buy --lock file")
    said: list[str] = []
    monkeypatch.setattr(live, "_beat", said.append)

    def at(t: float, **fields: Any) -> str:
        now[0] = t
        live(Progress(total=200_000, stock=2_000, **fields))
        return said[-1]

    assert at(100.0, done=0) if said else True
    assert at(100.2, done=10, sold=10).endswith(
        "10/200,000 buyers done, 10 sold, 0 oversold so far"
    )
    assert at(103.2, done=910, sold=910).endswith(", 300/s")  # selling: a rate, no ETA
    line = at(106.2, done=42_000, sold=2_000)
    assert "42,000/200,000 buyers done, 2,000 sold" in line and ", ETA 0:00:" in line
    assert "ETA 0:1" not in line and "ETA 1:" not in line
    said.clear()
    live(Progress(total=50, stock=10), "race: file, trial 2/3")  # a new trial: nothing yet
    assert said == []


@pytest.mark.timeout(120)
def test_the_concurrent_process_lock_example_shows_seats_sold_twice(tmp_path: Path) -> None:
    """docs/faults.md's three runs at once, each with its own process lock."""
    text = (ROOT / "docs" / "faults.md").read_text()
    script = re.search(r"```sh\n(tickets init --tickets 60\n.*?)```", text, re.S)
    assert script is not None
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run(
        ["sh", "-c", script.group(1)], capture_output=True, text=True, env=env, timeout=110
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "no seat sold twice: " in done.stdout and "sold more than once" in done.stdout


@pytest.mark.timeout(60)
def test_an_explored_buyers_replay_line_names_its_code() -> None:
    done = tickets("explore", "--buy", BROKEN, "-n", "2", "-t", "1")
    assert done.returncode == 1
    [line] = [x for x in done.stdout.splitlines() if x.startswith("replay")]
    command = line.split(None, 1)[1].split()
    assert command[:3] == ["tickets", "explore", "--replay"] and command[-2:] == ["--buy", BROKEN]
    replayed = tickets(*command[1:])
    assert replayed.returncode == 1 and "it broke as saved" in replayed.stdout


@pytest.mark.timeout(60)
def test_a_sale_most_buyers_found_sold_out_says_how_fast_they_were_served() -> None:
    done = tickets("buy", "-n", "40", "-t", "2", *WIDE)
    assert done.returncode == 0, done.stdout
    rate = re.search(
        r"^buyers/s +([\d,]+) \(every buyer served, sold out included\)$", done.stdout, re.M
    )
    purchases = re.search(r"^purchases/s +([\d,]+)$", done.stdout, re.M)
    assert rate and purchases and int(rate[1].replace(",", "")) > int(purchases[1].replace(",", ""))


@pytest.mark.timeout(120)
def test_exploring_a_function_that_sells_from_its_own_database_proves_nothing(
    tmp_path: Path,
) -> None:
    """It never touches its handle: no red that would not reproduce, no green."""
    own_shop(tmp_path)
    done = tickets("explore", "--buy", "shop.py:buy", "-n", "2", "-t", "1")
    assert done.returncode == 5, done.stdout
    assert "without one store operation through the handle" in done.stdout


@pytest.mark.timeout(120)
def test_a_project_with_its_own_tickets_package_does_not_shadow_the_tool(tmp_path: Path) -> None:
    """A Django app named tickets: the tool's own processes import the tool."""
    (tmp_path / "tickets").mkdir()
    (tmp_path / "tickets" / "__init__.py").write_text("raise ImportError('the shop app')\n")
    own_shop(tmp_path)
    venv_tickets = str(Path(sys.executable).parent / "tickets")
    for args in (
        ["buy", "-n", "5", "-t", "5", *WIDE],
        ["buy", "--buy", BROKEN, "-n", "5", "-t", "2", "--lock", "file", *WIDE],
        ["buy", "-n", "3", "--exec", "echo 1", "--stock-cmd", "echo 3"],
    ):
        done = subprocess.run(
            [venv_tickets, *args], capture_output=True, text=True, timeout=100, cwd=tmp_path
        )
        assert done.returncode in (0, 1), done.stdout + done.stderr
        assert "launcher" not in done.stdout and "cannot be imported" not in done.stdout


@pytest.mark.timeout(120)
def test_a_command_buyer_keeps_the_callers_python_path(tmp_path: Path) -> None:
    """The tool's processes find the tool first; a command's Python (another
    version, another virtualenv) gets the caller's PYTHONPATH, not the tool's."""
    said = 'echo "PP=${PYTHONPATH-unset}" >&2; echo 1'
    for given, expected in (("/opt/mine", "PP=/opt/mine"), (None, "PP=unset")):
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        if given is not None:
            env["PYTHONPATH"] = given
        done = tickets("buy", "-n", "2", "--exec", said, "--stock-cmd", "echo 5", env=env)
        assert done.returncode == 1, done.stdout  # both answer seat 1: sold twice
        logs = [p.read_text() for p in Path("history").glob("*.log")]
        assert any(expected in log for log in logs), logs
        for log in Path("history").glob("*"):
            log.unlink()


@pytest.mark.timeout(120)
def test_the_users_modules_do_not_stand_in_for_the_tools(tmp_path: Path) -> None:
    """A filelock.py or sqlite3.py of the user's beside their buyer."""
    for name in ("filelock.py", "sqlite3.py", "redis.py"):
        (tmp_path / name).write_text("raise ImportError('the user\\'s own module')\n")
    (tmp_path / "shop2.py").write_text((ROOT / "examples" / "booking.py").read_text())
    for args in (
        ["buy", "--buy", "shop2:take_ticket", "-n", "6", "-t", "3", *WIDE],
        ["--db", "sqlite:s.db", "buy", "--buy", "shop2.py:take_ticket", "-n", "6", "-t", "3"],
        ["explore", "--buy", "shop2.py:take_ticket", "-n", "2", "-t", "1"],
    ):
        done = subprocess.run(  # the tickets command (python -m would put the folder first)
            [str(Path(sys.executable).parent / "tickets"), *args],
            capture_output=True,
            text=True,
            timeout=100,
            cwd=tmp_path,
        )
        assert done.returncode in (0, 5), done.stdout + done.stderr
        assert "the user's own module" not in done.stdout + done.stderr
