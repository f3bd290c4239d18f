"""``tickets.sale``: real sales of your purchase function, judged, for a test to assert.

Each trial is ``tickets buy --buy …`` through the library: the store
restocked to ``tickets``, ``buyers`` buyer processes started by a fresh
launcher (never forked from the caller, a pytest session included), a
history written and checked. The outcome passes only when every trial
passed: a trial that failed a check fails it (the trials stop there), and
one that proved nothing (nobody raced, no stock, nobody took part) leaves
it NOT PROVEN, which fails ``assert_passed()`` too.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..constants import DEFAULT_STRATEGY, DEFAULT_TICKETS
from ..errors import ConfigError
from ..stores.spec import safe_name
from .callables import buyer_spec
from .outcome import GateOutcome

if TYPE_CHECKING:
    from ..check.verdict import Report
    from ..engine.rows import RunResult
    from ..locking.strategies import Strategy
    from ..stores.spec import StoreSpec

#: The most trials one call runs.
MAX_TRIALS = 1000
#: ``store.wait()``'s upper bound by default (seconds): the command line's --write-delay.
DEFAULT_WRITE_DELAY = 0.004
#: The longest ``write_delay`` (seconds): the command line's 10,000 ms.
MAX_WRITE_DELAY = 10.0


@dataclass(frozen=True, repr=False)
class SaleOutcome(GateOutcome):
    """What :func:`sale` found: every trial run (up to the first that failed)."""

    #: the buyer as the buyer processes loaded it (``MODULE:FUNC`` or ``FILE.py:FUNC``)
    buy: str
    #: the trials asked for
    trials: int
    #: each trial's run, in order
    results: tuple[RunResult, ...]

    @property
    def result(self) -> RunResult:
        """The trial that decides the verdict: the first that failed, else the
        first that proved nothing, else the last."""
        for judged in (_failed, _unproven):
            for result in self.results:
                if judged(result):
                    return result
        return self.results[-1]

    def verdict_passed(self) -> bool:
        """``passed``, without counting as having asked."""
        return len(self.results) == self.trials and all(r.passed for r in self.results)

    @property
    def unproven(self) -> bool:
        """Nothing failed, but some trial tested nothing: not a pass."""
        return not self.verdict_passed() and not any(_failed(r) for r in self.results)

    @property
    def report(self) -> Report:
        """The deciding trial's verdict (``sold``, ``oversold``, ``double_sold``, checks)."""
        return self.result.report

    @property
    def history(self) -> Path | None:
        """The deciding trial's history."""
        return self.result.history

    @property
    def histories(self) -> tuple[Path, ...]:
        return tuple(r.history for r in self.results if r.history is not None)

    def message(self) -> str:
        """The verdict in words: what ``assert_passed()`` raises with."""
        from ..render.tables import own_stock_hint, verdict

        result = self.result
        config = result.config
        lines = [verdict(result.report, result.aborted, None, result.broken).plain]
        if hint := own_stock_hint(result).plain:  # it sold from a database of its own
            lines.append(hint)
        lines.append(f"history   {result.history}")
        trial = self.results.index(result) + 1
        buyers = getattr(config, "buyers", 0)
        lines.append(
            f"sale      --buy {self.buy} --lock {config.strategy.name}, "
            f"{plural(buyers, 'buyer')} over {plural(result.initial or 0, 'ticket')} "
            f"(trial {trial} of {self.trials}); {result.report.contention.words()}"
        )
        return "\n".join(lines)

    def verdict_failed(self) -> bool:
        return any(_failed(r) for r in self.results)

    def __repr__(self) -> str:
        return f"<SaleOutcome {_word(self.result)} {self.buy} history={self.history}>"


def plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def _failed(result: RunResult) -> bool:
    """A check failed, the run was cut short (ABORTED), or it could not
    test the sale (ERROR: the buyer code wrote into the event pipe, the
    final stock could not be read): never NOT PROVEN."""
    if result.passed:
        return False
    cut = result.aborted is not None or bool(result.run_error or result.store_error)
    return cut or bool(result.report.failures())


def _word(result: RunResult) -> str:
    """The verdict's word for one run."""
    if result.passed:
        return "PASSED"
    if result.aborted is not None:
        return "ABORTED"
    if result.broken or result.store_error:
        return "ERROR"
    return "FAILED" if result.report.failures() else "NOT PROVEN"


def _unproven(result: RunResult) -> bool:
    return not result.passed and not _failed(result)


