"""Buyers started by multiprocessing's spawn or fork server, from the launcher.

With ``--start-method spawn`` or ``forkserver`` the launcher starts the
buyers through multiprocessing (not ``os.fork``), so that they, and a fork
server with them, descend from the launcher: it is their subreaper, and
what outlives the sale is found and killed there (see
:mod:`tickets.engine.child.reaper`). A spawned buyer is the launcher's child; a
fork server's buyers are the server's children, and their exits come from
the server over each one's sentinel. Every buyer looks at the lifeline (EOF
once the parent is gone) before it writes the store, as a forked one does.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.process
import os
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess

from ...constants import TYPE_CHECKING
from .buyer import run_buyer
from .plan import BuyerPlan
from .reaper import abandon, parent_gone

if TYPE_CHECKING:
    from multiprocessing.context import ForkServerContext, SpawnContext

    from ...locking.strategies import Token


def forget(process: BaseProcess) -> None:
    """Take a started ``multiprocessing.Process`` off multiprocessing's own
    list of children: we reap it ourselves.

    The one place the package relies on a CPython private: in
    ``Lib/multiprocessing/process.py``, ``BaseProcess.start()`` first calls
    ``_cleanup()``, which polls every process in the module's ``_children``
    set, then adds the new one to it; starting N children that all wait at
    the gate is then O(N^2) (1,000 buyers took 5.6 s). A process left in the
    set is harmless, just slow: if the set goes away the run stays correct,
    and ``tests/test_layout.py`` fails loudly so that this is looked at.
    """
    children = getattr(multiprocessing.process, "_children", None)
    if isinstance(children, set):
        children.discard(process)


def started_buyer(
    plan: BuyerPlan,
    number: int,
    token: Token,
    events: Connection,
    gate: Connection,
    lifeline: Connection,
) -> None:
    """A buyer process multiprocessing started: a buyer like a forked one."""

    def orphaned() -> bool:
        return parent_gone(lifeline.fileno())

    if not orphaned():
        run_buyer(plan, number, token, events, gate, silence=True, orphaned=orphaned)


class Served:
    """The buyers of one sale, started by multiprocessing (``method``:
    spawn or forkserver). ``direct``: {pid: buyer} of those that are the
    launcher's own children (spawn), which its reaper reaps; a fork
    server's are waited for through their sentinels."""

    def __init__(self, method: str) -> None:
        self.method = method
        self.ctx: SpawnContext | ForkServerContext = (
            multiprocessing.get_context("spawn")
            if method == "spawn"
            else multiprocessing.get_context("forkserver")
        )
        self.direct: dict[int, int] = {}
        self.sentinels: dict[int, tuple[int, BaseProcess]] = {}
        self.conns: tuple[Connection, ...] = ()
        #: every buyer's lock token, kept until the sale ends (see Strategy.hand_out)
        self.tokens: list[Token] = []

    def start(
        self, plan: BuyerPlan, buyers: int, events_fd: int, gate_fd: int, lifeline_fd: int
    ) -> dict[int, int]:
        """Start every buyer behind the gate (the run's pipe ends: the event
        pipe's, the gate's and the lifeline's); return {pid: buyer}."""
        # Copies of the run's pipe ends for multiprocessing to hand over (a
        # Connection closes its descriptor when it goes), kept for the sale.
        events, gate, lifeline = self.conns = (
            Connection(os.dup(events_fd), readable=False),
            Connection(os.dup(gate_fd), writable=False),
            Connection(os.dup(lifeline_fd), writable=False),
        )
        self.tokens = plan.strategy.hand_out(self.ctx, buyers)
        started: dict[int, int] = {}
        for number, token in enumerate(self.tokens):
            if parent_gone(lifeline_fd):  # a start takes 10-30 ms: don't go on
                abandon()
            args = (plan, number, token, events, gate, lifeline)
            process = self.ctx.Process(target=started_buyer, args=args)
            process.start()
            forget(process)
            assert process.pid is not None
            started[process.pid] = number
            if self.method == "spawn":
                self.direct[process.pid] = number
            else:
                self.sentinels[process.sentinel] = (number, process)
        return started

    def exited(self) -> list[tuple[int, int]]:
        """The fork server's buyers that have exited since the last call:
        (buyer, exit code)."""
        if not self.sentinels:
            return []
        done = []
        for sentinel in wait(list(self.sentinels), 0):
            assert isinstance(sentinel, int)
            number, process = self.sentinels.pop(sentinel)
            code = process.exitcode
            done.append((number, 255 if code is None else code))
        return done
