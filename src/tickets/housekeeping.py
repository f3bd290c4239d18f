"""The histories beside a store: list them with their verdicts, prune old ones.

Every run leaves a history in ``history/`` beside its store; after a day of
work there are hundreds. ``tickets history`` lists them, newest first, each
with the verdict ``tickets check`` gives it, and removes the old ones on
request. A history whose run is still going (no end line yet, its parent
alive) is never removed: its writer would go on writing to a file nobody
can read.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import Path

from .checks import check_history
from .history import HistoryError, read
from .stores.json_file import pid_alive
from .stores.spec import StoreSpec


@dataclass(frozen=True)
class Entry:
    """One history file and what it says."""

    path: Path
    modified: float
    mode: str | None
    strategy: str | None
    #: passed, failed, unfinished, running, or unreadable
    verdict: str

    @property
    def running(self) -> bool:
        return self.verdict == "running"


def history_folder(spec: StoreSpec) -> Path:
    """``history/`` beside a file store; in the current folder for a server."""
    return Path(spec.folder) / "history"


def entries(folder: Path) -> list[Entry]:
    """The histories in ``folder``, newest first (none if it does not exist)."""
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
            found.append(_entry(path, info.st_mtime))
    return sorted(found, key=lambda e: (e.modified, e.path.name), reverse=True)


def _entry(path: Path, modified: float) -> Entry:
    try:
        history = read(path)
    except HistoryError:
        return Entry(path, modified, None, None, "unreadable")
    run = history.run
    if history.end is None:
        pid = run.get("pid")
        alive = type(pid) is int and pid > 0 and pid_alive(pid)
        verdict = "running" if alive else "unfinished"
    else:
        report = check_history(history)
        verdict = "passed" if report.passed else "not proven" if report.unproven else "failed"
    return Entry(path, modified, run["mode"], run["strategy"], verdict)


def to_prune(
    listed: list[Entry], keep: int | None, older_than: float | None, now: float
) -> list[Entry]:
    """Which of ``listed`` (newest first) go: all but the ``keep`` newest,
    and those older than ``older_than`` seconds; never a running one."""
    chosen: set[Path] = set()
    if keep is not None:
        chosen.update(e.path for e in listed[keep:])
    if older_than is not None:
        chosen.update(e.path for e in listed if now - e.modified > older_than)
    return [e for e in listed if e.path in chosen and not e.running]


def prune(doomed: list[Entry]) -> list[Entry]:
    """Remove them; return those removed (one already gone is not an error)."""
    removed = []
    for entry in doomed:
        try:
            entry.path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise HistoryError(entry.path, f"cannot be removed ({exc.strerror})") from None
        removed.append(entry)
    return removed
