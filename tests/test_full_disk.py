"""A full disk, for real: a tiny tmpfs mounted for the test (root only).

No record, no sale: a history that cannot be written stops the run (exit 3)
before a buyer is let through, or at once mid-run with what was sold so far
in the JSON document; a store that cannot be written is an exit 3 with one
line, never a traceback; a sale whose buyers could not write never passes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from helpers import is_root
from tickets.stores.base import DISK_FULL, READ_ONLY_FS, disk_kind

pytestmark = pytest.mark.skipif(not is_root(), reason="mounting a tmpfs needs root")


@contextmanager
def tmpfs(mount: Path, options: str) -> Iterator[Path]:
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def full(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs; call fill() on it to leave no room (or one page)."""
    with tmpfs(tmp_path / "full", "size=64k") as mount:
        yield mount


@pytest.fixture
def few_inodes(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs with room for bytes but for few files; use_up_inodes() takes the rest."""
    with tmpfs(tmp_path / "few", "size=1m,nr_inodes=16") as mount:
        yield mount


def use_up_inodes(mount: Path) -> None:
    """Create empty files until the tmpfs has no inode left (its bytes stay free)."""
    for i in range(100):
        try:
            (mount / f"filler{i}").touch()
        except OSError:
            return
    raise AssertionError("the tmpfs never ran out of inodes")


def fill(mount: Path, leave_pages: int = 0) -> None:
    """Write until the tmpfs is full, then free ``leave_pages`` pages again."""
    filler = mount / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                os.write(fd, b"x" * 4096)
            except OSError:
                break
    finally:
        os.close(fd)
    if leave_pages:
        os.truncate(filler, max(0, filler.stat().st_size - 4096 * leave_pages))


def keep_stock_sale(
    full: Path, store: Path, history: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    """A --keep-stock sale of 4 buyers from a store of 5, the tmpfs full."""
    store.write_text('{"count": 5}')
    fill(full)
    return tickets(
        "--db",
        str(store),
        "buy",
        "--buyers",
        "4",
        "--keep-stock",
        "--history",
        str(history),
        "--json",
        *extra,
    )


def tickets(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tickets", *args], capture_output=True, text=True, timeout=120
    )


def one_error_line(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0]


@pytest.mark.timeout(60)
def test_init_and_a_restocking_buy_on_a_full_disk(full: Path) -> None:
    store = full / "t.json"
    store.write_text('{"count": 5}')
    fill(full)
    for args in (["init", "--tickets", "9"], ["buy", "--buyers", "3", "--tickets", "9"]):
        result = tickets("--db", str(store), *args)
        assert result.returncode == 3, result.stderr
        one_error_line(result, str(store), f"the disk under {full} is full (no space left)")
        assert "permission" not in result.stderr
        assert store.read_text() == '{"count": 5}'


@pytest.mark.timeout(60)
def test_a_sale_whose_buyers_cannot_write_never_passes(full: Path, tmp_path: Path) -> None:
    store = full / "t.json"
    result = keep_stock_sale(full, store, tmp_path / "h.jsonl", "--no-delay")
    assert result.returncode == 3, result.stderr  # the store could not be used: no check failed
    doc = json.loads(result.stdout)
    assert doc["passed"] is False and doc["sold"] == 0
    failed = {c["name"]: c for c in doc["checks"] if not c["passed"]}
    assert f"the disk under {full} is full (no space left)" in failed["no errors"]["detail"]
    # Each buyer's reason says so, in words the run layer tells from a failed sale.
    assert all(disk_kind(b["reason"]) == DISK_FULL for b in doc["buyers"]), doc["buyers"]
    assert store.read_text() == '{"count": 5}'


@pytest.mark.timeout(60)
def test_no_record_no_sale(full: Path, tmp_path: Path) -> None:
    """The history cannot even take its run line: nobody sells."""
    store, history = tmp_path / "t.json", full / "h.jsonl"
    result = keep_stock_sale(full, store, history)
    assert result.returncode == 3
    one_error_line(result, str(history), "No space left on device")
    assert not history.exists()
    doc = json.loads(result.stdout)  # --json: still one document, for | jq -e .passed
    assert doc["passed"] is False and doc["exit_code"] == 3
    assert "No space left on device" in doc["error"]
    assert store.read_text() == '{"count": 5}'


@pytest.mark.timeout(60)
def test_a_history_that_fills_up_stops_the_sale_at_once(full: Path, tmp_path: Path) -> None:
    """Room for the run line and not much more: the sale stops, the JSON
    document still says what was sold, exit 3 names the history."""
    store = tmp_path / "t.json"
    history = full / "h.jsonl"
    fill(full, leave_pages=1)
    result = tickets(
        "--db",
        str(store),
        "buy",
        "--buyers",
        "60",
        "--tickets",
        "60",
        "--search-delay",
        "50",
        "--history",
        str(history),
        "--json",
    )
    assert result.returncode == 3, result.stderr
    one_error_line(result, str(history), "No space left on device")
    doc = json.loads(result.stdout)
    assert "cannot be written" in doc["aborted"] and doc["passed"] is False
    assert all(b["result"] != "pending" for b in doc["buyers"])
    assert doc["sold"] < 60  # stopped at once, not sold out first


@pytest.mark.timeout(120)
@pytest.mark.parametrize("strategy", ["transaction", "atomic", "flock"])
def test_a_sqlite_store_on_a_full_disk_never_passes_a_sale_it_did_not_make(
    full: Path, tmp_path: Path, strategy: str
) -> None:
    """SQLite writes to its WAL at the commit: on a full disk the commit
    fails. A buyer whose write may or may not have landed is unknown, never
    sold; the verdict never passes a sale the store did not keep."""
    db = full / "sale.db"
    assert tickets("--db", f"sqlite:{db}", "init", "--tickets", "5").returncode == 0
    fill(full, leave_pages=8)  # room to open the database, none for its log to grow
    result = tickets(
        "--db",
        f"sqlite:{db}",
        "buy",
        "--buyers",
        "4",
        "--lock",
        strategy,
        "--no-delay",
        "--json",
        "--history",
        str(tmp_path / "h.jsonl"),
    )
    doc = json.loads(result.stdout)
    import sqlite3

    (full / "filler").unlink()  # room again, to read what the store kept
    left = sqlite3.connect(db).execute("SELECT count FROM tickets_stock").fetchone()[0]
    assert doc["sold"] == 5 - left, (doc["sold"], left)  # every sale reported is one kept
    if doc["sold"] < 4:
        assert result.returncode in (1, 3) and doc["passed"] is False
    unknown = [b for b in doc["buyers"] if b["result"] == "info"]
    assert unknown and all(disk_kind(b["reason"]) == DISK_FULL for b in unknown), doc["buyers"]
    assert all(f"the disk under {full} is full" in b["reason"] for b in unknown)


# -- no inodes left, a read-only file system: said as such, never "permissions"


@pytest.mark.timeout(60)
def test_no_inodes_left_is_a_full_disk_not_a_permission(few_inodes: Path, tmp_path: Path) -> None:
    """A temp file that cannot be created for want of an inode is ENOSPC:
    it used to say 'check the folder's permissions'."""
    store = few_inodes / "t.json"
    store.write_text('{"count": 5}')
    for name in ("t.json.lock", "t.json.sale"):  # the lock and the claim are already there
        (few_inodes / name).touch()
    use_up_inodes(few_inodes)
    result = tickets("--db", str(store), "init", "--tickets", "9")
    assert result.returncode == 3, result.stderr
    one_error_line(
        result,
        str(store),
        f"the disk under {few_inodes} is full (no inodes left)",
        "free some space",
    )
    assert "permission" not in result.stderr
    done = tickets(
        "--db",
        str(store),
        "buy",
        "--buyers",
        "3",
        "--keep-stock",
        "--no-delay",
        "--history",
        str(tmp_path / "h.jsonl"),
        "--json",
    )
    doc = json.loads(done.stdout)
    assert done.returncode == 3 and doc["passed"] is False and doc["sold"] == 0
    for buyer in doc["buyers"]:
        assert "is full (no inodes left)" in buyer["reason"], buyer
        assert disk_kind(buyer["reason"]) == DISK_FULL and "permission" not in buyer["reason"]
    assert store.read_text() == '{"count": 5}'


@pytest.mark.timeout(60)
def test_a_sqlite_store_without_inodes_says_so_before_anything_changes(
    few_inodes: Path, tmp_path: Path
) -> None:
    """SQLite cannot create its WAL's files: 'unable to open' used to be
    'check the path and permissions'."""
    db = few_inodes / "sale.db"
    assert tickets("--db", f"sqlite:{db}", "init", "--tickets", "5").returncode == 0
    use_up_inodes(few_inodes)
    before = db.read_bytes()
    result = tickets(
        "--db",
        f"sqlite:{db}",
        "buy",
        "--buyers",
        "3",
        "--keep-stock",
        "--history",
        str(tmp_path / "h.jsonl"),
    )
    assert result.returncode == 3, result.stderr
    one_error_line(result, f"the disk under {few_inodes} is full (no inodes left)")
    assert db.read_bytes() == before and not (tmp_path / "h.jsonl").exists()


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs holding a store, then remounted read-only."""
    with tmpfs(tmp_path / "ro", "size=64k") as mount:
        (mount / "t.json").write_text('{"count": 5}')
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        yield mount


@pytest.mark.timeout(60)
@pytest.mark.parametrize("args", [["init"], ["buy", "--buyers", "2", "--keep-stock"]])
def test_a_read_only_file_system_is_named(read_only: Path, args: list[str]) -> None:
    store = read_only / "t.json"
    result = tickets("--db", str(store), *args)
    assert result.returncode == 3, result.stderr
    one_error_line(result, str(store), f"{read_only} is on a read-only file system")
    assert store.read_text() == '{"count": 5}'


def test_a_write_on_a_read_only_file_system_is_disk_trouble(read_only: Path) -> None:
    from tickets.stores import json_file
    from tickets.stores.base import DiskTrouble

    with pytest.raises(DiskTrouble) as caught:
        json_file.save(read_only / "t.json", 4)
    assert caught.value.kind == READ_ONLY_FS == disk_kind(str(caught.value))
    assert "permission" not in str(caught.value)
