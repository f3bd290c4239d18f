"""How children report: events over one pipe, each message one atomic write.

Every message is a single ``write`` of less than ``PIPE_BUF`` bytes, which a
pipe makes atomic: writers need no lock, so a child killed mid-send can never
leave one held. (A ``multiprocessing.Queue`` shares one write lock among all
its writers; a writer SIGKILLed while holding it blocks every other forever.)
Nor does a child start a feeder thread or have to flush one before it exits.

The wire format is this module's own, both ends: two marker bytes, a 2-byte
big-endian length, the CRC-32 of the body, then that many bytes of compact
JSON (one event, or a list of events). A ``multiprocessing`` Connection only
carries the pipe's descriptor to children started by spawn or forkserver;
nobody reads or writes through it.

The marker and the checksum are for what is not ours: a buyer runs the
user's code (``--buy``) in the process that holds the pipe, and code that
writes to every descriptor it inherited puts its bytes between our
messages. The reader skips them to the next marker whose message checks out
(:class:`FrameReader`), counts them, and loses at most the messages they
were written across; the parent then ends the run with exit 3 naming the
buyer code, never a crash.
"""

from __future__ import annotations

import json
import os
import select
import zlib

from ...constants import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping
    from multiprocessing.connection import Connection

    from ...check.events import Message

#: Starts every message: bytes that begin no JSON and no UTF-8 text.
MARKER = b"\xfe\xf7"
HEADER_BYTES = 8
#: A pipe write of up to PIPE_BUF bytes is atomic (POSIX: at least 512;
#: Linux 4096, macOS 512); the header takes 8, and 4000 bytes hold 60 events.
MAX_EVENT_BYTES = min(4000, select.PIPE_BUF - HEADER_BYTES)
MAX_REASON = 300
#: Children reuse one encoder (``json.dumps`` with separators builds one per call).
_ENCODER = json.JSONEncoder(separators=(",", ":"), check_circular=False)


def compact(doc: object) -> str:
    """``json.dumps(doc, separators=(",", ":"))`` for flat, acyclic documents."""
    return _ENCODER.encode(doc)


def cut_reason(event: Mapping[str, object]) -> Mapping[str, object]:
    """The event with its reason cut to MAX_REASON characters (a history
    refuses longer ones)."""
    reason = event.get("reason")
    if isinstance(reason, str) and len(reason) > MAX_REASON:
        return {**event, "reason": reason[: MAX_REASON - 1] + "…"}
    return event


def encode(event: Message | Mapping[str, object]) -> bytes:
    """An event's bytes, its reason cut further if the whole would not fit
    one atomic write (a long reason on a system whose PIPE_BUF is 512)."""
    cut = cut_reason(event)
    data = compact(cut).encode()
    reason = cut.get("reason")
    if len(data) <= MAX_EVENT_BYTES or not isinstance(reason, str):
        if len(data) > MAX_EVENT_BYTES:
            raise ValueError(f"event too large for one atomic write ({len(data)} bytes)")
        return data
    low, high = 0, len(reason) - 1  # the longest cut that fits: a binary search
    while low < high:
        mid = (low + high + 1) // 2
        if len(compact({**cut, "reason": reason[:mid] + "…"}).encode()) <= MAX_EVENT_BYTES:
            low = mid
        else:
            high = mid - 1
    data = compact({**cut, "reason": reason[:low] + "…"}).encode()
    if len(data) > MAX_EVENT_BYTES:
        raise ValueError(f"event too large for one atomic write ({len(data)} bytes)")
    return data


def frame(data: bytes) -> bytes:
    return MARKER + len(data).to_bytes(2, "big") + zlib.crc32(data).to_bytes(4, "big") + data


class FrameReader:
    """Parent side: the messages in what was read off the pipe, and how
    many bytes between them were not ours (``junk``)."""

    def __init__(self) -> None:
        self.pending = bytearray()
        self.junk = 0

    def feed(self, chunk: bytes) -> list[Message]:
        self.pending += chunk
        return self.split()

    def split(self, final: bool = False) -> list[Message]:
        """Take every whole message off the front of what was read and
        return their events; a partial one stays, unless ``final`` (nothing
        more will come: what is left is not ours, and hides no message)."""
        pending = self.pending
        events: list[Message] = []
        while len(pending) >= HEADER_BYTES:
            if pending[:2] != MARKER:
                self._skip()
                continue
            size = int.from_bytes(pending[2:4], "big")
            end = HEADER_BYTES + size
            if size > MAX_EVENT_BYTES + 2:
                self._skip()
                continue
            if len(pending) < end:
                if not final:
                    break
                self._skip()
                continue
            body = bytes(pending[HEADER_BYTES:end])
            checks = zlib.crc32(body) == int.from_bytes(pending[4:8], "big")
            decoded = _decode(body) if checks else None
            if decoded is None:
                self._skip()
                continue
            del pending[:end]
            events += decoded
        if final and pending:
            self.junk += len(pending)
            pending.clear()
        return events

    def _skip(self) -> None:
        """Drop what comes before the next marker: it is not ours."""
        nxt = self.pending.find(MARKER, 1)
        cut = len(self.pending) - 1 if nxt < 0 else nxt  # the last byte may begin a marker
        self.junk += cut
        del self.pending[:cut]


def _decode(body: bytes) -> list[Message] | None:
    """A message's events, or None if it is not one of ours after all.

    Only the framing is checked here: each event is an object with a
    ``type``. What it holds is the ledger's to check (a child's report the
    history could not hold becomes an unknown outcome, never a crash)."""
    try:
        decoded = json.loads(body)
    except ValueError:
        return None
    events: list[Message] = decoded if isinstance(decoded, list) else [decoded]
    return events if all(isinstance(e, dict) and "type" in e for e in events) else None


class EventWriter:
    """A child's end of the event pipe: one ``os.write`` per message."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    @classmethod
    def over(cls, conn: int | Connection) -> EventWriter:
        """The writer for a pipe end handed down as a descriptor or a Connection."""
        return cls(conn if isinstance(conn, int) else conn.fileno())

    def send(self, event: Message) -> None:
        os.write(self.fd, frame(encode(event)))

    def send_all(self, events: list[Message]) -> None:
        """A few events in one atomic write (the caller keeps them small)."""
        data = b"[" + b",".join(encode(e) for e in events) + b"]"
        if len(data) > MAX_EVENT_BYTES:
            raise ValueError(f"events too large for one atomic write ({len(data)} bytes)")
        os.write(self.fd, frame(data))


class Batcher:
    """Several events per message (the queue mode's thousands of orders),
    flushed when the next would not fit one atomic write, when
    ``max_events`` are waiting, or when the caller says so."""

    def __init__(self, writer: EventWriter, max_events: int = 64) -> None:
        self.writer = writer
        self.max_events = max_events
        self._parts: list[bytes] = []
        self._size = 2

    def add(self, event: Message) -> None:
        data = encode(event)
        if self._parts and self._size + len(data) + 1 > MAX_EVENT_BYTES:
            self.flush()
        self._parts.append(data)
        self._size += len(data) + 1
        if len(self._parts) >= self.max_events:
            self.flush()

    def flush(self) -> None:
        if self._parts:
            os.write(self.writer.fd, frame(b"[" + b",".join(self._parts) + b"]"))
            self._parts = []
            self._size = 2
