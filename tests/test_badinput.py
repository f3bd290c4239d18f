"""Bad input: one line naming the file or flag and what to do, the documented
exit code, no traceback, and nothing changed on disk."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import Result

from helpers import is_root, shell_flock_holder, snapshot
from test_store import BAD
from tickets.stores.json_file import lock_path

Invoke = Callable[..., Result]
SELLING = [
    ["status"],
    ["buy", "--buyers", "3"],
    ["buy", "--buyers", "3", "--keep-stock"],
    ["queue", "--orders", "2", "--keep-stock"],
    ["race", "--buyers", "3"],
]


def assert_refused(result: Result, *needles: str, code: int = 3) -> None:
    assert result.exit_code == code, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in result.output


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_store_files(invoke: Invoke, store: Path, tmp_path: Path, name: str) -> None:
    store.write_bytes(BAD[name])
    before = snapshot(tmp_path)
    for args in SELLING:
        result = invoke(*args)
        assert_refused(result, str(store), "tickets init")
        assert snapshot(tmp_path) == before  # byte-identical, no temp, lock or history file


@pytest.mark.parametrize("args", SELLING)
def test_folder_where_the_store_should_be(
    invoke: Invoke, store: Path, tmp_path: Path, args: list[str]
) -> None:
    store.mkdir()
    before = snapshot(tmp_path)
    assert_refused(invoke(*args), str(store), "folder")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("args", [["status"], ["buy", "--keep-stock"], ["queue", "--keep-stock"]])
def test_missing_store(invoke: Invoke, store: Path, tmp_path: Path, args: list[str]) -> None:
    assert_refused(invoke(*args), str(store), "tickets init")
    assert list(tmp_path.iterdir()) == []


def test_missing_folder(invoke: Invoke, tmp_path: Path) -> None:
    db = tmp_path / "nowhere" / "tickets.json"
    assert_refused(invoke("--db", str(db), "buy"), "does not exist")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", SELLING[1:])
def test_read_only_store(invoke: Invoke, store: Path, tmp_path: Path, args: list[str]) -> None:
    store.write_text('{"count": 4}')
    store.chmod(0o444)
    before = snapshot(tmp_path)
    assert_refused(invoke(*args), str(store), "read-only")
    assert snapshot(tmp_path) == before
    assert invoke("status").exit_code == 0  # reading it is fine


def test_read_only_folder(invoke: Invoke, tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    db = folder / "tickets.json"
    db.write_text('{"count": 4}')
    folder.chmod(0o555)
    try:
        before = snapshot(tmp_path)
        assert_refused(invoke("--db", str(db), "buy"), "read-only")
        assert snapshot(tmp_path) == before
    finally:
        folder.chmod(0o755)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder another user can reach (tmp_path lives under a private one)."""
    path = Path(tempfile.mkdtemp(prefix="tickets-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.timeout(60)
def test_unreadable_store_as_another_user(shared_dir: Path) -> None:
    db = shared_dir / "tickets.json"
    db.write_text('{"count": 4}')
    db.chmod(0o600)
    if is_root():
        # Root reads everything: drop to nobody in the child to see the error.
        def demote() -> None:
            os.setgid(65534)
            os.setuid(65534)

        preexec: Callable[[], None] | None = demote
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    else:
        db.chmod(0o000)
        preexec, env = None, dict(os.environ)
    before = db.read_bytes() if is_root() else None
    try:
        result = subprocess.run(
            [sys.executable, "-m", "tickets", "--db", str(db), "status"],
            capture_output=True,
            text=True,
            timeout=60,
            preexec_fn=preexec,
            env=env,
        )
    except PermissionError:
        pytest.skip(
            "running as root, and the interpreter is not reachable for an unprivileged "
            "user here: unreadable stores are covered by the mode-bit checks instead"
        )
    if result.returncode != 3 and "ModuleNotFoundError" in result.stderr:
        pytest.skip("the project cannot be imported as an unprivileged user here")
    assert result.returncode == 3, result.stderr
    assert "cannot be read" in result.stderr and str(db) in result.stderr
    assert "Traceback" not in result.stderr
    if before is not None:
        assert db.read_bytes() == before


def test_symlinked_store_never_writes_through(invoke: Invoke, store: Path, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.json"
    target.write_text('{"count": 9}')
    store.symlink_to(target)
    before = snapshot(tmp_path)
    for args in SELLING:
        assert_refused(invoke(*args), "symbolic link")
    assert snapshot(tmp_path) == before and store.is_symlink()


def test_symlinked_lock_file(invoke: Invoke, store: Path, tmp_path: Path) -> None:
    store.write_text('{"count": 3}')
    victim = tmp_path / "victim"
    lock_path(store).symlink_to(victim)
    assert_refused(invoke("buy"), "symbolic link")
    assert not victim.exists()


def test_world_writable_lock_file_is_tightened(invoke: Invoke, store: Path) -> None:
    lock_path(store).touch()
    lock_path(store).chmod(0o666)
    assert invoke("init").exit_code == 0
    assert stat.S_IMODE(lock_path(store).stat().st_mode) & 0o002 == 0


@pytest.mark.parametrize(
    "args, flag",
    [
        (["buy", "--buyers", "10000001"], "--buyers"),
        (["race", "--buyers", "0"], "--buyers"),
        (["buy", "--tickets", "99999999999"], "--tickets"),
        (["buy", "--stall-timeout", "1e9"], "--stall-timeout"),
        (["buy", "--stall-timeout", "0"], "--stall-timeout"),
        (["buy", "--search-delay", "-5"], "--search-delay"),
        (["buy", "--seed", "x"], "--seed"),
        (["buy", "--kill-rate", "2", "--chaos"], "--kill-rate"),
        (["buy", "--kill-rate", "0.5"], "--chaos"),
        (["queue", "--orders", "10000000"], "--orders"),
        (["queue", "--put-timeout", "1e9"], "--put-timeout"),
        (["queue", "--producers", "10001"], "--producers"),
        (["timeline", "h.jsonl", "--width", "5"], "--width"),
    ],
)
def test_absurd_flags_are_usage_errors(
    invoke: Invoke, tmp_path: Path, args: list[str], flag: str
) -> None:
    result = invoke(*args)
    assert result.exit_code == 2 and flag in result.output
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(shutil.which("flock") is None, reason="flock(1) not installed")
@pytest.mark.timeout(60)
def test_lock_timeout_against_a_shell_flock(store: Path, tmp_path: Path) -> None:
    store.write_text('{"count": 5}')
    lock_path(store).touch()
    with shell_flock_holder(lock_path(store)):
        before = snapshot(tmp_path)
        env = {**os.environ, "TICKETS_DB": str(store)}
        result = subprocess.run(
            [sys.executable, "-m", "tickets", "buy", "--lock-timeout", "0.5"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert result.returncode == 3
        assert "held by another process" in result.stderr and "--lock-timeout" in result.stderr
        assert snapshot(tmp_path) == before


def test_store_without_read_permission_is_refused_even_as_root(
    invoke: Invoke, store: Path, tmp_path: Path
) -> None:
    store.write_text('{"count": 4}')
    store.chmod(0o200)
    before = snapshot(tmp_path)
    assert_refused(invoke("buy"), str(store), "cannot be read")
    assert snapshot(tmp_path) == before


def make_special(path: Path, kind: str) -> None:
    """A FIFO, a Unix socket or (as root) a character device at ``path``."""
    import socket

    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))
        server.close()  # the socket file stays
    else:
        if not is_root():
            pytest.skip("making a device node needs root")
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # what /dev/null is


SPECIAL = ["fifo", "socket", "device"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", SPECIAL)
def test_a_special_file_is_never_a_store(
    invoke: Invoke, store: Path, tmp_path: Path, kind: str
) -> None:
    """init used to replace a FIFO, a device or a socket with a regular file."""
    make_special(store, kind)
    before = os.lstat(store)
    for args in (["init"], ["status"], *SELLING):
        assert_refused(invoke(*args), str(store), "not a regular file")
    after = os.lstat(store)
    assert (after.st_ino, after.st_mode, after.st_rdev) == (
        before.st_ino,
        before.st_mode,
        before.st_rdev,
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [store.name]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", SPECIAL)
def test_a_special_file_is_never_a_lock_file(
    invoke: Invoke, store: Path, tmp_path: Path, kind: str
) -> None:
    store.write_text('{"count": 3}')
    make_special(lock_path(store), kind)
    before = snapshot_names(tmp_path)
    for args in (["init"], *SELLING[1:]):
        assert_refused(invoke(*args), str(lock_path(store)), "not a regular file")
    assert snapshot_names(tmp_path) == before
    assert store.read_text() == '{"count": 3}'


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", SPECIAL)
def test_a_special_file_is_never_read_as_a_history(
    invoke: Invoke, tmp_path: Path, kind: str
) -> None:
    """check and timeline used to wait forever on a FIFO."""
    path = tmp_path / "h.jsonl"
    make_special(path, kind)
    for args in (["check", str(path)], ["timeline", str(path)]):
        assert_refused(invoke(*args), str(path), "not a regular file")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", SPECIAL)
@pytest.mark.parametrize("where", ["the history", "its folder"])
def test_a_special_file_is_never_a_history_to_write(
    invoke: Invoke, store: Path, tmp_path: Path, kind: str, where: str
) -> None:
    """A FIFO given as --history said "already exists", and one where its
    folder should be "cannot be created (File exists)": now, what it is."""
    store.write_text('{"count": 3}')
    special = tmp_path / "h"
    make_special(special, kind)
    history = special if where == "the history" else special / "run.jsonl"
    what = {"fifo": "a FIFO", "socket": "a socket", "device": "a character device"}[kind]
    wanted = "not a regular file" if where == "the history" else "not a folder"
    before = snapshot_names(tmp_path)
    for args in (["buy", "-n", "2"], ["queue", "--orders", "2"]):  # (race takes no --history)
        assert_refused(invoke(*args, "--history", str(history)), f"{special}: is {what}, {wanted}")
    assert snapshot_names(tmp_path) == before and store.read_text() == '{"count": 3}'


def test_a_broken_link_where_the_history_s_folder_should_be(
    invoke: Invoke, store: Path, tmp_path: Path
) -> None:
    store.write_text('{"count": 3}')
    (tmp_path / "h").symlink_to(tmp_path / "nowhere")
    result = invoke("buy", "-n", "2", "--history", str(tmp_path / "h" / "run.jsonl"))
    assert_refused(result, "h: is a broken link, not a folder")
    assert not (tmp_path / "nowhere").exists()


def snapshot_names(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_temp_cleanup_removes_only_what_tickets_made(store: Path) -> None:
    from tickets.stores import json_file as st

    st.save(store, 3)
    folder = store.parent
    theirs = [".tickets.json.bak.tmp", ".tickets.json.123.tmp", ".tickets.json.99999999.x.tmp"]
    for name in theirs:
        (folder / name).write_text("a user's file")
    ours = folder / ".tickets.json.99999999.0123456789ab.tmp"  # a writer long gone
    ours.write_text('{"count": 1}')
    assert st.remove_orphan_temps(store) == 1
    assert not ours.exists() and all((folder / name).exists() for name in theirs)


@pytest.mark.parametrize(
    "folders, command", [(["new", "deeper"], ["init"]), ([], ["buy", "--buyers", "2"])]
)
def test_a_store_name_too_long_for_its_temp_file(
    invoke: Invoke, tmp_path: Path, folders: list[str], command: list[str]
) -> None:
    """It used to say 'check the folder's permissions', and init left the
    folders it had made (buy makes none: a missing folder is an error)."""
    db = tmp_path.joinpath(*folders, "s" * 240)
    result = invoke("--db", str(db), *command)
    assert_refused(result, "too long a name", "at most")
    assert list(tmp_path.iterdir()) == []


def test_an_empty_history_path_is_a_usage_error(invoke: Invoke, tmp_path: Path) -> None:
    result = invoke("buy", "--history", "")
    assert result.exit_code == 2 and "--history" in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.timeout(60)
@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
@pytest.mark.parametrize("args", [["status"], ["buy", "--buyers", "3", "--json"]])
def test_output_that_cannot_be_written(store: Path, args: list[str]) -> None:
    store.write_text('{"count": 5}')
    env = {**os.environ, "TICKETS_DB": str(store)}
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [sys.executable, "-m", "tickets", *args],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            env=env,
        )
    assert result.returncode == 3
    assert result.stderr.strip() == "Error: the output cannot be written (No space left on device)"
