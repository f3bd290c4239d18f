"""The run's record: one JSON object per line.

A history opens with a ``run`` line (what was run, on which store, and the
stock at the start) and closes with an ``end`` line (the stock at the end).
Between them, per operation (a buyer, or an order in the queue mode),
Jepsen's model: ``invoke`` when the attempt starts, then ``ok`` (with the
seat), ``fail`` (with the reason) or ``info`` (the outcome is unknown: the
buyer died or was never heard from). Timestamps are ``time.monotonic()``
seconds, comparable across the processes of one machine, so histories of
concurrent runs can be merged.

Reading is bounded: regular files only, read in chunks with the line limit
enforced as they arrive, every event validated (see tickets.check.operations)
and folded into a compact table, so memory grows with the operations and
never with the bytes, nor with the number the run line claims.
"""

from __future__ import annotations

import io
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Literal, TypedDict

from ..constants import UNREAD_STOCK
from ..errors import TicketsError
from ..stores.json_file import is_special
from .events import is_end_line, is_operation_event, is_run_line, is_take
from .history_lines import check_end_line, check_run_line
from .operations import Malformed, Operations, printable

if TYPE_CHECKING:
    from .events import EndLine, OperationEvent, RunLine


class Detail(TypedDict, total=False):
    """What is kept of an operation to draw it (see tickets.render.timeline):
    how it ended and the times of its phases (None where unknown)."""

    type: str
    #: its seat, or its ticket id (made printable)
    seat: int | str | None
    reason: str | None
    t_invoke: float
    t_start: float | None
    t_search: float | None
    t_locked: float | None
    t_end: float | None


#: The times of a :class:`Detail`, on the clock of the run's host.
DetailTime = Literal["t_invoke", "t_start", "t_search", "t_locked", "t_end"]
DETAIL_TIMES: tuple[DetailTime, ...] = ("t_invoke", "t_start", "t_search", "t_locked", "t_end")
#: The phases an operation's events say when they began (any of its events may).
PHASE_TIMES: tuple[Literal["t_start", "t_search", "t_locked"], ...] = (
    "t_start",
    "t_search",
    "t_locked",
)

#: A history line longer than this is not ours.
MAX_LINE = 1 << 16
#: Bytes read at a time.
CHUNK = 1 << 20
#: A blank (or whitespace-only) line: tickets writes none, so one means the
#: file was edited or is not a history; refused at once, it costs nothing
#: (a file of 50 MB of newlines was read a line at a time for minutes).
BLANK = "blank: a tickets history has no blank lines (was it edited?)"


class HistoryError(TicketsError):
    """A file that is not a usable history (exit 3): ``path: problem``."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


@dataclass
class History:
    """One run's record, validated: its run and end lines and its operations."""

    path: str
    run: RunLine
    ops: Operations
    end: EndLine | None = None
    #: the events of the operations asked for by number (for drawing them)
    details: dict[int, Detail] = field(default_factory=dict)
    #: the number of a last line cut off mid-write (a parent killed, a full
    #: disk): left out, and the history is unfinished
    torn: int | None = None
    #: the store as the run line names it, to match (``run["store"]`` is
    #: made printable, to show: two stores could show alike)
    named_store: str = ""

    @property
    def unfinished(self) -> str | None:
        """Why the history is unfinished, or None."""
        if self.end is not None:
            return None
        if self.torn is not None:
            return f"the history's last line, {self.torn}, was cut off mid-write"
        return "the history has no end line (the run was cut short)"

    @property
    def initial(self) -> int | None:
        """The stock at the start; None when nothing could read it (a
        command buyer's sale without ``--stock-cmd``)."""
        initial = self.run["initial"]
        return None if initial is None else int(initial)

    @property
    def remaining(self) -> int | None:
        return None if self.end is None else self.end.get("remaining")

    @property
    def noun(self) -> str:
        return self.ops.noun


class _NotANumber(ValueError):
    pass


def _no_constant(name: str) -> None:
    raise _NotANumber(f"{name} is not a number; a history holds finite numbers only")


#: NaN and Infinity are refused as they are parsed.
_DECODER = json.JSONDecoder(parse_constant=_no_constant)