def sale(
    buy: object,
    *,
    store: str | os.PathLike[str] | StoreSpec,
    buyers: int = 50,
    tickets: int | None = None,
    lock: str | Strategy = DEFAULT_STRATEGY,
    trials: int = 1,
    write_delay: float = DEFAULT_WRITE_DELAY,
    seed: int = 0,
    buyer_timeout: float | None = None,
    history_dir: str | os.PathLike[str] | None = None,
    stock_cmd: str | None = None,
) -> SaleOutcome:
    """Sell ``tickets`` to ``buyers`` buyer processes that each call ``buy``
    once, ``trials`` times, and judge every sale.

    ``buy``: a top-level function of an importable module (or its file),
    or ``"FILE.py:FUNC"`` / ``"MODULE:FUNC"``; ``store``: a JSON file's
    path, ``sqlite:…`` or ``redis://…``, restocked to ``tickets`` before
    each trial; ``lock``: the strategy behind ``store.lock``;
    ``write_delay``: what ``store.wait()`` waits at most (seconds);
    ``history_dir``: where the histories go (default: ``history/`` beside
    a file store, the current folder's for a server); ``tickets``: the
    stock each trial restocks to (default 10). ``stock_cmd``: a shell
    command that prints the stock, for a function that sells from a stock
    of its own (its own database): read before and after each trial, and
    restocked by you, not by ``tickets`` (give no ``tickets`` then).
    """
    from ..engine.buy import run_buy
    from ..engine.child.plan import Delays
    from ..engine.config import BuyConfig

    __tracebackhide__ = True  # pytest: a refusal shows at the test's line
    spec = buyer_spec(buy)
    folder = _folder(history_dir)
    elsewhere, tickets = _checked(seed, trials, write_delay, stock_cmd, tickets)
    results: list[RunResult] = []
    for trial in range(trials):
        config = BuyConfig(
            store=store,  # type: ignore[arg-type]  # a path or a URL is parsed when made
            strategy=lock,  # type: ignore[arg-type]  # a name is parsed when made
            buy=spec,
            buyers=buyers,
            tickets=tickets,
            seed=seed + trial,
            delays=Delays(0.0, write_delay),  # a user buyer does its own search
            buyer_timeout=buyer_timeout,
            history=None if folder is None else _history_file(folder, spec, trial),
            **elsewhere,  # type: ignore[arg-type]
        )
        results.append(run_buy(config))
        if _failed(results[-1]):
            break
    return SaleOutcome(spec, trials, tuple(results))


def _checked(
    seed: object, trials: object, write_delay: object, stock_cmd: str | None, tickets: int | None
) -> tuple[dict[str, object], int | None]:
    """The arguments refused in words (:class:`ConfigError`); where the
    stock is read, and the stock to restock to."""
    if type(seed) is not int or not -(2**63) <= seed < 2**63:
        raise ConfigError(f"seed must be a whole number (64 bits), got {seed!r}")
    if type(trials) is not int or not 1 <= trials <= MAX_TRIALS:
        raise ConfigError(f"trials must be a whole number from 1 to {MAX_TRIALS:,}, got {trials!r}")
    if isinstance(write_delay, bool) or not isinstance(write_delay, int | float):
        raise ConfigError(f"write_delay is in seconds, a number, got {write_delay!r}")
    if not 0 <= write_delay <= MAX_WRITE_DELAY:
        raise ConfigError(
            f"write_delay is in seconds (at most {MAX_WRITE_DELAY:g}; the command line's "
            f"--write-delay is in milliseconds), got {write_delay!r}"
        )
    if stock_cmd is None:
        return {}, DEFAULT_TICKETS if tickets is None else tickets
    if trials > 1:
        raise ConfigError(
            "stock_cmd reads a stock of your own, which only you can restock: run one trial "
            "per call, restocking in between"
        )
    if tickets is not None:
        raise ConfigError(
            "tickets restocks the store it hands your function; with stock_cmd the stock "
            "is your own: restock it yourself and give no tickets"
        )
    return {"stock": "command", "stock_cmd": stock_cmd}, None


def _folder(history_dir: str | os.PathLike[str] | None) -> Path | None:
    if history_dir is None:
        return None
    if not isinstance(history_dir, str | os.PathLike):
        raise ConfigError(f"history_dir must be a folder's path, got {history_dir!r}")
    folder = Path(history_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"history_dir {folder}: cannot be made ({exc.strerror}); give a writable folder"
        ) from None
    return folder


def _history_file(folder: Path, spec: str, trial: int) -> Path:
    """``take_ticket-20260101T120000.123456Z-4242-1.jsonl``: unique per
    process and moment, so that test workers never share one."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    name = safe_name(spec.rpartition(":")[2], 40)
    return folder / f"{name}-{stamp}.{time.time_ns() % 10**9:09d}Z-{os.getpid()}-{trial + 1}.jsonl"
