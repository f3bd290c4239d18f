"""The explorer's sale: a scratch store of the user's kind, restocked
before every schedule, and one schedule run under a chooser's orders.

The user's stock is never touched: a JSON file or a SQLite database is
explored in a scratch folder made beside it (so a store on tmpfs is
explored on tmpfs), a Redis key as a scratch key on the same server;
either is removed at the end. Each schedule is a sale of its own, with
its own history (in memory, on the logical clock), judged by the same
checks as any sale (:func:`tickets.check.verdict.evaluate`).
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ...check.events import is_error, unknown_error
from ...check.operations import Operations
from ...check.verdict import Report, evaluate
from ...errors import StoreError, UsageProblem
from ...stores import open_store
from ...stores.pg_url import SCRATCH_TABLE
from ..child.buyer import outcome_of, purchase
from ..child.user_buyer import load
from ..child.user_buyer import outcome as user_outcome
from .buyers import ExploredLock, ExploredSession, outcome_words
from .scheduler import Abandoned, Controller, Executed, StepHung, buyer_runner
from .steps import LEASE, Step, expire

if TYPE_CHECKING:
    from collections.abc import Callable

    from ...check.events import Message
    from ...locking.strategies import Strategy, Token
    from ...stores import Store
    from ...stores.spec import StoreSpec

    #: (depth, the enabled buyers, every unfinished buyer's next step, the
    #: buyer of the step before, what that step did) -> who goes next; None:
    #: drop the schedule
    Chooser = Callable[[int, list[int], dict[int, Step], int | None, str], int | None]


class Nondeterministic(Exception):
    """The same choices led somewhere else: the buyer code depends on more
    than the store (time, randomness, its own state across calls)."""


@dataclass
class Schedule:
    """One schedule that ran: its steps, and the sale it made."""

    #: who went at each step
    choices: list[int]
    ran: list[Executed]
    #: at each step, the buyers that could have gone
    enabled: list[list[int]]
    events: list[Message]
    #: None: dropped before it completed (redundant, or over the bound)
    report: Report | None = None
    remaining: int | None = None
    #: why nobody could go on, if so (every unfinished buyer waiting on a lock)
    deadlock: str | None = None
    #: buyers whose code went round the scheduler (``store.raw``)
    uncontrolled: set[int] = field(default_factory=set)
    #: buyers that ended without one store operation through their handle
    #: (their stock is elsewhere: their own database, which nobody orders)
    unseen: set[int] = field(default_factory=set)
    #: how each buyer ended, in words
    ended: dict[int, str] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.report is not None and bool(self.report.failures())

    @property
    def preemptions(self) -> int:
        """Switches away from a buyer that could have gone on."""
        count = 0
        for i in range(1, len(self.choices)):
            last = self.choices[i - 1]
            if self.choices[i] != last and last in self.enabled[i]:
                count += 1
            elif self.choices[i] < 0:  # an expiry is the scheduler's doing: one more
                count += 1
        return count


@dataclass
class SaleSetup:
    """What an exploration sells with: the strategy, the buyer code, the stock."""

    spec: StoreSpec
    strategy: Strategy
    buy: str | None
    buyers: int
    tickets: int
    retries: int
    lease_ttl: float = 1.0
    fencing: bool = False
    max_steps: int = 200
    #: the folder scratch stores go in (None: one made beside the store)
    scratch: str | None = None
    #: names the Redis scratch keys (see tickets.engine.explore.isolated)
    token: str = ""
    #: the most one step may take
    step_deadline: float = 30.0


def claimed(events: list[Message]) -> set[int]:
    """The buyers that said how their purchase went, sold or sold out (not
    an error, which the checks fail on its own): one of them that made no
    store operation claimed it of a stock the explorer never saw."""
    out = set()
    for event in events:
        if event.get("type") in ("ok", "fail") and not is_error(event.get("reason")):
            buyer = event.get("buyer")
            if isinstance(buyer, int):
                out.add(buyer)
    return out


class ExploredSale:
    """A scratch store, and the schedules run on it one after another."""

    def __init__(self, setup: SaleSetup) -> None:
        self.setup = setup
        self.scratch: str | None = None
        #: a PostgreSQL store's scratch table
        self.scratch_table: str | None = None
        self.function = None
        if setup.buy is not None:  # before anything is made: a bad one leaves nothing
            self.function = load(setup.buy)
        self.spec = self._scratch(setup.spec)
        self.keeper: Store = open_store(self.spec, 1.0)
        self.stores: list[Store] = []
        self._ctx = multiprocessing.get_context("fork")
        try:
            self.keeper.restock(setup.tickets)
            for _ in range(setup.buyers):
                # busy_timeout 0: a SQLite statement that would wait is refused at once
                self.stores.append(open_store(self.spec, 0.0))
        except BaseException:
            self.close()
            raise

    def _scratch(self, spec: StoreSpec) -> StoreSpec:
        within = self.setup.scratch
        if within is not None:  # the warden made it: ours, a folder, no link
            import stat

            try:
                info = os.lstat(within)
            except OSError as exc:
                raise StoreError(within, f"cannot be made ({exc.strerror})") from None
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
                raise StoreError(within, "is not the explorer's own scratch folder")
        if spec.kind == "postgres":  # a scratch table of its own, dropped at the end
            table = f"{SCRATCH_TABLE}{self.setup.token}{os.urandom(6).hex()}"
            schema = str(spec.table).rpartition(".")[0]
            self.scratch_table = f"{schema}.{table}" if schema else table
            self._folder = tempfile.mkdtemp(prefix="tickets-explore-", dir=within)
            lock_file = os.path.join(self._folder, "explore.lock")
            return spec._replace(table=self.scratch_table, lock_file=lock_file)
        if spec.kind == "redis":
            key = f"{spec.key}:explore:{self.setup.token}{os.urandom(6).hex()}"
            self.scratch = key
            self._folder = tempfile.mkdtemp(prefix="tickets-explore-", dir=within)
            return spec._replace(key=key, lock_file=os.path.join(self._folder, "explore.lock"))
        where = within or os.path.dirname(os.path.abspath(str(spec.path)))
        try:
            folder = tempfile.mkdtemp(prefix=".tickets-explore-", dir=where)
        except OSError as exc:
            raise StoreError(
                where, f"cannot hold the explorer's scratch store ({exc.strerror})"
            ) from None
        self._folder = folder
        name = "explore.db" if spec.kind == "sqlite" else "explore.json"
        return spec._replace(path=os.path.join(folder, name), lock_file=None)

    def close(self) -> None:
        for store in [*self.stores, self.keeper]:
            try:
                store.close()
            except Exception:
                pass
        if self.scratch_table is not None:
            from ...stores.postgres import drop_scratch_tables

            drop_scratch_tables(self.spec, self.scratch_table)
        if self.scratch is not None:  # the Redis scratch key and its companions
            try:
                client = open_store(self.spec, 1.0)
                raw = client.raw_handle()
                raw.delete(  # type: ignore[union-attr]
                    *(self.scratch + end for end in ("", ":lease", ":fence", ":fenced"))
                )
                client.close()
            except Exception:
                pass
        shutil.rmtree(self._folder, ignore_errors=True)

    # -- one schedule ------------------------------------------------------

    def _tokens(self) -> list[Token]:
        strategy = self.setup.strategy
        return strategy.hand_out(self._ctx if strategy.parent_locks else None, self.setup.buyers)

    def run(self, choose: Chooser) -> Schedule:
        """Restock, run the buyers under ``choose``'s orders, and judge the sale."""
        setup = self.setup
        self.keeper.restock(setup.tickets)
        ctl = Controller(setup.buyers, deadline=setup.step_deadline)
        events: list[Message] = []
        tokens = self._tokens()
        shared = all(t is tokens[0] for t in tokens) and tokens[0] is not None
        locks: list[ExploredLock] = []
        ended: dict[int, str] = {}
        for b in range(setup.buyers):
            lock = self._lock(ctl, b, tokens[b], shared)
            locks.append(lock)
            session = self._session(ctl, b, events)
            lock.session = session
            ctl.start(buyer_runner(ctl, b, self._body(session, lock, ended)), b)
        schedule = Schedule([], ctl.ran, [], events)
        completed = False
        try:
            ctl.play(self._decider(ctl, choose, schedule))
            if ctl.error is not None:
                raise ctl.error
            completed = not ctl.unfinished()
        finally:
            if ctl.unfinished():
                ctl.unwind()
            for lock in locks:
                lock.close()
        schedule.uncontrolled = ctl.uncontrolled
        schedule.ended = ended
        if completed:
            silent = [b for b in range(setup.buyers) if b not in ended]
            if silent:
                raise NoOutcome(
                    f"buyer {silent[0]} ended without an outcome the explorer could read"
                )
            acted = {e.step.buyer for e in schedule.ran}
            schedule.unseen = {b for b in claimed(events) if b not in acted}
            schedule.report = self._judge(schedule)
        return schedule

    def _decider(self, ctl: Controller, choose: Chooser, schedule: Schedule):  # type: ignore[no-untyped-def]
        """Who goes next (called by the buyer at its switch point): None
        when all are done, nobody can go on (a deadlock), or the chooser
        drops the schedule."""
        steps_of = [0] * self.setup.buyers
        leases = self.setup.strategy.leases

        def decide() -> int | None:
            while True:
                unfinished = ctl.unfinished()
                if not unfinished:
                    return None
                enabled = ctl.enabled()
                pending = {b: s for b in unfinished if (s := ctl.pending[b]) is not None}
                holder = ctl.holders.get(LEASE) if leases else None
                if holder is not None and (
                    getattr(pending.get(holder), "kind", "") == "wait" or ctl.finished[holder]
                ):
                    # Paused in its write delay (or gone, the lease left held), the
                    # holder may outlive its lease.
                    enabled = [*enabled, -(holder + 1)]
                    pending[-(holder + 1)] = expire(holder)
                if not enabled:
                    held = ", ".join(f"{b} waits for {pending[b].obj}" for b in sorted(pending))
                    schedule.deadlock = f"nobody can go on: buyer {held}"
                    return None
                last = schedule.choices[-1] if schedule.choices else None
                said = ctl.ran[-1].said if ctl.ran else ""
                who = choose(len(schedule.choices), enabled, pending, last, said)
                if who is None:
                    return None  # dropped: nothing new down this way
                schedule.choices.append(who)
                schedule.enabled.append(enabled)
                if who >= 0:
                    steps_of[who] += 1
                    if steps_of[who] > self.setup.max_steps:
                        raise LoopingBuyer(
                            f"buyer {who} took more than {self.setup.max_steps} steps "
                            "(a loop the explorer cannot bound; raise --max-steps)"
                        )
                    return who
                # The holder paused past its lease: the server lets it go.
                self._expire()
                del ctl.holders[LEASE]
                ctl.ran.append(Executed(pending[who], "pauses past its lease: it expires"))

        return decide

    def _judge(self, schedule: Schedule) -> Report:
        """The schedule's sale, judged by the same checks as any sale."""
        schedule.remaining = self.keeper.load()
        ops = Operations(self.setup.buyers, 1.0)
        for event in schedule.events:
            if event.get("type") in ("invoke", "ok", "fail", "info"):
                ops.add(event)  # type: ignore[arg-type]
        return evaluate(ops, self.setup.tickets, schedule.remaining)

    def _expire(self) -> None:
        """End the lease on the server now (PEXPIRE 0), as its TTL would."""
        raw = self.keeper.raw_handle()
        raw.pexpire(f"{self.spec.key}:lease", 0)  # type: ignore[union-attr]

    def _lock(self, ctl: Controller, b: int, token: Token, shared: bool) -> ExploredLock:
        setup, store = self.setup, self.stores[b]

        def build():  # type: ignore[no-untyped-def]
            return setup.strategy.child_lock(
                token, store, 1.0, setup.lease_ttl, setup.fencing, threaded=True
            )

        return ExploredLock(ctl, b, build, shared)

    def _session(self, ctl: Controller, b: int, events: list[Message]) -> ExploredSession:
        store = self.stores[b]
        strategy = self.setup.strategy
        takes = strategy.sells_by_take(store)
        optimistic = takes and strategy.takes_optimistically(store)
        return ExploredSession(ctl, b, store, events, self.setup.retries, takes, optimistic)

    def _body(
        self, session: ExploredSession, lock: ExploredLock, ended: dict[int, str]
    ) -> Callable[[], None]:
        function = self.function

        def body() -> None:
            try:
                if function is None:
                    outcome = outcome_of(purchase, session, lock)  # type: ignore[arg-type]
                else:
                    hollow = self.setup.strategy.name if session.takes else None
                    outcome = user_outcome(function, session, lock, None, hollow)  # type: ignore[arg-type]
            except Abandoned:
                raise
            except BaseException as exc:  # noqa: BLE001 - what its result or error did on the way
                # (a __repr__ or __str__ that raises): the outcome is unknown, and an error
                outcome = unknown_error(
                    f"the buyer's result could not be read ({type(exc).__name__})"
                )
            session.report(outcome, lock.t_locked)
            ended[session.buyer] = outcome_words(outcome)

        return body


class NoOutcome(Exception):
    """A buyer's thread ended without reporting how its purchase went."""


class LoopingBuyer(Exception):
    """A buyer took more steps than ``--max-steps``."""


__all__ = [
    "ExploredSale",
    "LoopingBuyer",
    "Nondeterministic",
    "SaleSetup",
    "Schedule",
    "StepHung",
    "UsageProblem",
]
