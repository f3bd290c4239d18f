"""The event pipe, parent side: every child writes to it, the parent reads it.

The parent reads the pipe's descriptor in bulk and splits the messages
itself (:class:`tickets.engine.child.pipe.FrameReader`, beside the writer: the
one place the wire format lives): one ``read`` takes every message waiting, where
``Connection.poll``/``recv_bytes`` cost a selector and two reads per
message (1,000 buyers send ~4,000). The pipe is made by multiprocessing
only so that its write end can be handed to spawned children.
"""

from __future__ import annotations

import os
import select
from typing import TYPE_CHECKING

from .child.pipe import FrameReader

if TYPE_CHECKING:
    from multiprocessing.context import BaseContext

    from ..check.events import Message

#: How much the parent reads from the event pipe at once.
READ_SIZE = 1 << 16


class EventPipe:
    """The read end, and the write end the children are handed."""

    def __init__(self, ctx: BaseContext) -> None:
        self.reader, self.writer = ctx.Pipe(duplex=False)
        self._fd = self.reader.fileno()
        self._frames = FrameReader()

    def get(self, timeout: float) -> list[Message]:
        """The events of the messages that arrive within ``timeout`` (empty if none).

        Raises EOFError once every write end is closed and nothing is left.
        """
        if not select.select([self._fd], [], [], timeout)[0]:
            return []
        chunk = os.read(self._fd, READ_SIZE)
        if not chunk:
            raise EOFError("every writer has closed the event pipe")
        return self._frames.feed(chunk)

    @property
    def junk(self) -> int:
        """Bytes read off the pipe that were no message of ours."""
        return self._frames.junk

    def drain(self, final: bool = False) -> list[Message]:
        """Every event already in the pipe (what exited children wrote before
        they went); ``final``: nobody writes any more, so a partial message
        left over is not ours."""
        events: list[Message] = []
        try:
            while select.select([self._fd], [], [], 0.01)[0]:
                events += self.get(timeout=0)
        except (EOFError, OSError):
            pass
        return events + self._frames.split(final) if final else events

    def close(self) -> None:
        self.reader.close()
        self.writer.close()
