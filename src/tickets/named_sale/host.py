"""A ledger's part in a named sale (see :mod:`tickets.named_sale.registry`): join it,
stream the history to it, and judge the whole sale at the end."""

from __future__ import annotations

import os
import socket

from ..check.history import HistoryError
from ..check.history_writer import HistoryWriter, NoHistory
from ..check.operations import Operations
from ..check.sale import check_sale
from ..check.verdict import Report, evaluate
from ..engine.config import BuyConfig, SaleConfig
from ..stores import StoreError, open_store
from ..stores.redis import RedisStore
from .registry import HostInfo, NamedSale, clock_offset
from .stream import StreamedHistory, sale_histories


class SaleHost:
    """What :class:`tickets.engine.ledger.SaleLedger` does as a host of a named sale."""

    config: SaleConfig
    initial: int | None
    run_id: str
    writer: HistoryWriter | NoHistory
    notes: list[str]
    ops: Operations
    sale: NamedSale | None
    clock: tuple[float, float]
    host: str
    #: the verdict is the whole sale's, on the stock the sale read at its end
    sale_judged = False

    def _give_up(self, discard: bool = False) -> None:
        raise NotImplementedError

    @property
    def sale_config(self) -> BuyConfig:
        """The config of a run that is part of a named sale (a buy's)."""
        assert isinstance(self.config, BuyConfig) and self.config.sale is not None
        return self.config

    def _open_sale(self) -> None:
        """A named sale: may this host join it? Its clock against the server's;
        its history streamed to the sale."""
        config = self.sale_config
        store = open_store(config.store, config.lock_timeout)
        assert isinstance(store, RedisStore) and self.initial is not None and config.sale
        try:
            self.sale = NamedSale(store, config.sale)
            self.sale.check_open(config.hosts, self.initial)
            self.clock = clock_offset(store)
        except BaseException:
            store.close()
            self._give_up(discard=True)
            raise
        self.host = f"{socket.gethostname()}:{os.getpid()}"
        self.writer = StreamedHistory(
            self.writer, self.sale, self.run_id, self.notes, config.join_timeout
        )  # type: ignore[assignment]

    def join_sale(self, buyers: int) -> str | None:
        """Once this host's buyers are ready: join the sale and wait for the
        others (None: started; else why this host stops)."""
        config = self.sale_config
        assert self.sale is not None
        info: HostInfo = {"run_id": self.run_id, "pid": os.getpid(), "buyers": buyers}
        return self.sale.join_and_wait(
            config.hosts, self.host, info, self.initial or 0, config.join_timeout
        )

    def sale_report(self, wait: bool = True) -> Report:
        """Every host's history from the sale's stream, judged as one; if not
        every host ends in time, this host's own, on a stock it cannot judge
        alone (the others sold from it too): not proven, or failed. A run
        that was stopped (Ctrl-C) does not wait for the others."""
        config = self.sale_config
        assert self.sale is not None
        try:
            ended = self.sale.finish_and_wait(
                self.host, self.run_id, config.hosts, config.join_timeout if wait else 0.0
            )
            if ended >= config.hosts:
                final = self.sale.final()
                report = check_sale(sale_histories(self.sale), *final)
                self.sale_judged = final[0] is not None
                return report
            why = f"only {ended} of {config.hosts} hosts had ended"
            if wait:
                why += f" in {config.join_timeout:g}s"
        except (StoreError, HistoryError) as exc:
            why = str(exc)
        self.notes.append(
            f"the sale could not be judged as one ({why}); this host's buyers "
            f"alone are: `tickets check --sale {self.sale.name}` judges it "
            "all"
        )
        return evaluate(self.ops, None, None)
