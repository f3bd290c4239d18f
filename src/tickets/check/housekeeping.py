"""The histories beside a store: list them with their verdicts, prune old ones.

Every run leaves a history in ``history/`` beside its store; after a day of
work there are hundreds. ``tickets history`` lists them, newest first, each
with the verdict ``tickets check`` gives it, and removes the old ones on
request, with the ``<history>.log`` beside each (a command buyer's stderr).

Only this store's histories are ever removed: a file whose run line names
this store, exactly as a run writes it. A folder can be shared (stores side
by side, histories sent elsewhere with ``--history``) and can hold the
user's own files: another store's history, or anything that does not read
as a history, is listed as such and left alone. A history whose run is
still going (no end line yet, its parent alive) is never removed: its
writer would go on writing to a file nobody can read.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from ..stores.json_file import pid_alive
from ..stores.spec import StoreSpec
from .history import HistoryError, read
from .verdict import check_history

#: The verdicts of files that are not this store's histories: never removed.
NOT_OURS = ("unreadable", "other store")


@dataclass(frozen=True)
class Entry:
    """One history file and what it says."""

    path: Path
    modified: float
    mode: str | None
    strategy: str | None
    #: passed, failed, not proven, unfinished, running; or (not this
    #: store's) unreadable, other store
    verdict: str
    #: the file that was read (device, inode): another put in its place
    #: since is not removed
    inode: tuple[int, int] = (0, 0)

    @property
    def running(self) -> bool:
        return self.verdict == "running"

    @property
    def ours(self) -> bool:
        """A history of this store (one that could be removed)."""
        return self.verdict not in NOT_OURS


def history_folder(spec: StoreSpec) -> Path:
    """``history/`` beside a file store; in the current folder for a server."""
    return Path(spec.folder) / "history"


def newest(folder: Path, store: str) -> Path | None:
    """The newest history of ``store`` (its run line's ``store``, as
    StoreSpec.identity names it) in ``folder``, by modification time: what
    ``check`` and ``timeline`` take when given none, as git takes HEAD.
    Another store's history beside it is passed over; None if none is
    this store's (or there is no folder)."""
    import json

    found = []
    try:
        for path in folder.glob("*.jsonl"):
            try:
                info = path.lstat()
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode):
                found.append((info.st_mtime_ns, path.name, path))
    except OSError:
        return None
    for _, _, path in sorted(found, reverse=True):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            with os.fdopen(fd, "rb") as f:
                first = f.readline(65536)
            run = json.loads(first)
        except (OSError, ValueError):
            continue
        if isinstance(run, dict) and run.get("type") == "run" and run.get("store") == store:
            return path
    return None


def entries(folder: Path, store: str) -> list[Entry]:
    """The histories in ``folder``, newest first (none if it does not exist);
    ``store``: this store as a run line names it (StoreSpec.identity)."""
    found = []
    try:
        names = list(folder.glob("*.jsonl"))
    except OSError:
        return []
    for path in names:
        try:
            info = path.lstat()
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode):
            found.append(_entry(path, info, store))
    return sorted(found, key=lambda e: (e.modified, e.path.name), reverse=True)


def _entry(path: Path, info: os.stat_result, store: str) -> Entry:
    inode = (info.st_dev, info.st_ino)
    try:
        history = read(path)
    except HistoryError:
        return Entry(path, info.st_mtime, None, None, "unreadable", inode)
    run = history.run
    if history.named_store != store:
        return Entry(path, info.st_mtime, run["mode"], run["strategy"], "other store", inode)
    if history.end is None:
        pid = run.get("pid")
        alive = type(pid) is int and pid > 0 and pid_alive(pid)
        verdict = "running" if alive else "unfinished"
    else:
        report = check_history(history)
        verdict = "passed" if report.passed else "not proven" if report.unproven else "failed"
    return Entry(path, info.st_mtime, run["mode"], run["strategy"], verdict, inode)


def to_prune(
    listed: list[Entry], keep: int | None, older_than: float | None, now: float
) -> list[Entry]:
    """Which of ``listed`` (newest first) go: all but the ``keep`` newest of
    this store's histories, and those older than ``older_than`` seconds;
    never a running one, nor a file that is not this store's history."""
    ours = [e for e in listed if e.ours]
    chosen: set[Path] = set()
    if keep is not None:
        chosen.update(e.path for e in ours[keep:])
    if older_than is not None:
        chosen.update(e.path for e in ours if now - e.modified > older_than)
    return [e for e in ours if e.path in chosen and not e.running]


def prune(doomed: list[Entry]) -> list[Entry]:
    """Remove them, each with its ``<history>.log`` (and an exploration's
    ``.schedule.json``); return those removed
    (one already gone, or replaced since it was read, is left out)."""
    removed = []
    for entry in doomed:
        if not (_still(entry.path, entry.inode) and _remove(entry.path)):
            continue
        log = entry.path.with_name(entry.path.name + ".log")
        # an exploration's counterexample: its schedule beside it
        schedule = entry.path.with_name(entry.path.name.removesuffix(".jsonl") + ".schedule.json")
        for companion in (log, schedule):
            if _still(companion):  # a regular file only: a FIFO or a link there is the user's
                _remove(companion)
        removed.append(entry)
    return removed


def _still(path: Path, inode: tuple[int, int] | None = None) -> bool:
    """Is ``path`` a regular file (the one read, if ``inode`` is given)?"""
    try:
        info = path.lstat()
    except OSError:
        return False
    same = inode is None or (info.st_dev, info.st_ino) == inode
    return stat.S_ISREG(info.st_mode) and same


def _remove(path: Path) -> bool:
    """Remove it: False if it was already gone."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise HistoryError(path, f"cannot be removed ({exc.strerror})") from None
    return True
