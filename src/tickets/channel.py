"""Children -> parent events over one pipe.

Every event is a single write of less than ``PIPE_BUF`` bytes, which a pipe
makes atomic: writers need no lock, so a child killed mid-send can never
leave one held. (A ``multiprocessing.Queue`` shares one write lock among all
its writers; a writer SIGKILLed while holding it blocks every other forever.)
Nor does a child start a feeder thread or have to flush one before it exits.
"""

from __future__ import annotations

import json
import json.encoder
import os
import select

TYPE_CHECKING = False
if TYPE_CHECKING:  # no typing at run time: see tickets.record
    from typing import Any

#: Linux guarantees atomic pipe writes up to 4096 bytes; the header takes 4.
MAX_EVENT_BYTES = 4000
MAX_REASON = 300
#: How much the parent reads from the event pipe at once.
READ_SIZE = 1 << 16
#: json.dumps with separators builds a new encoder per call; buyers reuse this one.
_ENCODER = json.JSONEncoder(separators=(",", ":"))


def _c_encoder() -> Any:
    """The C encoder ``JSONEncoder.encode`` builds on every call, built once.

    Per call it also makes a dict for cycle checks that events (flat dicts)
    do not need. A forked buyer that skips all that touches fewer objects,
    and so copies fewer pages (see tickets.launcher).
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - an interpreter without the C accelerator
        return None
    try:
        # markers (None: no cycle checks), default, encoder, indent,
        # key and item separators, sort_keys, skipkeys, allow_nan
        return make(
            None, _ENCODER.default, json.encoder.encode_basestring_ascii, None, ":", ",",
            False, False, True,
        )  # fmt: skip
    except TypeError:  # pragma: no cover - a json whose C encoder takes other arguments
        return None


_C_ENCODE = _c_encoder()


def compact(doc: Any) -> str:
    """``json.dumps(doc, separators=(",", ":"))``, without building an encoder
    per call. For the flat, acyclic documents events and histories hold."""
    if _C_ENCODE is not None:
        return "".join(_C_ENCODE(doc, 0))
    return _ENCODER.encode(doc)  # pragma: no cover - no C accelerator


def encode(event: dict[str, Any]) -> bytes:
    reason = event.get("reason")
    if isinstance(reason, str) and len(reason) > MAX_REASON:
        event = {**event, "reason": reason[: MAX_REASON - 1] + "…"}
    data = compact(event).encode()
    if len(data) > MAX_EVENT_BYTES:
        raise ValueError(f"event too large for one atomic write ({len(data)} bytes)")
    return data


def send(conn: Any, event: dict[str, Any]) -> None:
    """Child side: one ``send_bytes`` is one ``write`` for messages this small."""
    conn.send_bytes(encode(event))


def send_all(conn: Any, events: list[dict[str, Any]]) -> None:
    """Child side: a few events in one atomic write (the caller keeps them small)."""
    data = b"[" + b",".join(encode(e) for e in events) + b"]"
    if len(data) > MAX_EVENT_BYTES:
        raise ValueError(f"events too large for one atomic write ({len(data)} bytes)")
    conn.send_bytes(data)


def _events(message: bytes) -> list[dict[str, Any]]:
    decoded = json.loads(message)
    return decoded if isinstance(decoded, list) else [decoded]


class Batcher:
    """Child side: several events per message (the queue mode's thousands of
    orders), flushed when the next would not fit one atomic write, when
    ``max_events`` are waiting, or when the caller says so."""

    def __init__(self, conn: Any, max_events: int = 64) -> None:
        self.conn = conn
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
            self.conn.send_bytes(b"[" + b",".join(self._parts) + b"]")
            self._parts = []
            self._size = 2


class Channel:
    """Parent side: the read end and the shared write end of one pipe.

    On POSIX the parent reads the pipe's descriptor in bulk and splits the
    frames itself: one ``read`` takes every message waiting, where
    ``Connection.poll``/``recv_bytes`` cost a selector and two reads per
    message (1,000 buyers send ~4,000).
    """

    def __init__(self, ctx: Any) -> None:
        self.reader, self.writer = ctx.Pipe(duplex=False)
        self._fd = self.reader.fileno() if os.name == "posix" else None
        self._pending = bytearray()

    def get(self, timeout: float) -> list[dict[str, Any]]:
        """The events of the messages that arrive within ``timeout`` (empty if none).

        Raises EOFError once every write end is closed and nothing is left.
        """
        if self._fd is None:  # pragma: no cover - not POSIX
            if not self.reader.poll(timeout):
                return []
            return _events(self.reader.recv_bytes())
        if not self._has_frame():
            if not select.select([self._fd], [], [], timeout)[0]:
                return []
            chunk = os.read(self._fd, READ_SIZE)
            if not chunk:
                raise EOFError("every writer has closed the event pipe")
            self._pending += chunk
        events: list[dict[str, Any]] = []
        while self._has_frame():
            size = int.from_bytes(self._pending[:4], "big", signed=True)
            if size < 0:
                raise ValueError("a message framed for another reader")
            events += _events(bytes(self._pending[4 : 4 + size]))
            del self._pending[: 4 + size]
        return events

    def _has_frame(self) -> bool:
        pending = self._pending
        if len(pending) < 4:
            return False
        return len(pending) >= 4 + int.from_bytes(pending[:4], "big", signed=True)

    def drain(self) -> list[dict[str, Any]]:
        """Every event already in the pipe (what exited children wrote before they went)."""
        events: list[dict[str, Any]] = []
        while True:
            try:
                more = self.get(timeout=0.01)
            except (EOFError, OSError, ValueError):
                return events
            if not more:
                return events
            events += more

    def close(self) -> None:
        self.reader.close()
        self.writer.close()
