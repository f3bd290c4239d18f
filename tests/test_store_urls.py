"""``--db`` URLs are parsed and checked whole before anything is made: a URL
the tool cannot use is a usage error (exit 2, one ``Error:`` line naming
--db) for every command that takes one, with nothing created on disk; and a
Redis key's count is read only in the form tickets writes it."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from helpers import snapshot
from tickets.stores import StoreError
from tickets.stores.spec import BadStoreURL, parse_db

pytestmark = pytest.mark.timeout(120)

#: Spellings refused today, each as the user typed it ({tmp}: the test's folder).
REFUSED = [
    "sqlite:///q.db",  # /q.db: a SQLAlchemy user means it as relative
    "sqlite:///./q.db",
    "sqlite:///no-such-folder-at-the-root/q.db",  # init would make /no-such-folder…
    "sqlite://///{tmp}/q.db",
    "sqlite:%2F%2F{tmp}/q.db",
    "sqlite:q%00.db",
    "file:t%00.json",
    "redis://127.0.0.1:0/0",  # port 0 was read as 6379
    "redis:/0",
    "redis:",
    "redis://ho st/0",
    "redis://h%2F/0",
    "redis://127.0.0.1/0?key=%ff",
    "redis://u:%ff@127.0.0.1/0",
    "redis://127.0.0.1/00",
]

COMMANDS = [
    ["init", "--tickets", "5"],
    ["status"],
    ["buy", "--buyers", "2", "--tickets", "2"],
    ["buy", "--buyers", "2", "--keep-stock"],
    ["race", "--buyers", "2", "--trials", "1"],
    ["queue", "--orders", "2", "--tickets", "2"],
    ["history"],
    ["sale", "list"],
    ["sale", "show", "s1"],
    ["sale", "drop", "s1"],
    ["check", "--sale", "s1"],
    ["timeline", "--sale", "s1"],
]


@pytest.mark.parametrize("url", REFUSED)
def test_a_refused_url_is_a_usage_error_that_creates_nothing(
    invoke: Any, tmp_path: Path, url: str
) -> None:
    url = url.format(tmp=str(tmp_path).lstrip("/"))
    with pytest.raises(BadStoreURL):
        parse_db(url)
    before = snapshot(tmp_path)
    for args in COMMANDS:
        for where in ("before", "after"):  # --db before the command, or after it
            argv = ["--db", url, *args] if where == "before" else [*args, "--db", url]
            result = invoke(*argv)
            errors = [line for line in result.output.splitlines() if line.startswith("Error")]
            assert result.exit_code == 2, (argv, result.output)
            assert len(errors) == 1 and "--db" in errors[0], (argv, result.output)
            assert "Traceback" not in result.output
            assert snapshot(tmp_path) == before and not list(tmp_path.iterdir()), argv


@pytest.mark.parametrize("slashes", ["///", "////", "//localhost//"])
def test_an_absolute_sqlite_url_takes_three_or_four_slashes(tmp_path: Path, slashes: str) -> None:
    """SQLAlchemy's and Django's sqlite:////abs is absolute, as the tool's
    own sqlite:///abs still is (it was: exit 3, 'invalid uri authority')."""
    url = f"sqlite:{slashes}{str(tmp_path).lstrip('/')}/q.db"
    done = subprocess.run(
        [sys.executable, "-m", "tickets", "--db", url, "init", "-t", "4"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert sqlite3.connect(tmp_path / "q.db").execute(
        "SELECT count FROM tickets_stock"
    ).fetchone() == (4,)


def test_three_slashes_before_one_name_are_refused_with_both_spellings(tmp_path: Path) -> None:
    """sqlite:///sale.db would be /sale.db, at the filesystem root."""
    done = subprocess.run(
        [sys.executable, "-m", "tickets", "--db", "sqlite:///sale.db", "init"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    assert "filesystem root" in done.stderr and "sqlite:sale.db" in done.stderr
    assert "sqlite:////abs/sale.db" in done.stderr.splitlines()[-1]
    assert list(tmp_path.iterdir()) == [] and not Path("/sale.db").exists()


def test_accepted_spellings_name_a_file_sqlite_can_open(invoke: Any, tmp_path: Path) -> None:
    odd = tmp_path / "a b%c.db"
    for url in (
        f"sqlite://{tmp_path}/a%20b%25c.db",
        f"sqlite://localhost{tmp_path}/a b%25c.db",
        f"sqlite:{tmp_path}/a%20b%25c.db",
    ):
        assert parse_db(url).path == str(odd), url
        result = invoke("--db", url, "init", "--tickets", "4")
        assert result.exit_code == 0, result.output
        assert odd.exists()
    # a byte that is not UTF-8, %-escaped: that very byte in the file's name
    assert invoke("--db", f"sqlite:{tmp_path}/%ff.db", "init").exit_code == 0
    assert (tmp_path / "\udcff.db").exists()


def test_redis_urls_keep_their_parts() -> None:
    spec = parse_db("redis://[::1]:6380/2?key=k")
    assert (spec.host, spec.port, spec.db) == ("::1", 6380, 2)
    assert parse_db("redis://h.example.com./0").host == "h.example.com."
    assert parse_db("redis://h:/0").port == 6379  # an empty port is the default


# -- a Redis count in the form tickets writes, and nothing else ---------------


@pytest.mark.parametrize("value", ["05", "00", " 5", "5 ", "+5", "٥", "1000000001"])
def test_a_redis_count_not_in_its_plain_form_is_a_corrupt_store(
    redis_server: Any, redis_url: str, value: str
) -> None:
    from tickets.stores import open_store

    client = redis_server.client()
    client.set("t", value)
    store = open_store(parse_db(redis_url))
    try:
        for read in (
            store.load,
            lambda: store.take(1),
            lambda: store.take_optimistic(1, lambda: None, 1.0),
        ):
            with pytest.raises(StoreError, match="not a whole number|not a count|larger"):
                read()
    finally:
        store.close()
    assert client.get("t") == value.encode()  # nothing taken from it
    done = subprocess.run(
        [sys.executable, "-m", "tickets", "--db", redis_url, "status"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3 and "tickets init" in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


# -- --lock-file: a separate file, never the store's own ----------------------


@pytest.mark.parametrize(
    ("db", "lock"),
    [
        ("t.json", "t.json"),
        ("t.json", "./sub/../t.json"),
        ("t.json", "t.json.sale"),
        ("sqlite:s.db", "s.db"),
        ("sqlite:s.db", "s.db-wal"),
        ("sqlite:s.db", "s.db.sale"),
    ],
)
def test_a_lock_file_that_is_the_store_s_own_is_a_usage_error(
    invoke: Any, tmp_path: Path, db: str, lock: str
) -> None:
    """Locking the data file locks a file the next write replaces; locking the
    claim made the run wait for itself, then blame 'another process'."""
    (tmp_path / "sub").mkdir()
    assert invoke("--db", db, "init", "--tickets", "5").exit_code == 0
    before = snapshot(tmp_path)
    for args in (["init"], ["buy", "--buyers", "2", "--keep-stock"], ["status"]):
        result = invoke("--db", db, "--lock-file", lock, *args)
        assert result.exit_code == 2, (args, result.output)
        assert "--lock-file" in result.output and "the store's own file" in result.output
        assert snapshot(tmp_path) == before


def test_a_lock_file_hard_linked_to_the_store_is_refused(invoke: Any, tmp_path: Path) -> None:
    assert invoke("--db", "t.json", "init").exit_code == 0
    (tmp_path / "t.json.sale").unlink()
    (tmp_path / "other.lock").hardlink_to(tmp_path / "t.json")
    result = invoke("--db", "t.json", "--lock-file", "other.lock", "buy", "--keep-stock")
    assert result.exit_code == 2 and "the store's own file" in result.output
