"""The parent's ledger of one run: the history it writes, one row per
operation, the live counters, and the result it closes with.

An operation is one buyer's attempt, or one order in the queue mode. Every
event a child reports is written to the history as it arrives and folded
into its operation's row; an operation gets one outcome, the first.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ..check.events import (
    completed,
    end_line,
    invoked_by_parent,
    is_error,
    never_started,
    no_outcome,
    run_line,
    unknown_error,
)
from ..check.history_writer import HistoryWriter, NoHistory
from ..check.housekeeping import history_folder
from ..check.operations import (
    ABSENT,
    FORMAT_VERSION,
    OK,
    PENDING,
    SOLD_OUT,
    Malformed,
    Operations,
    printable,
)
from ..check.verdict import evaluate
from ..constants import ROWS_KEPT, UNREAD_STOCK
from ..locking.store_claim import SaleClaim, check_lock_path, restock, sweep
from ..named_sale.host import SaleHost
from ..named_sale.registry import NamedSale
from ..stores import Store, StoreError, open_store
from ..stores.base import disk_kind
from ..stores.spec import StoreSpec, safe_name
from .child.pipe import MAX_REASON
from .closing import read_final, recorded_error, run_error_of, stock_elsewhere, stock_words
from .config import SaleConfig
from .interrupts import shielded
from .rows import OperationRow, Progress, RowsKept, RunResult
from .shell_commands import read_stock

if TYPE_CHECKING:
    from ..check.events import (
        ChaosReport,
        Completion,
        Invoke,
        LeaseFields,
        ModeFields,
        OperationEvent,
        Outcome,
        RunLine,
        SaleFields,
        Take,
    )
    from .rows import QueueStats, WorkerStats

__all__ = ["OperationRow", "Progress", "RunResult", "SaleLedger"]


def default_history_path(spec: StoreSpec, mode: str, strategy: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    name = f"{spec.stem}-{stamp}-{mode}-{strategy}-{os.getpid()}.jsonl"
    return history_folder(spec) / name


def history_path_of(config: SaleConfig) -> Path | None:
    """Where the run's history goes (None: ``--history none``)."""
    if not config.keep_history:
        return None
    what = config.strategy.name
    buy = getattr(config, "buy", None)
    if buy is not None:  # the user's own buyer: named by its function
        what = safe_name(buy.rpartition(":")[2])
    elif getattr(config, "command", None) is not None:
        what = "exec"
    return config.history or default_history_path(config.store, config.mode, what)


