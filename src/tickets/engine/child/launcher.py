"""The launcher: a lean process that starts a run's buyers, and outlives none of them.

Forking costs in proportion to the memory of the process that forks, and a
forked child pays again for every page it touches. The command-line parent
holds click, the history writer and the run's bookkeeping; a buyer needs
none of them. So the parent starts one launcher, a fresh interpreter that
imports only the buyer's own modules (see :mod:`tickets.engine.child`), and the
launcher starts the buyers: it forks them (fork start method), starts them
through multiprocessing (spawn, forkserver: :mod:`tickets.engine.child.spawned`),
forks the workers of a big sale, or runs every buyer's command (``--exec``).
Measured on a 2-core machine: 1,000 forks take 0.4 s from the launcher
against 0.85 s from the parent, and a buyer costs ~1.9 ms of CPU against
~4 ms.

The launcher tells the parent each buyer's pid (``spawned``), that all are
started (``launched``), and each buyer's exit code once it has reaped it
(``exit``), over the run's event pipe.

Nothing outlives the sale: the launcher is a child subreaper above all of
it (see :mod:`tickets.engine.child.reaper`), in a session of its own. When the
sale is over it kills and reaps every descendant left (a daemon the user's
code started, a fork server); when its lifeline reads EOF, because the
parent died (by any signal, SIGKILL too) or closed it to stop the sale
now, it does the same at once and leaves.

Run as ``python -m tickets.engine.child.launcher`` with its orders as JSON on
stdin; :class:`tickets.engine.launcher_handle.LauncherHandle` is the parent's side.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

from ...check.events import exited, launched, spawned
from ...constants import TYPE_CHECKING
from ...locking.strategies import get
from ...stores.spec import StoreSpec
from .buyer import run_buyer, warm_up
from .gate import FdGate
from .pipe import Batcher, EventWriter
from .plan import BuyerPlan, CommandPlan, Delays
from .reaper import (
    CLEANUP_DEADLINE,
    abandon,
    become_subreaper,
    kill_descendants,
    parent_gone,
    reap_any,
)
from .warden import ward

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from types import FrameType
    from typing import Literal, TypedDict, TypeVar

    from ...locking.strategies import Token
    from .spawned import Served

    #: What ``prepare`` makes for a child before it is forked.
    Made = TypeVar("Made")

    class PlanDoc(TypedDict):
        """A :class:`BuyerPlan` as JSON: its fields' plain values (tuples
        go as arrays, and are read back by unpacking)."""

        store: Sequence[str | int | float | None]
        strategy: str
        seed: int
        delays: Sequence[float]
        lock_timeout: float
        fsync: bool
        gate_timeout: float
        kill_at: Sequence[tuple[int, str]]
        lease_ttl: float
        fencing: bool
        retries: int
        pause_at: Sequence[tuple[int, float]]
        buy: str | None
        log: str | None
        #: a CommandPlan's fields: command, sold_out, timeout, ids, env, kills
        command: tuple[str, int, float, bool, dict[str, str], Sequence[tuple[int, float]]] | None

    class LauncherOrders(TypedDict):
        """What the parent sends the launcher on its stdin."""

        events_fd: int
        gate_fd: int
        lifeline_fd: int
        buyers: int
        #: 0: a process per buyer; else buyers run on this many workers
        workers: int
        concurrency: int
        #: how buyers are started: fork, forkserver or spawn
        method: str
        plan: PlanDoc


#: How often the launcher reaps, flushes and looks for its parent.
TICK = 0.005


def orders_doc(
    plan: BuyerPlan,
    buyers: int,
    events_fd: int,
    gate_fd: int,
    lifeline_fd: int,
    workers: int = 0,
    concurrency: int = 1,
    method: str = "fork",
) -> LauncherOrders:
    """What the parent sends the launcher: plain JSON (see :func:`read_plan`).
    ``workers`` 0: a process per buyer; else that many workers, each running
    ``concurrency`` buyers at once (see tickets.engine.child.worker). ``method``:
    how buyers are started (fork, forkserver or spawn)."""
    fields: PlanDoc = {
        "store": list(plan.store),  # plain values; a password goes on stdin, not argv
        "strategy": plan.strategy.name,
        "seed": plan.seed,
        "delays": plan.delays,
        "lock_timeout": plan.lock_timeout,
        "fsync": plan.fsync,
        "gate_timeout": plan.gate_timeout,
        "kill_at": plan.kill_at,
        "lease_ttl": plan.lease_ttl,
        "fencing": plan.fencing,
        "retries": plan.retries,
        "pause_at": plan.pause_at,
        "buy": plan.buy,
        "log": plan.log,
        "command": plan.command,
    }
    return {
        "events_fd": events_fd,
        "gate_fd": gate_fd,
        "lifeline_fd": lifeline_fd,
        "buyers": buyers,
        "workers": workers,
        "concurrency": concurrency,
        "method": method,
        "plan": fields,
    }


def shrug_off_signals() -> None:
    """TERM, INT and HUP do not stop the launcher: the parent stops it by its
    lifeline (or SIGKILL), and buyer code that signals its process group
    (``trap 'kill 0' EXIT`` in a helper) would otherwise kill it before it
    could kill what the sale left. A buyer forked from here takes such a
    signal its default way."""
    me = os.getpid()

    def shrug(signum: int, frame: FrameType | None) -> None:
        if os.getpid() != me:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, shrug)


def read_plan(doc: LauncherOrders) -> BuyerPlan:
    fields = doc["plan"]
    command = None
    if fields["command"] is not None:
        line, sold_out, timeout, ids, env, kills = fields["command"]
        command = CommandPlan(line, sold_out, timeout, ids, env, tuple((b, t) for b, t in kills))
    return BuyerPlan(
        store=StoreSpec(*fields["store"]),
        strategy=get(fields["strategy"]),
        seed=fields["seed"],
        delays=Delays(*fields["delays"]),
        lock_timeout=fields["lock_timeout"],
        fsync=fields["fsync"],
        gate_timeout=fields["gate_timeout"],
        kill_at=tuple((buyer, point) for buyer, point in fields["kill_at"]),
        lease_ttl=fields["lease_ttl"],
        fencing=fields["fencing"],
        retries=fields["retries"],
        pause_at=tuple((buyer, length) for buyer, length in fields["pause_at"]),
        buy=fields["buy"],
        log=fields["log"],
        command=command,
    )


def fork_each(
    n: int,
    key: Literal["buyer", "worker"],
    out: Batcher,
    body: Callable[[int, Made], int],
    lifeline: int,
    prepare: Callable[[int], Made],
) -> dict[int, int]:
    """Fork ``n`` children (``key``: buyers or workers): child ``i`` runs
    ``body(i, prepare(i))`` and exits with what it returns (1 if it raises);
    ``prepare`` runs here, before the fork. Return {pid: i}. A parent that
    dies meanwhile stops it at once (see abandon)."""
    children: dict[int, int] = {}
    for i in range(n):
        if parent_gone(lifeline):
            abandon()
        made = prepare(i)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 1
            try:
                code = body(i, made)
            finally:
                os._exit(code)
        children[pid] = i
        out.add(spawned(pid, worker=i) if key == "worker" else spawned(pid, buyer=i))
    out.add(launched())
    out.flush()
    return children


def fork_buyers(
    plan: BuyerPlan, buyers: int, tokens: Iterator[Token], out: Batcher, gate_fd: int, lifeline: int
) -> dict[int, int]:
    """Fork every buyer; return {pid: buyer}."""
    events = out.writer.fd  # each buyer writes to the event pipe's descriptor
    gate = FdGate(gate_fd)

    def orphaned() -> bool:  # a buyer's last look before it writes the store
        return parent_gone(lifeline)

    def buyer(number: int, token: Token) -> int:
        run_buyer(plan, number, token, events, gate, silence=False, orphaned=orphaned)
        return 0

    # the run's one lock (process), a lock each (per-buyer): made before each fork
    return fork_each(buyers, "buyer", out, buyer, lifeline, lambda i: next(tokens))


def fork_workers(
    plan: BuyerPlan, doc: LauncherOrders, tokens: Iterator[Token], out: Batcher, lifeline: int
) -> dict[int, int]:
    """Fork the run's workers, each with its share of the buyers; return {pid: worker}."""
    workers, buyers = doc["workers"], doc["buyers"]
    shared = next(tokens)  # the run's one lock (process); per-buyer locks are made per buyer
    gate = FdGate(doc["gate_fd"])

    def orphaned() -> bool:
        return parent_gone(lifeline)

    def worker(number: int, _: None) -> int:
        from .worker import run_worker  # threads: only in workers, after the fork

        share = iter(range(number, buyers, workers))
        return run_worker(plan, share, doc["concurrency"], shared, out.writer.fd, gate, orphaned)

    return fork_each(workers, "worker", out, worker, lifeline, lambda i: None)


