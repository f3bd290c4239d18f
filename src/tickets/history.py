"""The run's record: one JSON object per line.

A history opens with a ``run`` line (what was run, on which store, and the
stock at the start) and closes with an ``end`` line (the stock at the end).
Between them, per buyer, Jepsen's model: ``invoke`` when the buyer starts its
attempt, then ``ok`` (with the seat), ``fail`` (with the reason) or ``info``
(the outcome is unknown: the buyer died or was never heard from).
Timestamps are ``time.monotonic()`` seconds, comparable across the processes
of one machine, so histories of concurrent runs can be merged.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .child.events import compact
from .store import is_special

FORMAT_VERSION = 1
OUTCOMES = ("ok", "fail", "info")
#: "take": a clerk took these orders off the queue (queue mode)
KINDS = ("run", "end", "take", "invoke", *OUTCOMES)
#: A history line longer than this is not ours.
MAX_LINE = 1 << 16


class HistoryError(Exception):
    """A file that is not a usable history. ``str()`` is the one-line message."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(path, problem)

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"

    def __reduce__(self) -> tuple[type[HistoryError], tuple[str, str]]:
        return (type(self), (self.path, self.problem))


class HistoryWriter:
    """Appends events to a history file, one line each, as they arrive."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._made_folder = not path.parent.exists()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # "x": never overwrite an earlier history; O_NOFOLLOW via "x" (O_EXCL).
            self._file: IO[str] | None = open(path, "x", encoding="utf-8")  # noqa: SIM115
        except FileExistsError:
            raise HistoryError(path, "already exists; choose another --history path") from None
        except OSError as exc:
            raise HistoryError(path, f"cannot be created ({exc.strerror})") from None
        #: the first failed write, after which nothing more is written
        self.broken: HistoryError | None = None

    def write(self, event: dict[str, Any]) -> None:
        """Append one event (buffered; see :meth:`flush`). After a failed
        write the history is broken: the error was raised once, and later
        writes are dropped so the run can still be settled."""
        if self.broken is not None:
            return
        assert self._file is not None, "history already closed"
        try:
            self._file.write(compact(event) + "\n")
        except OSError as exc:
            self._fail(exc)

    def flush(self) -> None:
        if self._file is not None and self.broken is None:
            try:
                self._file.flush()
            except OSError as exc:
                self._fail(exc)

    def _fail(self, exc: OSError) -> None:
        self.broken = HistoryError(self.path, f"cannot be written ({exc.strerror})")
        raise self.broken from None

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError as exc:  # what was buffered could not be written
                if self.broken is None:
                    self.broken = HistoryError(self.path, f"cannot be written ({exc.strerror})")
            self._file = None

    def discard(self) -> None:
        """Remove a history whose run never started."""
        self.close()
        try:
            os.unlink(self.path)
            if self._made_folder:
                os.rmdir(self.path.parent)
        except OSError:
            pass


@dataclass
class History:
    """One run's events, parsed and validated."""

    path: str
    run: dict[str, Any]
    events: list[dict[str, Any]] = field(default_factory=list)
    end: dict[str, Any] | None = None

    @property
    def initial(self) -> int:
        return int(self.run["initial"])

    @property
    def remaining(self) -> int | None:
        if self.end is None:
            return None
        value = self.end.get("remaining")
        return value if isinstance(value, int) else None


def _check_event(path: Path, lineno: int, ev: Any) -> dict[str, Any]:
    where = f"line {lineno}"
    if not isinstance(ev, dict):
        raise HistoryError(path, f"{where} is not a JSON object; is this a tickets history?")
    kind = ev.get("type")
    if kind not in KINDS:
        raise HistoryError(path, f"{where} has unknown event type {kind!r}")
    if kind in ("invoke", *OUTCOMES):
        if not isinstance(ev.get("buyer"), int) or isinstance(ev.get("buyer"), bool):
            raise HistoryError(path, f"{where}: {kind} event without a buyer number")
        if kind == "ok":
            seat = ev.get("seat")
            if not isinstance(seat, int) or isinstance(seat, bool):
                raise HistoryError(path, f"{where}: ok event without a seat")
    if not isinstance(ev.get("t", 0.0), int | float):
        raise HistoryError(path, f"{where}: timestamp is not a number")
    return ev


def iter_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise HistoryError(path, "no such history file") from None
    except OSError as exc:
        if is_special(path):  # a socket cannot even be opened
            raise HistoryError(path, "is not a regular file, not a history file") from None
        raise HistoryError(path, f"cannot be read ({exc.strerror})") from None
    kind = os.fstat(fd).st_mode
    if not stat.S_ISREG(kind):
        os.close(fd)
        what = "a folder" if stat.S_ISDIR(kind) else "not a regular file"
        raise HistoryError(path, f"is {what}, not a history file")
    with os.fdopen(fd, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            if len(raw) > MAX_LINE:
                raise HistoryError(path, f"line {lineno} is too long for a history")
            if not raw.strip():
                continue
            try:
                ev = json.loads(raw)
            except (ValueError, RecursionError):
                if lineno == 1:
                    raise HistoryError(path, "is not a tickets history (not JSON Lines)") from None
                # A parent killed mid-write can leave a torn last line.
                raise HistoryError(path, f"line {lineno} is not valid JSON") from None
            yield lineno, _check_event(path, lineno, ev)


def read(path: str | os.PathLike[str]) -> History:
    """Parse and validate one history file."""
    p = Path(path)
    run: dict[str, Any] | None = None
    end = None
    events: list[dict[str, Any]] = []
    for lineno, ev in iter_lines(p):
        kind = ev["type"]
        if lineno == 1 or run is None:
            if kind != "run":
                raise HistoryError(p, "does not start with a run line; is this a tickets history?")
            if ev.get("version") != FORMAT_VERSION:
                raise HistoryError(
                    p, f"has format version {ev.get('version')!r}, not {FORMAT_VERSION}"
                )
            initial = ev.get("initial")
            if not isinstance(initial, int) or isinstance(initial, bool) or initial < 0:
                raise HistoryError(p, "run line has no valid initial stock")
            run = ev
        elif kind == "run":
            raise HistoryError(p, f"line {lineno}: a second run line (concatenated histories?)")
        elif kind == "end":
            end = ev
        elif kind == "take":
            continue
        else:
            events.append(ev)
    if run is None:
        raise HistoryError(p, "is empty, not a tickets history")
    return History(str(p), run, events, end)


def outcomes(events: Iterable[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Each buyer's last word: its ok / fail / info event (or its invoke)."""
    last: dict[int, dict[str, Any]] = {}
    for ev in events:
        if ev["type"] in OUTCOMES or ev["buyer"] not in last:
            last[ev["buyer"]] = ev
    return last
