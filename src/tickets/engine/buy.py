"""``tickets buy``: N buyer processes against the store, parent side.

The launcher starts the buyers, whatever the start method (see
:mod:`tickets.engine.launcher_handle`), and stands above everything they start: the
sale ends with none of it left. A buyer that exits without an outcome is
unknown (``info``).

**On workers** (``tickets buy --workers W``, :class:`WorkersMode`): the buyers
multiplexed on W worker processes.

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
import time
from collections.abc import Callable, Hashable, Iterable
from typing import TYPE_CHECKING

from ..check.events import (
    NEVER_STARTED,
    TIMEOUT_PREFIX,
    abandoned,
    completed,
    no_outcome,
    timed_out,
)
from ..check.operations import NO_EFFECT, OK, PENDING, SOLD_OUT, UNKNOWN
from ..errors import ConfigError
from .chaos import Chaos
from .child.plan import CommandPlan
from .child.session import BUYER_KILL_POINTS
from .children import describe_exit
from .config import BuyConfig
from .harness import FINISHED, NEWS, REAP_TIMEOUT, Harness, SaleMode, sell
from .launcher_handle import LauncherHandle
from .ledger import Progress, RunResult

if TYPE_CHECKING:
    from ..check.events import Message, ModeFields, Outcome
    from .rows import WorkerStats

#: How long after a command buyer's own timeout the parent stops it itself
#: (the launcher times each command out first).
EXEC_GRACE = 5.0
#: A chaos run kills a doomed command buyer within this long after its start
#: (seconds); one that is done by then is not killed.
EXEC_KILL_WINDOW = 0.05


def run_buy(config: BuyConfig, progress: Callable[[Progress], None] | None = None) -> RunResult:
    """Run one sale: N buyers against the store, a process each or on
    workers (see tickets.engine.harness.sell)."""
    if not isinstance(config, BuyConfig):
        raise ConfigError(f"run_buy takes a BuyConfig, not a {type(config).__name__}")
    if config.workers:
        return sell(WorkersMode(config), progress)
    return sell(BuyMode(config), progress)


class BuyMode(SaleMode):
    config: BuyConfig

    def __init__(self, config: BuyConfig) -> None:
        super().__init__(config)
        plan = config.plan()._replace(buy=config.buy)
        if config.chaos is not None:
            plan = plan._replace(
                kill_at=() if config.workers else config.chaos.buyer_kills(config.buyers),
                pause_at=config.chaos.held_pauses(config.buyers),
            )
        if config.sale is not None:  # buyers wait at the gate while the other hosts join
            plan = plan._replace(gate_timeout=max(plan.gate_timeout, config.join_timeout + 60))
        self.plan = plan
        #: when the gate opened (the first step), for --buyer-timeout
        self.t_gate: float | None = None

    @property
    def total(self) -> int:
        return self.config.buyers

    @property
    def processes(self) -> int:
        return self.config.buyers

    def run_fields(self) -> ModeFields:
        fields: ModeFields = {"buyers": self.config.buyers}
        if self.config.buy is not None:
            fields["buyer"] = self.config.buy
        if self.config.command is not None:
            fields["exec"] = self.config.command
        return fields

    def make_children(self, run: Harness) -> LauncherHandle:
        config = self.config
        user_code = config.buy is not None or config.command is not None
        if user_code and run.ledger.history_path is not None:
            # The user's tracebacks and stderr go beside the history, never to the terminal.
            self.plan = self.plan._replace(log=str(run.ledger.history_path) + ".log")
        if config.command is not None:
            self.plan = self.plan._replace(command=self.command_plan(run.ledger.run_id))
        return LauncherHandle(
            self.plan,
            config.buyers,
            run.events.writer.fileno(),
            run.gate.reader.fileno(),
            groups=config.command is not None,
            method=config.start_method,
        )

    def command_plan(self, run_id: str) -> CommandPlan:
        """What every command buyer is run with (``--exec``)."""
        config = self.config
        assert config.command is not None
        env = {"TICKETS_RUN": run_id, "TICKETS_BUYERS": str(config.buyers)}
        if config.stock == "store":  # the command sells from the tool's own store
            env |= config.store.environment()
        kills: tuple[tuple[int, float], ...] = ()
        if config.chaos is not None:  # each doomed command dies a seeded moment after its start
            rng = config.chaos.rng("exec-kill")
            kills = tuple((b, rng.uniform(0, EXEC_KILL_WINDOW)) for b, _ in self.plan.kill_at)
        return CommandPlan(
            config.command,
            config.sold_out_exit,
            config.exec_timeout,
            config.ticket_ids,
            env,
            kills,
        )

    def start(self, run: Harness) -> str | None:
        for b in range(self.config.buyers):
            run.ledger.row(b)
        return self._launch(run, run.children)

    def _launch(self, run: Harness, launcher: LauncherHandle) -> str | None:
        """Wait, with a deadline, until the launcher has forked every buyer."""
        deadline = time.monotonic() + max(60.0, self.config.stall_timeout)
        while not launcher.launched:
            run.record(run.events.get(timeout=0.05), time.monotonic(), live=False)
            if failure := launcher.failed():
                return failure
            if time.monotonic() > deadline:
                return "the buyer launcher did not start every buyer in time; stopped"
        return None

    def on_event(self, run: Harness, ev: Message, now: float, live: bool) -> None:
        launcher: LauncherHandle = run.children
        if run.detector.heard(ev):
            return
        if not launcher.take_message(ev):
            if ev["type"] != "take":  # a clerk's: none in a buy sale
                run.ledger.record(ev)
        elif live and ev["type"] == "exit" and run.ledger.rows[ev["buyer"]].result == "pending":
            # Its outcome would have come before its exit: there is none.
            run.ledger.unknown(ev["buyer"], describe_exit(ev["code"]))
            run.detector.died(launcher.pids.get(ev["buyer"]))

    def step(self, run: Harness, now: float, quiet: float, heard: bool) -> str | None:
        if run.ledger.live.done >= self.config.buyers:
            return FINISHED
        if self.t_gate is None:
            self.t_gate = now  # the first step comes just after the gate opened
        timeout = self.config.buyer_timeout
        if self.config.command is not None:  # the launcher times each command out;
            timeout = self.config.exec_timeout + EXEC_GRACE  # this is the backstop
        if timeout is not None and now - self.t_gate > timeout and self.time_out(run, timeout):
            return NEWS
        if heard:
            return None
        if self.launcher_died(run):
            return NEWS
        # Quiet: look for buyers that died without a word. Their last
        # event may still be in the pipe, so drain before judging.
        dead = [b for b in run.ledger.pending() if run.children.exitcode(b) is not None]
        if not dead:
            return None
        run.drain()
        for b in dead:
            if run.ledger.rows[b].result == "pending":
                run.ledger.unknown(b, describe_exit(run.children.exitcode(b)))
                run.detector.died(run.children.pids.get(b))
        return NEWS

    def quiet_allowed(self) -> float:
        """A buyer may take its --buyer-timeout (an --exec one its default),
        and the backstop its grace: the watchdog waits longer still."""
        config = self.config
        if config.command is not None:
            return config.exec_timeout + 2 * EXEC_GRACE
        return 0.0 if config.buyer_timeout is None else config.buyer_timeout + EXEC_GRACE

    def launcher_died(self, run: Harness) -> bool:
        """Buyers' exits (command buyers' outcomes too) are reported by the
        launcher: if it is gone (something killed it), no word is coming.
        What is left of its session is killed; those still pending are unknown."""
        children = run.children
        if not children.gone():
            return False
        children.kill_everything()
        run.record(run.events.drain(), time.monotonic())  # exits it sent still count
        pending = run.ledger.pending()
        for b in pending:
            run.ledger.unknown(b, "the buyer launcher died")
        return bool(pending)

    def time_out(self, run: Harness, timeout: float) -> bool:
        """Stop the buyers still buying ``timeout`` after the start: their
        outcome is unknown (they may have written). Any stopped?"""
        run.drain()  # an outcome already sent counts
        late = [b for b in run.ledger.pending() if run.children.exitcode(b) is None]
        for b in late:
            outcome = timed_out(f"still buying after {timeout:g}s; stopped")
            run.ledger.record(completed(outcome, {"buyer": b}, time.monotonic()))
        run.children.signal(late, signal.SIGKILL)
        return bool(late)

    def stall_message(self, seconds: float) -> str:
        return f"no buyer reported for {seconds:g}s; stopped by the watchdog"

    def pause_keys(self) -> Iterable[Hashable]:
        return range(self.config.buyers)

    def held_pauses(self) -> int:
        return len(self.plan.pause_at)

    def doomed(self) -> Iterable[Hashable]:
        return {b for b, _ in self.plan.kill_at}

    def stop(self, run: Harness, aborted: str | None) -> Iterable[Hashable]:
        deadline = time.monotonic() + REAP_TIMEOUT
        killed: list[Hashable] = run.children.stop(deadline, kill_now=aborted is not None)
        return killed

    def fate(self, run: Harness, number: int, killed: set[Hashable]) -> Outcome | None:
        if run.detector.abandoned and number in killed:
            return abandoned()  # nobody could hold the lock but the dead: no write
        if number not in run.children.pids:
            return no_outcome(NEVER_STARTED)
        return None

    def last_word(self, run: Harness, number: int, killed: set[Hashable]) -> str:
        if number in killed:
            return "stopped by the watchdog"
        return describe_exit(run.children.exitcode(number))


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

    def worker_stats(self, run: Harness, worker: int) -> WorkerStats:
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
