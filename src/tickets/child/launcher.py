"""The launcher: a lean process that forks a run's buyers (fork start method).

Forking costs in proportion to the memory of the process that forks, and a
forked child pays again for every page it touches. The command-line parent
holds click, the history writer and the run's bookkeeping; a buyer needs
none of them. So for the fork start method the parent starts one launcher,
a fresh interpreter that imports only the buyer's own modules (see
:mod:`tickets.child`), and the launcher forks the buyers. Measured on a
2-core machine: 1,000 forks take 0.4 s from the launcher against 0.85 s from
the parent, and a buyer costs ~1.9 ms of CPU against ~4 ms.

The launcher tells the parent each buyer's pid (``spawned``), that all are
started (``launched``), and each buyer's exit code once it has reaped it
(``exit``), over the run's event pipe. It runs in a session of its own, so
the parent can kill it and every buyer left with one ``killpg``; and if the
parent dies (by any signal, SIGKILL too), the launcher reads EOF on its
lifeline pipe within a tick and kills that session itself.

Run as ``python -m tickets.child.launcher`` with its orders as JSON on
stdin; :class:`tickets.run.launcher.LauncherHandle` is the parent's side.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time

from ..constants import TYPE_CHECKING
from ..locks import install_alarm
from ..stores.spec import StoreSpec
from ..strategies import MP_LOCK_STRATEGIES, get
from .buyer import run_buyer, warm_up
from .events import Batcher, EventWriter
from .plan import BuyerPlan, CommandPlan, Delays

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

#: Kinds of message only the launcher sends; the parent keeps them out of the history.
LAUNCHER_KINDS = ("spawned", "launched", "exit")
#: How often the launcher reaps, flushes and looks for its parent.
TICK = 0.005


class FdGate:
    """The start gate's read end: readable (EOF) once the parent closes the write end."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def poll(self, timeout: float) -> bool:
        return bool(select.select([self.fd], [], [], timeout)[0])


def orders_doc(
    plan: BuyerPlan, buyers: int, events_fd: int, gate_fd: int, lifeline_fd: int,
    workers: int = 0, concurrency: int = 1,
) -> dict[str, Any]:  # fmt: skip
    """What the parent sends the launcher: plain JSON (see :func:`read_plan`).
    ``workers`` 0: a process per buyer; else that many workers, each running
    ``concurrency`` buyers at once (see tickets.child.workers)."""
    fields = plan._asdict()
    fields["store"] = list(plan.store)  # plain values; a password goes on stdin, not argv
    fds = {"events_fd": events_fd, "gate_fd": gate_fd, "lifeline_fd": lifeline_fd}
    return {**fds, "buyers": buyers, "workers": workers, "concurrency": concurrency,
            "plan": fields}  # fmt: skip


def parent_gone(lifeline: int) -> bool:
    """The parent holds the lifeline's only write end: it reads EOF once the
    parent has died, whatever killed it."""
    return bool(select.select([lifeline], [], [], 0)[0])


def stop_everyone() -> None:
    """The parent is gone: this launcher and every buyer stop now, before
    another write (they share the launcher's process group)."""
    os.killpg(0, signal.SIGKILL)


def read_plan(doc: dict[str, Any]) -> BuyerPlan:
    fields = doc["plan"]
    fields["delays"] = Delays(*fields["delays"])
    fields["kill_at"] = tuple((buyer, point) for buyer, point in fields["kill_at"])
    fields["pause_at"] = tuple((buyer, length) for buyer, length in fields["pause_at"])
    fields["store"] = StoreSpec(*fields["store"])
    if fields.get("command") is not None:
        command = CommandPlan(*fields["command"])
        fields["command"] = command._replace(kills=tuple((b, t) for b, t in command.kills))
    return BuyerPlan(**fields)


def fork_each(
    n: int, key: str, out: Batcher, body: Callable[[int, Any], int],
    prepare: Callable[[int], Any] = lambda i: None,
) -> dict[int, int]:  # fmt: skip
    """Fork ``n`` children (``key``: buyers or workers): child ``i`` runs
    ``body(i, prepare(i))`` and exits with what it returns (1 if it raises);
    ``prepare`` runs here, before the fork. Return {pid: i}."""
    children: dict[int, int] = {}
    for i in range(n):
        made = prepare(i)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 1
            try:
                code = body(i, made)
            finally:
                os._exit(code)
        children[pid] = i
        out.add({"type": "spawned", key: i, "pid": pid})
    out.add({"type": "launched"})
    out.flush()
    return children