def reap(
    children: dict[int, int],
    out: Batcher,
    lifeline: int,
    key: Literal["buyer", "worker"] = "buyer",
    served: Served | None = None,
) -> None:
    """Report each child's exit code (``key``: a buyer's, or a worker's) until
    all have exited; ``served``: buyers a fork server started, whose exits
    come through their sentinels. Adopted orphans are reaped on the way. If
    the parent dies, stop everyone within a tick."""
    left = len(children) + (len(served.sentinels) if served is not None else 0)
    while left:
        if parent_gone(lifeline):
            abandon()
        exits = [(children.pop(pid), code) for pid, code in reap_any() if pid in children]
        if served is not None:
            exits += served.exited()
        for number, code in exits:
            t = time.monotonic()
            out.add(
                exited(code, t, worker=number) if key == "worker" else exited(code, t, buyer=number)
            )
        left -= len(exits)
        if not exits:
            out.flush()
            time.sleep(TICK)
    out.flush()


def start_buyers(plan: BuyerPlan, doc: LauncherOrders, out: Batcher) -> Served | None:
    """Start every buyer (a process each) and report them, then wait for
    them all; the spawn and forkserver ways return what started them."""
    lifeline = doc["lifeline_fd"]
    if doc.get("method", "fork") != "fork":
        from .spawned import Served

        served = Served(doc["method"])
        fds = (doc["events_fd"], doc["gate_fd"], lifeline)
        children = served.start(plan, doc["buyers"], *fds)
        for pid, number in children.items():
            out.add(spawned(pid, buyer=number))
        out.add(launched())
        out.flush()
        reap(served.direct, out, lifeline, served=served)
        return served
    sink = os.open(os.devnull, os.O_RDWR)
    warm_up(plan, EventWriter(sink), FdGate(sink))  # see buyer.warm_up
    os.close(sink)
    ctx = None
    if plan.strategy.parent_locks:
        import multiprocessing  # only the strategies of multiprocessing locks need it here

        ctx = multiprocessing.get_context("fork")
    tokens = plan.strategy.tokens(ctx)
    if parent_gone(lifeline):
        return None
    if doc.get("workers"):
        workers = fork_workers(plan, doc, tokens, out, lifeline)
        reap(workers, out, lifeline, key="worker")
        return None
    children = fork_buyers(plan, doc["buyers"], tokens, out, doc["gate_fd"], lifeline)
    reap(children, out, lifeline)
    return None