def _open(path: Path) -> IO[bytes]:
    """A regular file, opened without waiting on a FIFO's writer."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
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
    return os.fdopen(fd, "rb")


def _chunks(path: Path, f: IO[bytes]) -> Iterator[tuple[int, list[str], bool]]:
    """The file's lines, a chunk at a time: (number of the first, the lines,
    whether they end in a newline: only a last line cut off mid-write does
    not). No line longer than MAX_LINE is ever held whole."""
    lineno, rest = 0, b""
    while True:
        try:
            chunk = f.read(CHUNK)
        except OSError as exc:
            raise HistoryError(path, f"cannot be read ({exc.strerror})") from None
        if not chunk:
            break
        chunk = rest + chunk if rest else chunk
        cut = chunk.rfind(b"\n") + 1
        rest = chunk[cut:]
        if len(rest) > MAX_LINE:
            at = lineno + chunk.count(b"\n", 0, cut) + 1
            raise HistoryError(path, f"line {at} is too long for a history")
        lines = _decode(path, lineno, chunk[:cut]).split("\n")
        lines.pop()  # what follows the last newline: nothing
        yield lineno + 1, lines, True
        lineno += len(lines)
    if rest:
        # A cut-off last line may end inside a character, too.
        yield lineno + 1, [rest.decode("utf-8", "replace")], False


def _decode(path: Path, lineno: int, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        at = lineno + data.count(b"\n", 0, exc.start) + 1
        raise HistoryError(path, f"line {at} is not UTF-8 text") from None


def expand(paths: tuple[str, ...] | list[str]) -> list[str]:
    """The histories named: a folder stands for the ``*.jsonl`` files in it
    and in its folders (a CI job's kept histories, a folder per test), by
    name; a linked folder is not followed."""
    out: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            found = sorted(
                os.path.join(folder, name)
                for folder, _, names in os.walk(path)
                for name in names
                if name.endswith(".jsonl")
            )
            if not found:
                raise HistoryError(path, "is a folder with no history (*.jsonl) in it")
            out += found
        else:
            out.append(path)
    return out


def read(
    path: str | os.PathLike[str], details: set[int] | None = None, lines: list[bytes] | None = None
) -> History:
    """Parse and validate one history file (``details``: operations whose
    events to keep, for drawing); or ``lines`` held in memory (a sale's stream)."""
    if not isinstance(path, str | os.PathLike) or os.fspath(path) in ("", b""):
        raise HistoryError(repr(path), "give the path of a history file")
    p = Path(path)
    if lines is not None:
        data = b"".join(line.rstrip(b"\n") + b"\n" for line in lines)
        return _Reader(p, details).read(io.BytesIO(data))
    with _open(p) as f:
        return _Reader(p, details).read(f)


class _Reader:
    def __init__(self, path: Path, details: set[int] | None) -> None:
        self.path = path
        self.wanted = details or set()
        self.details: dict[int, Detail] = {}
        self.run: RunLine | None = None
        self.end: EndLine | None = None
        self.torn: int | None = None
        self.named_store = ""

    def fail(self, lineno: int, problem: str) -> HistoryError:
        return HistoryError(self.path, f"line {lineno}: {problem}")

    def read(self, f: IO[bytes]) -> History:
        ops: Operations | None = None
        decode, wanted = _DECODER.decode, self.wanted
        for first, lines, ended in _chunks(self.path, f):
            for lineno, line in enumerate(lines, first):
                if len(line) > MAX_LINE:
                    raise self.fail(lineno, "too long for a history")
                try:
                    ev = decode(line)
                except _NotANumber as exc:
                    raise self.fail(lineno, str(exc)) from None
                except (ValueError, RecursionError):
                    if not line.strip():  # never written by tickets: refused at the first
                        raise self.fail(lineno, BLANK) from None
                    if lineno == 1:
                        problem = "is not a tickets history (not JSON Lines)"
                        raise HistoryError(self.path, problem) from None
                    if not ended:  # the writer was stopped mid-line: unfinished
                        self.torn = lineno
                        break
                    raise self.fail(lineno, "not valid JSON") from None
                if type(ev) is not dict:
                    raise self.fail(lineno, "not a JSON object; is this a tickets history?")
                try:
                    if ops is None:
                        ops = self.first(ev)
                    elif self.end is not None:
                        raise Malformed("comes after the end line")
                    elif is_operation_event(ev):
                        ops.add(ev)
                        if wanted and ev["buyer"] in wanted:
                            self.keep(ev)
                    elif is_take(ev):
                        ops.add_take(ev)
                    elif is_end_line(ev):
                        known = self.run is not None and self.run.get("stock") != UNREAD_STOCK
                        self.end = check_end_line(ev, ops, known)
                    elif is_run_line(ev):
                        raise Malformed("a second run line (concatenated histories?)")
                    else:
                        kind = printable(str(ev.get("type")))[:40]
                        raise Malformed(f"unknown event type {kind!r}")
                except Malformed as exc:
                    raise self.fail(lineno, str(exc)) from None
        if ops is None or self.run is None:
            raise HistoryError(self.path, "is empty, not a tickets history")
        ops.fit()
        return History(
            str(self.path), self.run, ops, self.end, self.details, self.torn, self.named_store
        )

    def first(self, ev: dict[str, object]) -> Operations:
        if not is_run_line(ev):
            if set(ev) == {"count"}:
                raise HistoryError(
                    self.path, "is a store, not a history; its histories are in history/ beside it"
                )
            raise HistoryError(
                self.path, "does not start with a run line; is this a tickets history?"
            )
        try:
            size, noun = check_run_line(ev)
        except Malformed as exc:
            raise HistoryError(self.path, str(exc)) from None
        self.named_store = ev["store"]
        self.run = {**ev, "store": printable(ev["store"]), "run_id": printable(ev["run_id"])}
        # Held to the claimed number, sized by the events there: a run line
        # that claims millions costs nothing until they come.
        return Operations(0, float(ev["t"]), noun, claimed=size, ids=ev.get("ticket_ids") is True)

    def keep(self, ev: OperationEvent) -> None:
        """An operation's fields, for drawing: its invoke's and its completion's."""
        held = self.details.setdefault(ev["buyer"], {})
        if ev["type"] == "invoke":
            held.update({"t_invoke": ev["t"], "t_start": ev.get("t_start"), "t_search": ev["t"]})
            return
        reason = ev.get("reason")
        seat: int | str | None = None  # drawn for a sale only
        if ev["type"] == "ok":
            seat = ev.get("seat") if "ticket" not in ev else printable(str(ev.get("ticket")))
        held.update(
            {
                "type": ev["type"],
                "seat": seat,
                "reason": None if reason is None else printable(reason),
                "t_end": ev["t"] if ev["type"] != "info" else None,
            }
        )
        for key in PHASE_TIMES:
            value = ev.get(key)
            if value is not None:
                held[key] = value
