"""The start gate, a child's end: a pipe's read end that turns readable
(EOF) once the parent closes the write end, letting every buyer go at once
(the parent's end: :class:`tickets.engine.children.Gate`)."""

from __future__ import annotations

import select


class FdGate:
    """The start gate's read end: readable (EOF) once the parent closes the write end."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def poll(self, timeout: float) -> bool:
        return bool(select.select([self.fd], [], [], timeout)[0])