def main() -> None:
    doc: LauncherOrders = json.loads(sys.stdin.buffer.read())  # as orders_doc wrote it
    sys.stdin.close()
    ward(doc["lifeline_fd"])  # what a dead launcher leaves goes to its warden
    plan = read_plan(doc)
    out = Batcher(EventWriter(doc["events_fd"]))
    become_subreaper()  # every orphan of the sale is ours to kill
    shrug_off_signals()
    try:
        if plan.command is not None:  # every buyer a run of the user's command
            from .commands import run_commands

            for fd in (doc["events_fd"], doc["gate_fd"], doc["lifeline_fd"]):
                os.set_inheritable(fd, False)  # no command holds the run's pipes
            run_commands(plan, doc["buyers"], out, FdGate(doc["gate_fd"]), doc["lifeline_fd"])
            return
        plan.strategy.prepare_launcher()  # flock: every buyer inherits its timer's handler
        if plan.buy is not None:
            from .user_buyer import load

            try:
                load(plan.buy)  # imported once here, inherited by every buyer
            except Exception:
                pass  # each buyer then says why, as its outcome
        start_buyers(plan, doc, out)
    finally:
        # What the sale left running (a daemon the user's code started, a
        # fork server, an orphan of a killed buyer) goes with it.
        kill_descendants(time.monotonic() + CLEANUP_DEADLINE)
        out.flush()


if __name__ == "__main__":
    main()
