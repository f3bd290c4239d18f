"""Helpers shared by the tests (imported as a plain module from tests/)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tickets.engine.rows import RunResult
    from tickets.stores.base import Store
    from tickets.stores.spec import StoreSpec


def handle(path: str | os.PathLike[str]) -> Store:
    """A store handle on ``path`` (a JSON file, or a store URL), as a child opens one."""
    from tickets.stores import open_store
    from tickets.stores.spec import parse_db

    return open_store(parse_db(os.fspath(path)))


def spec_of(path: str | os.PathLike[str]) -> StoreSpec:
    """The StoreSpec of a store path or URL."""
    from tickets.stores.spec import parse_db

    return parse_db(os.fspath(path))


def kept(result: RunResult) -> Path:
    """The history a run kept (every test run keeps one)."""
    assert result.history is not None, "the run kept no history"
    return result.history


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under folder with its bytes (to prove nothing changed)."""
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def read_json_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


#: The fields every run's JSON document has (buy, each race run, queue); the README's schema.
RUN_FIELDS = {
    "stock": str,
    "strategy": str,
    "initial": int,
    "sold": int,
    "remaining": int,
    "oversold": int,
    "unknown": int,
    "double_sold_seats": list,
    "passed": bool,
    "history": str,
    "duration_s": float,
    "buyers": list,
    "checks": list,
}


def assert_run_fields(doc: dict[str, Any]) -> None:
    for key, kind in RUN_FIELDS.items():
        assert isinstance(doc[key], kind), key


@contextmanager
def shell_flock_holder(lock_file: Path) -> Iterator[None]:
    """``flock(1)`` holding ``lock_file`` in a shell script, from the moment it
    says so until the block ends (then its whole session is killed)."""
    holder = subprocess.Popen(
        ["flock", str(lock_file), "sh", "-c", "echo held; sleep 30"],
        start_new_session=True,  # the kill reaches the shell, which inherits the lock
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        yield
    finally:
        os.killpg(holder.pid, 9)
        holder.communicate(timeout=10)


def run_all(
    procs: Sequence[Any], timeout: float = 60, started: Callable[[], object] | None = None
) -> list[int | None]:
    """Start every process (then call ``started``: open a gate), join each
    within the timeout, kill stragglers; return the exit codes."""
    try:
        for p in procs:
            p.start()
        if started is not None:
            started()
        for p in procs:
            p.join(timeout)
        return [p.exitcode for p in procs]
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join(5)


def left_running(store: Path) -> list[int]:
    """Live processes of this test's runs: every process a run starts (the
    parent, launcher, buyers, producers, clerks) inherits TICKETS_DB=store.
    Zombies are not running: killed buyers are reparented to PID 1, which
    need not reap them."""
    mark = f"TICKETS_DB={store}".encode()
    return live_processes("/proc/{}/environ", lambda text: mark in text.split(b"\0"))


def live_processes(template: str, matches: Callable[[bytes], bool]) -> list[int]:
    """Live processes but this one whose ``template.format(pid)`` file
    matches (zombies are not running)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(template.format(entry), "rb") as f:
                if not matches(f.read()):
                    continue
            with open(f"/proc/{entry}/stat") as stat:
                state = stat.read().rsplit(")", 1)[1].split()[0]
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if state != "Z":
            pids.append(int(entry))
    return pids
