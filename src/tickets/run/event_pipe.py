"""The event pipe, parent side: every child writes to it, the parent reads it.

The parent reads the pipe's descriptor in bulk and splits the messages
itself (:func:`tickets.child.events.split_frames`, the one place the wire
format lives): one ``read`` takes every message waiting, where
``Connection.poll``/``recv_bytes`` cost a selector and two reads per
message (1,000 buyers send ~4,000). The pipe is made by multiprocessing
only so that its write end can be handed to spawned children.
"""

from __future__ import annotations

import os
import select
from typing import Any

from ..child.events import split_frames

#: How much the parent reads from the event pipe at once.
READ_SIZE = 1 << 16


class EventPipe:
    """The read end, and the write end the children are handed."""

    def __init__(self, ctx: Any) -> None:
        self.reader, self.writer = ctx.Pipe(duplex=False)
        self._fd = self.reader.fileno()
        self._pending = bytearray()

    def get(self, timeout: float) -> list[dict[str, Any]]:
        """The events of the messages that arrive within ``timeout`` (empty if none).

        Raises EOFError once every write end is closed and nothing is left.
        """
        events = split_frames(self._pending)
        if events:
            return events
        if not select.select([self._fd], [], [], timeout)[0]:
            return []
        chunk = os.read(self._fd, READ_SIZE)
        if not chunk:
            raise EOFError("every writer has closed the event pipe")
        self._pending += chunk
        return split_frames(self._pending)

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
