"""A named sale's one history (see :mod:`tickets.named_sale.registry`): each host streams
its lines to the sale as it writes them, and any machine reads the whole
sale back, to judge it or to draw it."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ..check.history import History, HistoryError
from ..check.history_writer import HistoryWriter
from ..engine.child.pipe import compact, cut_reason
from ..stores.base import StoreError
from .registry import NamedSale, SaleError

if TYPE_CHECKING:
    from ..check.events import HistoryLine, RunLine
    from ..check.history import Detail, History, HistoryError
    from ..check.history_writer import HistoryWriter


class StreamedHistory:
    """A history writer that also streams every line to the sale, a batch
    per flush. The file is the record; the stream follows it. If the server
    cannot take a batch (a partition), the lines wait, in order, and go with
    the next batch that gets through; closing retries until ``patience``
    seconds have passed. What never got through is said in a note, and the
    file has it all."""

    def __init__(
        self,
        inner: HistoryWriter,
        sale: NamedSale,
        run_id: str,
        notes: list[str],
        patience: float = 30.0,
    ) -> None:
        self.inner = inner
        self.sale = sale
        self.run_id = run_id
        self.notes = notes
        self.patience = patience
        self.pending: list[str] = []
        #: lines the stream has taken
        self.sent = 0
        self.failure: str | None = None

    @property
    def broken(self) -> HistoryError | None:
        return self.inner.broken

    def write(self, event: HistoryLine) -> None:
        line = compact(cut_reason(event))  # encoded once, for the file and the stream
        self.inner.write_line(line)
        self.pending.append(line)

    def flush(self) -> None:
        self.inner.flush()
        self.push()

    def push(self) -> bool:
        """Send what waits; True once nothing does."""
        if not self.pending:
            return True
        try:
            self.sale.append(self.run_id, self.pending, self.sent + 1)
        except StoreError as exc:
            self.failure = str(exc)
            return False
        self.sent += len(self.pending)
        self.pending = []
        return True

    def close(self) -> None:
        deadline = time.monotonic() + self.patience
        while not self.push() and time.monotonic() < deadline:
            time.sleep(0.2)
        if self.pending:
            self.notes.append(
                f"{len(self.pending)} line(s) of this host's history never reached "
                f"the sale's stream ({self.failure}); this host's history file "
                "has them"
            )
        self.inner.close()

    def discard(self) -> None:
        self.inner.discard()


def sale_histories(sale: NamedSale, details: bool = False) -> list[History]:
    """Every host's history of the sale, from its stream: each run's lines,
    in order, parsed and validated like a file (``sale NAME run ID``);
    ``details``: with every operation's events kept, for drawing."""
    from ..check.history import HistoryError, read

    runs: dict[str, list[bytes]] = {}
    for run_id, seq, line in sale.lines():
        held = runs.setdefault(run_id, [])
        if seq <= len(held):
            continue  # sent again after a failure: the same line
        if seq != len(held) + 1:
            raise HistoryError(
                f"sale {sale.name} run {run_id[:16]}",
                f"line {len(held) + 1} is missing from the sale's stream "
                "(the host's own file has it)",
            )
        held.append(line)
    if not runs:
        raise SaleError(
            f"sale {sale.name}",
            "has no history on the server",
            "is the name right? `tickets sale list` shows the sales",
        )
    histories = []
    for run_id, lines in runs.items():
        keep = set(range(len(lines))) if details else None  # more than its operations
        history = read(f"sale {sale.name} run {run_id[:16]}", keep, lines)
        if history.run.get("sale") != sale.name:
            raise HistoryError(history.path, "is not a host of this sale")
        histories.append(history)
    return histories


def sale_as_one(sale: NamedSale) -> tuple[History, list[str]]:
    """The whole sale as one history to draw: every host's operations on
    the server's clock, numbered host after host; and a line per host
    saying which numbers are its."""
    from ..check.history import DETAIL_TIMES, History
    from ..check.operations import Operations
    from ..check.sale import on_server_clock

    histories = sorted(sale_histories(sale, details=True), key=lambda h: float(h.run["t"]))
    tables, hosts, start = [], [], 0
    details: dict[int, Detail] = {}
    for n, h in enumerate(histories, 1):
        offset = float(h.run["clock"]["offset"])
        tables.append(on_server_clock(h.ops, offset, 0.0))
        for number, held in h.details.items():
            moved = details[start + number] = held.copy()
            for key in DETAIL_TIMES:
                value = held.get(key)
                if value is not None:
                    moved[key] = value + offset
        hosts.append(f"host {n} ({h.run.get('host')}): buyers {start}-{start + h.ops.size - 1}")
        start += h.ops.size
    ops = Operations.merge(tables)
    first = histories[0]
    ends = [h.end for h in histories if h.end is not None]
    run: RunLine = {**first.run, "buyers": start, "t": ops.t_run}
    end = max(ends, key=lambda e: float(e["t"])) if len(ends) == len(histories) else None
    return History(f"sale {sale.name}", run, ops, end, details, None), hosts
