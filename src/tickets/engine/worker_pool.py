"""``tickets buy --workers W``: the buyers multiplexed on W worker processes.

The launcher forks the workers (see :mod:`tickets.engine.child.worker`); buyer
``b`` runs on worker ``b % W``. What differs from a process per buyer is
only what a death means: a worker that dies takes every buyer it had in
flight with it (each invoked one becomes unknown, ``info``) and every one
it had not begun yet: a worker sends a buyer's invoke before that buyer may
change the store, so a buyer whose invoke never came changed nothing, and
is no operation of the history; the result counts it as never started.
Chaos pauses stop whole workers; chaos kills
kill the worker of a doomed buyer, at that buyer's kill point.
"""

from __future__ import annotations

import signal
from collections.abc import Hashable, Iterable
from typing import TYPE_CHECKING, Any

from ..check.events import TIMEOUT_PREFIX
from ..check.operations import NO_EFFECT, OK, PENDING, SOLD_OUT, UNKNOWN
from .buy import BuyMode
from .chaos import Chaos
from .child.session import BUYER_KILL_POINTS
from .children import describe_exit
from .config import BuyConfig
from .harness import FINISHED, NEWS, Harness
from .launcher_handle import LauncherHandle

if TYPE_CHECKING:
    from ..check.events import Message, ModeFields, Outcome


class WorkersMode(BuyMode):
    """A buy sale whose buyers run on worker processes."""

    #: a wake-up of the parent per purchase costs the lock's holder CPU
    gather = 0.002

    def __init__(self, config: BuyConfig) -> None:
        super().__init__(config)
        if config.chaos is not None:  # each worker dies with the kill rate, mid-share
            self.plan = self.plan._replace(kill_at=self.worker_kills(config.chaos))

    def worker_kills(self, chaos: Chaos) -> tuple[tuple[int, str], ...]:
        """(buyer, kill point): for each doomed worker, the buyer of its share
        whose kill point kills it (a seeded draw, anywhere in the share)."""
        rng = chaos.rng("worker-kill")
        kills = []
        for w in range(self.workers):
            if rng.random() < chaos.kill_rate:
                share = self.share(w)
                kills.append((share[rng.randrange(len(share))], rng.choice(BUYER_KILL_POINTS)))
        return tuple(kills)

    @property
    def workers(self) -> int:
        return self.config.workers or 0

    @property
    def processes(self) -> int:
        return self.workers

    def run_fields(self) -> ModeFields:
        return {
            **super().run_fields(),
            "workers": self.workers,
            "concurrency": self.config.concurrency,
        }

    def make_children(self, run: Harness) -> LauncherHandle:
        config = self.config
        if config.buy is not None and run.ledger.history_path is not None:
            self.plan = self.plan._replace(log=str(run.ledger.history_path) + ".log")
        return LauncherHandle(
            self.plan,
            config.buyers,
            run.events.writer.fileno(),
            run.gate.reader.fileno(),
            workers=self.workers,
            concurrency=config.concurrency or 1,
        )

    def start(self, run: Harness) -> str | None:
        assert isinstance(run.children, LauncherHandle)
        return self._launch(run, run.children)

    def worker_of(self, buyer: int) -> int:
        return buyer % self.workers

    def share(self, worker: int) -> range:
        return range(worker, self.config.buyers, self.workers)

    def on_event(self, run: Harness, ev: Message, now: float, live: bool) -> None:
        launcher: LauncherHandle = run.children
        if run.detector.heard(ev):
            return
        if not launcher.take_message(ev):
            if ev["type"] != "take":  # a clerk's: none in a buy sale
                run.ledger.record(ev)
        elif ev["type"] == "exit" and live:
            self.worker_gone(run, ev["worker"], describe_exit(ev["code"]))

    def worker_gone(self, run: Harness, worker: int, how: str) -> None:
        """A worker exited: its buyers still pending get their outcome now
        (its last events came before its exit on the pipe)."""
        run.detector.died(run.children.pids.get(worker))
        self.settle_share(run, self.share(worker), f"its worker {how}")

    def settle_share(self, run: Harness, buyers: range, why: str) -> None:
        """The outcome of each buyer of a share that has none: unknown if it
        began, never started (no operation: see SaleLedger.never_started) if not."""
        ledger = run.ledger
        ledger.never_started(buyers, why)
        kinds = ledger.ops.kinds
        for b in buyers:
            if kinds[b] == PENDING:
                ledger.unknown(b, why)

    def after_stop(self, run: Harness) -> None:
        """Every worker is gone: the buyers none of them began never started."""
        run.ledger.never_started(range(self.config.buyers), "the run ended first")

    def step(self, run: Harness, now: float, quiet: float, heard: bool) -> str | None:
        if run.ledger.live.done >= self.config.buyers:
            return FINISHED
        if self.t_gate is None:
            self.t_gate = now
        timeout = self.config.buyer_timeout
        if timeout is not None and now - self.t_gate > timeout and self.time_out(run, timeout):
            return NEWS
        children = run.children
        if not heard and isinstance(children, LauncherHandle) and children.gone():
            # The launcher is gone (killed): no exit will be reported. Stop its
            # workers, then settle what they left.
            children.kill_everything()
            run.drain()
            self.settle_share(run, range(self.config.buyers), "the buyer launcher died")
            return NEWS
        return None

    def time_out(self, run: Harness, timeout: float) -> bool:
        """Stop every worker still running ``timeout`` after the start."""
        run.drain()
        late = [w for w in range(self.workers) if run.children.exitcode(w) is None]
        run.children.signal(late, signal.SIGKILL)
        for w in late:
            why = f"{TIMEOUT_PREFIX}still buying after {timeout:g}s"
            self.settle_share(run, self.share(w), why)
        return bool(late)

    def quiet_allowed(self) -> float:
        config = self.config
        return 0.0 if config.buyer_timeout is None else config.buyer_timeout + 5.0

    def stall_message(self, seconds: float) -> str:
        return f"no buyer reported for {seconds:g}s; stopped by the watchdog"

    def pause_keys(self) -> Iterable[Hashable]:
        return range(self.workers)

    def doomed(self) -> Iterable[Hashable]:
        return {self.worker_of(b) for b, _ in self.plan.kill_at}

    def stats(self, run: Harness, aborted: str | None) -> None:
        """Every buyer has its outcome now: what each worker did, for the result."""
        run.ledger.worker_stats = [self.worker_stats(run, w) for w in range(self.workers)]

    def worker_stats(self, run: Harness, worker: int) -> dict[str, Any]:
        """One worker's share and how it ended (as the --json ``workers``)."""
        kinds = run.ledger.ops.kinds[worker :: self.workers]
        code = run.children.exitcode(worker)
        return {
            "worker": worker,
            "pid": run.children.pids.get(worker),
            "buyers": len(kinds),
            "sold": kinds.count(OK),
            "no_ticket": kinds.count(SOLD_OUT) + kinds.count(NO_EFFECT),
            "unknown": kinds.count(UNKNOWN),
            "exit": None if code is None else describe_exit(code),
        }

    def fate(self, run: Harness, number: int, killed: set[Hashable]) -> Outcome | None:
        """An invoked buyer still pending at the end: what stopped the run, or
        its worker's end, says why (a buyer's pid is its worker's)."""
        return None

    def last_word(self, run: Harness, number: int, killed: set[Hashable]) -> str:
        worker = self.worker_of(number)
        if worker in killed:
            return "its worker was stopped by the watchdog"
        return f"its worker {describe_exit(run.children.exitcode(worker))}"