def fork_buyers(
    plan: BuyerPlan, buyers: int, tokens: Any, out: Batcher, gate_fd: int, lifeline: int
) -> dict[int, int]:
    """Fork every buyer; return {pid: buyer}."""
    events = out.writer.fd  # each buyer writes to the event pipe's descriptor
    gate = FdGate(gate_fd)

    def orphaned() -> bool:  # a buyer's last look before it writes the store
        return parent_gone(lifeline)

    def buyer(number: int, token: Any) -> int:
        run_buyer(plan, number, token, events, gate, silence=False, orphaned=orphaned)
        return 0

    # the run's one lock (process), a lock each (per-buyer): made before each fork
    return fork_each(buyers, "buyer", out, buyer, lambda i: next(tokens))


def fork_workers(
    plan: BuyerPlan, doc: dict[str, Any], tokens: Any, out: Batcher, lifeline: int
) -> dict[int, int]:
    """Fork the run's workers, each with its share of the buyers; return {pid: worker}."""
    workers, buyers = doc["workers"], doc["buyers"]
    shared = next(tokens)  # the run's one lock (process); per-buyer locks are made per buyer
    gate = FdGate(doc["gate_fd"])

    def orphaned() -> bool:
        return parent_gone(lifeline)

    def worker(number: int, _: Any) -> int:
        from .workers import run_worker  # threads: only in workers, after the fork

        share = iter(range(number, buyers, workers))
        return run_worker(plan, share, doc["concurrency"], shared, out.writer.fd, gate, orphaned)

    return fork_each(workers, "worker", out, worker)


def reap(children: dict[int, int], out: Batcher, lifeline: int, key: str = "buyer") -> None:
    """Report each child's exit code (``key``: a buyer's, or a worker's) until
    all have exited. If the parent dies, stop everyone within a tick."""
    while children:
        if parent_gone(lifeline):
            stop_everyone()
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid:
            if pid in children:
                code = os.waitstatus_to_exitcode(status)
                out.add({"type": "exit", key: children.pop(pid), "code": code,
                         "t": time.monotonic()})  # fmt: skip
            continue
        out.flush()
        time.sleep(TICK)
    out.flush()


def main() -> None:
    doc = json.loads(sys.stdin.buffer.read())
    sys.stdin.close()
    plan = read_plan(doc)
    out = Batcher(EventWriter(doc["events_fd"]))
    if plan.command is not None:  # every buyer a run of the user's command
        from .commands import run_commands

        for fd in (doc["events_fd"], doc["gate_fd"], doc["lifeline_fd"]):
            os.set_inheritable(fd, False)  # no command holds the run's pipes
        run_commands(plan, doc["buyers"], out, FdGate(doc["gate_fd"]), doc["lifeline_fd"])
        return
    if plan.strategy == "flock":
        install_alarm()  # every buyer inherits its lock timer's handler
    if plan.buy is not None:
        from .user_buyer import load

        try:
            load(plan.buy)  # imported once here, inherited by every buyer
        except Exception:
            pass  # each buyer then says why, as its outcome
    sink = os.open(os.devnull, os.O_RDWR)
    warm_up(plan, EventWriter(sink), FdGate(sink))  # see buyer.warm_up
    os.close(sink)
    ctx = None
    if plan.strategy in MP_LOCK_STRATEGIES:
        import multiprocessing  # only these two strategies need it here

        ctx = multiprocessing.get_context("fork")
    tokens = get(plan.strategy).tokens(ctx)
    if parent_gone(doc["lifeline_fd"]):
        return
    if doc.get("workers"):
        workers = fork_workers(plan, doc, tokens, out, doc["lifeline_fd"])
        reap(workers, out, doc["lifeline_fd"], key="worker")
        return
    children = fork_buyers(plan, doc["buyers"], tokens, out, doc["gate_fd"], doc["lifeline_fd"])
    reap(children, out, doc["lifeline_fd"])


if __name__ == "__main__":
    main()