class SaleLedger(SaleHost):
    """Opening it checks the store and the history path before anything is
    created (a run that cannot start changes nothing on disk), then creates
    the history, restocks under the store's lock and writes the ``run`` line.
    """

    def __init__(self, config: SaleConfig, total: int, run_fields: ModeFields) -> None:
        self.config = config
        self.history_path = history_path_of(config)
        #: where the stock is read: the store, --stock-cmd, or nowhere
        self.source: str = getattr(config, "stock", "store")
        self.initial: int | None = None
        self.store: Store | None = None
        self.claim: SaleClaim | None = None
        if self.source == "store":
            self.writer = self._open_on_store()
        else:
            if self.source == "command":
                self.initial = read_stock(config.stock_cmd, "before the sale")  # type: ignore[attr-defined]
            self.writer = HistoryWriter(self.history_path) if self.history_path else NoHistory()
            self.stock = stock_elsewhere(self.source, self.initial)
        self.run_id = os.urandom(8).hex()
        self.t_run = time.monotonic()
        self.notes: list[str] = []
        self.sale: NamedSale | None = None
        if getattr(config, "sale", None) is not None:
            self._open_sale()
        #: the first buyer's error that named a full or read-only disk
        self.disk: str | None = None
        #: the first operation that reported a second outcome of its own
        self.twice: str | None = None
        #: every ticket is an id (--ticket-ids): a seat may stand beside them
        self.ticket_ids = bool(getattr(config, "ticket_ids", False))
        #: what ``tickets check`` reads back from the history, folded in as it is written
        noun = "order" if config.mode == "queue" else "buyer"
        self.ops = Operations(total, self.t_run, noun, ids=self.ticket_ids)
        #: a row for every operation, or (a big sale) only for those worth a look
        self.rows: dict[int, OperationRow] = {}
        self.kept = RowsKept(every=total <= ROWS_KEPT or config.mode == "queue")
        self.live = Progress(total=total, noun=noun, stock=self.initial)
        self._seats: dict[int | str, int] = {}
        #: buyers on workers never begun (see never_started)
        self._never = bytearray(total if getattr(config, "workers", 0) else 0)
        #: buyers on workers send compact events: the search time is their invoke's
        self.compact = config.mode != "queue" and bool(getattr(config, "workers", 0))
        #: buyers on workers: what each worker did (set by tickets.engine.buy)
        self.worker_stats: list[WorkerStats] | None = None
        try:  # on disk before any buyer is let through the gate: no record, no sale
            self.writer.write(self._run_line(run_fields))
            self.writer.flush()
        except BaseException:
            self._give_up(discard=True)
            raise

    def _open_on_store(self) -> HistoryWriter | NoHistory:
        """Check and claim the store, create the history, restock."""
        config = self.config
        self.store = store = open_store(config.store, config.lock_timeout, config.fsync)
        try:
            self.claim = self._open_store(store)
        except BaseException:
            store.close()
            raise
        try:
            self.writer = HistoryWriter(self.history_path) if self.history_path else NoHistory()
        except BaseException:
            self._give_up()
            raise
        try:
            initial = self.initial = restock(store, config.tickets, config.lock_timeout)
        except BaseException:
            self._give_up(discard=True)
            raise
        # No connection of the parent's crosses the forks to come (it is
        # opened again for the final read).
        store.close()
        #: what the run did to the stock before it sold, in words
        self.stock = stock_words(config.tickets, self._before, initial)
        return self.writer

    def _give_up(self, discard: bool = False) -> None:
        """The run could not start: leave nothing of it behind."""
        if discard:
            self.writer.discard()
        if self.claim is not None:
            self.claim.close(undo=True)
        if self.store is not None:
            self.store.close()

    def _open_store(self, store: Store) -> SaleClaim:
        """Check the store and its lock files before anything is created, and
        claim the store: shared with other --keep-stock runs, alone if the run
        restocks. A store that exists must read back before anything changes
        (restocking does not paper over corruption; `tickets init` resets one)."""
        config = self.config
        store.check_ready()
        check_lock_path(config.store)
        self._before: int | None = None
        if config.tickets is None or store.exists():
            self._before = store.load()
        restocks = config.tickets is not None
        return SaleClaim(config.store, exclusive=restocks, timeout=config.lock_timeout)

    def _run_line(self, run_fields: ModeFields) -> RunLine:
        config = self.config
        lease: LeaseFields = {}
        if config.strategy.leases:
            lease = {"lease_ttl": config.lease_ttl, "fencing": config.fencing}
        if config.strategy.retried:
            lease["retries"] = config.retries
        sale: SaleFields = {}
        if self.sale is not None:
            offset, uncertainty = self.clock
            sale = {
                "sale": self.sale.name,
                "host": self.host,
                "hosts": getattr(config, "hosts", 1),
                "clock": {"offset": offset, "uncertainty": uncertainty},
            }
        return run_line(
            version=FORMAT_VERSION,
            run_id=self.run_id,
            mode=config.mode,
            store=self._store_identity(),
            store_kind=config.store.kind,
            stock=self.source,
            **lease,
            **sale,
            strategy=config.strategy.name,
            initial=self.initial,
            restocked=self.source == "store" and config.tickets is not None,
            ticket_ids=self.ticket_ids,
            **run_fields,
            seed=config.seed,
            delays={"search": config.delays.search, "write": config.delays.write},
            start_method=config.start_method,
            pid=os.getpid(),
            wall=datetime.now(UTC).isoformat(),
            t=self.t_run,
        )

    def _store_identity(self) -> str:
        """The store, as histories of one sale must share it."""
        if self.source == "store":
            return self.config.store.identity()
        if self.source == "command":
            return f"--stock-cmd {self.config.stock_cmd}"  # type: ignore[attr-defined]
        return "unknown (no --stock-cmd)"

    def close(self) -> None:
        """Close the history and let go of the store."""
        self.writer.close()
        if self.sale is not None:
            self.sale.store.close()
        if self.claim is not None:
            self.claim.close()
        if self.store is not None:
            self.store.close()

    def read_final(self) -> tuple[int | None, str | None]:
        """The stock after the sale, or why it could not be read."""
        if self.store is not None:
            sweep(self.store, self.config.lock_timeout)  # what this run's killed writers left
            return read_final(self.store)
        if self.source == UNREAD_STOCK:
            return None, None
        try:
            return read_stock(self.config.stock_cmd, "after the sale"), None  # type: ignore[attr-defined]
        except StoreError as exc:
            return None, str(exc)

    def row(self, number: int) -> OperationRow:
        row = self.rows.get(number)
        if row is None:
            row = self.rows[number] = OperationRow(number)
        return row

    def write(self, ev: Take) -> None:
        """Write an event of no operation's own (a clerk's ``take``)."""
        self.writer.write(ev)

    def record(self, ev: OperationEvent) -> None:
        """Write one operation's event and fold it into its row: one invoke,
        then one outcome, the first (a late duplicate, say from a child the
        parent already gave up on, is dropped). An outcome of an operation
        whose invoke never came gets one first, dated at the run's start:
        it may have begun at any time since. Written and folded whole, or
        not at all: a signal waits (see tickets.engine.interrupts)."""
        with shielded:
            self._record(ev)

    def _record(self, ev: OperationEvent) -> None:
        number = ev["buyer"]
        if not (type(number) is int and 0 <= number < self.ops.size):
            self.notes.append(f"dropped an event of no operation of this run: {number!r:.40}")
            return
        state = self.ops.kinds[number]
        if ev["type"] == "invoke":
            if state != ABSENT:
                return
        elif state > PENDING:
            self._second(ev, state)
            return
        else:
            if state == ABSENT:
                self._fold(invoked_by_parent(number, self.t_run))
            reason = ev.get("reason")  # not yet checked: it may not be text
            if self.disk is None and is_error(reason) and disk_kind(reason):
                self.disk = printable(reason)
        try:
            self.ops.add(ev)
        except Malformed as exc:  # a child's report the history could not hold
            ev = self._malformed(ev, number, exc)
            self.ops.add(ev)
        self.writer.write(ev)
        if ev["type"] == "invoke":
            self.live.submitted += 1
            if self.kept.every:
                self.row(number).update(ev)
            return
        self.live.done += 1
        twice = False
        if ev["type"] == "ok":
            self.live.sold += 1
            seat: int | str = ev["seat"] if "seat" in ev else ev["ticket"]
            self._seats[seat] = self._seats.get(seat, 0) + 1
            if self._seats[seat] > 1:
                self.live.double_sold += 1
                twice = True
        if self.kept.keep(ev, twice):
            row = self.row(number)
            if self.compact and row.t_search is None:  # searched when it was invoked
                row.t_search = self.ops.invoked[number]
                if row.t_start is None:
                    row.t_start = row.t_search
            row.update(ev)

    def _malformed(self, ev: OperationEvent, number: int, exc: Malformed) -> OperationEvent:
        """What is recorded of a report the history could not hold: an invoke
        by the parent, or an unknown outcome."""
        if ev["type"] == "invoke":
            return invoked_by_parent(number, self.t_run)
        outcome = unknown_error(f"its report was malformed ({exc})")
        outcome["reason"] = outcome["reason"][:MAX_REASON]
        if not any(n.startswith("a malformed report") for n in self.notes):
            self.notes.append(f"a malformed report is an unknown outcome: {exc}")
        return completed(outcome, {"buyer": number}, time.monotonic())

    def _second(self, ev: Completion, state: int) -> None:
        """A second outcome is dropped; after one of the operation's own (a
        sale, a sold out: not one the parent gave it), it says the buyer's
        process was not alone: its code forked, and both reported."""
        if state in (OK, SOLD_OUT) and self.twice is None:
            said = printable(str(ev.get("seat", ev.get("reason"))))
            self.twice = (
                f"{self.ops.noun} {ev['buyer']} reported two outcomes (the second, "
                f"{ev['type']} {said}, was dropped): did the buyer code fork?"
            )

    def _fold(self, ev: Invoke) -> None:
        self.ops.add(ev)
        self.writer.write(ev)
        if self.kept.every:
            self.row(ev["buyer"]).update(ev)

    def conclude(self, number: int, outcome: Outcome) -> None:
        """Give an operation the outcome the parent knows for it: a fail it
        can vouch for (``unsold``, ``abandoned``), or an unknown one, with
        the pid its row knows."""
        if outcome["type"] == "info":
            row = self.rows.get(number)
            pid = row.pid if row is not None else None
            self.record(completed(outcome, {"buyer": number, "pid": pid}, time.monotonic()))
        else:
            self.record(completed(outcome, {"buyer": number}, time.monotonic()))

    def unknown(self, number: int, why: str) -> None:
        """The operation's outcome is unknown: it was never heard of again."""
        self.conclude(number, no_outcome(why))

    def pending(self) -> list[int]:
        """The operations still without an outcome: of those with a row (a
        queue's orders are made as they come; every buyer of a sale of
        processes), or (a big sale on workers) every buyer invoked."""
        if self.kept.every:
            return [k for k, r in self.rows.items() if r.result == "pending"]
        kinds = self.ops.kinds
        return [i for i in range(self.ops.size) if kinds[i] == PENDING]

    def never_started(self, buyers: Iterable[int], why: str) -> None:
        """Buyers on a worker that never began them: they changed nothing and
        are no operation of the history (a sale of millions stopped early
        would write millions of lines); the result counts them, as
        ``fail: never started (why)``."""
        kinds, gone = self.ops.kinds, self._never
        n = 0
        for b in buyers:
            if kinds[b] == ABSENT and not gone[b]:
                gone[b] = 1
                n += 1
        if n:
            outcome = never_started(why)
            self.kept.count(outcome["type"], outcome["reason"], n)
            self.live.done += n

    def write_end(
        self,
        t0: float,
        remaining: int | None,
        store_error: str | None,
        aborted: str | None,
        recorded: str | None,
        chaos: ChaosReport | None,
    ) -> float:
        """Write the history's ``end`` line; the time it carries."""
        t_end = max(time.monotonic(), self.ops.latest)
        self.writer.write(
            end_line(
                remaining=remaining,
                store_error=store_error,
                aborted=aborted,
                run_error=recorded,
                notes=self.notes,
                chaos=chaos,
                duration_s=round(t_end - t0, 6),
                t=t_end,
            )
        )
        return t_end

    def close_run(
        self,
        t0: float,
        aborted: str | None,
        queue: QueueStats | None = None,
        chaos: ChaosReport | None = None,
        junk: int = 0,
    ) -> RunResult:
        """Read the final stock, write the ``end`` line, close the history,
        check. ``junk``: bytes on the event pipe that were not the tool's."""
        remaining, store_error = self.read_final()
        recorded = recorded_error(self.config, junk, self.disk or self.twice)
        # Not before any event it closes (one clock: only a clock that
        # stepped back could make it so, and the history must stay readable).
        t_end = self.write_end(t0, remaining, store_error, aborted, recorded, chaos)
        self.writer.close()
        rows = [self.rows[k] for k in sorted(self.rows)]
        if self.sale is not None:  # the sale's verdict, once every host has ended
            report = self.sale_report(wait=aborted is None)
            if store_error is not None and self.sale_judged:  # the sale read its own final stock
                self.notes.append(f"this host could not read the stock at its end: {store_error}")
                store_error = None
        else:
            report = evaluate(
                self.ops,
                self.initial,
                remaining,
                store_problem=store_error,
                aborted=aborted,
                run_error=recorded,
            )  # as check will say
        run_error = run_error_of(self.config, report, recorded)
        return RunResult(
            config=self.config,
            run_id=self.run_id,
            history=self.history_path,
            initial=self.initial,
            remaining=remaining,
            rows=rows,
            report=report,
            duration_s=t_end - t0,
            t0=t0,
            aborted=aborted,
            store_error=store_error,
            run_error=run_error,
            notes=tuple(self.notes),
            queue=queue,
            chaos=chaos,
            stock=self.stock,
            every_row=self.kept.every,
            outcomes=dict(self.kept.outcomes),
            workers=self.worker_stats,
        )
