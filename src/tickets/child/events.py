"""How children report: events over one pipe, each message one atomic write.

Every message is a single ``write`` of less than ``PIPE_BUF`` bytes, which a
pipe makes atomic: writers need no lock, so a child killed mid-send can never
leave one held. (A ``multiprocessing.Queue`` shares one write lock among all
its writers; a writer SIGKILLed while holding it blocks every other forever.)
Nor does a child start a feeder thread or have to flush one before it exits.

The wire format is this module's own, both ends: a 4-byte big-endian length,
then that many bytes of compact JSON (one event, or a list of events). A
``multiprocessing`` Connection only carries the pipe's descriptor to children
started by spawn or forkserver; nobody reads or writes through it.
"""

from __future__ import annotations

import json
import os

from ..constants import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

#: Linux guarantees atomic pipe writes up to 4096 bytes; the header takes 4.
MAX_EVENT_BYTES = 4000
MAX_REASON = 300
HEADER_BYTES = 4
#: Children reuse one encoder (``json.dumps`` with separators builds one per call).
_ENCODER = json.JSONEncoder(separators=(",", ":"), check_circular=False)


def compact(doc: Any) -> str:
    """``json.dumps(doc, separators=(",", ":"))`` for flat, acyclic documents."""
    return _ENCODER.encode(doc)


def cut_reason(event: dict[str, Any]) -> dict[str, Any]:
    """The event with its reason cut to MAX_REASON characters (a history
    refuses longer ones)."""
    reason = event.get("reason")
    if isinstance(reason, str) and len(reason) > MAX_REASON:
        return {**event, "reason": reason[: MAX_REASON - 1] + "…"}
    return event


def encode(event: dict[str, Any]) -> bytes:
    data = compact(cut_reason(event)).encode()
    if len(data) > MAX_EVENT_BYTES:
        raise ValueError(f"event too large for one atomic write ({len(data)} bytes)")
    return data


def frame(data: bytes) -> bytes:
    return len(data).to_bytes(HEADER_BYTES, "big") + data


def split_frames(pending: bytearray) -> list[dict[str, Any]]:
    """Parent side: take every whole message off the front of ``pending``
    (what was read so far) and return their events; a partial one stays."""
    events: list[dict[str, Any]] = []
    while len(pending) >= HEADER_BYTES:
        size = int.from_bytes(pending[:HEADER_BYTES], "big")
        if size > MAX_EVENT_BYTES + 2:
            raise ValueError(f"a message of {size} bytes is not one of ours")
        end = HEADER_BYTES + size
        if len(pending) < end:
            break
        decoded = json.loads(bytes(pending[HEADER_BYTES:end]))
        del pending[:end]
        events += decoded if isinstance(decoded, list) else [decoded]
    return events


class EventWriter:
    """A child's end of the event pipe: one ``os.write`` per message."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    @classmethod
    def over(cls, conn: Any) -> EventWriter:
        """The writer for a pipe end handed down as a descriptor or a Connection."""
        return cls(conn if isinstance(conn, int) else conn.fileno())

    def send(self, event: dict[str, Any]) -> None:
        os.write(self.fd, frame(encode(event)))

    def send_all(self, events: list[dict[str, Any]]) -> None:
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

    def add(self, event: dict[str, Any]) -> None:
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
