"""``tickets.explore``: every interleaving of a few buyers of your function, for a test to assert.

The same exploration as ``tickets explore --buy …`` (see
:mod:`tickets.engine.explore`), run in a fresh interpreter
(:mod:`tickets.gate.explore_child`), never in a fork of the caller. A
failing schedule is shrunk and saved (its history and schedule file in
``history_dir``); ``assert_passed()`` raises with its steps, numbered as
the command prints them. An exploration that proved nothing (one buyer,
no stock, a budget reached, nothing overlapped) is NOT PROVEN and fails
``assert_passed()`` too.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..constants import DEFAULT_STORE, DEFAULT_STRATEGY, STRATEGY_NAMES
from ..errors import ConfigError, StoreError
from .callables import replayable_spec
from .explore_child import deadline_of
from .outcome import GateOutcome

if TYPE_CHECKING:
    from ..check.verdict import Report
    from ..engine.explore.explorer import Exploration, ExploreConfig
    from ..locking.strategies import Strategy
    from ..stores.spec import StoreSpec

#: What the fresh interpreter may take beyond the exploration's own deadline.
START_GRACE = 30.0
#: The width the steps are drawn at in a message (a table takes only what it needs).
MESSAGE_WIDTH = 120


@dataclass(frozen=True, repr=False)
class ExploreOutcome(GateOutcome):
    """What :func:`explore` found."""

    #: the buyer as the exploration loaded it (``MODULE:FUNC`` or ``FILE.py:FUNC``)
    buy: str
    #: the exploration itself: its config, search outcome and counterexample
    exploration: Exploration

    def verdict_passed(self) -> bool:
        """``passed``, without counting as having asked."""
        return self.exploration.passed

    @property
    def unproven(self) -> bool:
        """Nothing failed, but the exploration proved nothing: not a pass."""
        return self.exploration.unproven is not None and self.exploration.counterexample is None

    @property
    def reason(self) -> str | None:
        """Why it proved nothing, if so."""
        return self.exploration.unproven if self.unproven else None

    @property
    def report(self) -> Report | None:
        """The failing schedule's verdict (``double_sold``, the checks), or None."""
        found = self.exploration.counterexample
        return None if found is None else found.report

    @property
    def history(self) -> Path | None:
        """The failing schedule's sale as a history (``tickets check`` reads it)."""
        return self.exploration.history

    @property
    def schedule(self) -> Path | None:
        """The failing schedule's file (``tickets explore --replay`` runs it)."""
        return self.exploration.schedule_file

    @property
    def steps(self) -> list[tuple[int, str, str]]:
        """The failing schedule's steps: (buyer, switch point, what it did)."""
        found = self.exploration.counterexample
        if found is None:
            return []
        return [(e.step.buyer, e.step.kind, e.said) for e in found.ran]

    def message(self) -> str:
        """The verdict first, then the steps and files as ``tickets explore`` prints them."""
        from io import StringIO

        from rich.console import Console

        from ..render.explore_views import exploration_view

        out = StringIO()
        console = Console(file=out, width=MESSAGE_WIDTH, color_system=None, highlight=False)
        console.print(exploration_view(self.exploration), soft_wrap=True)  # paths whole
        lines = [line.rstrip() for line in out.getvalue().rstrip().splitlines()]
        return "\n".join([lines[-1], *lines[:-1]])  # the verdict, drawn last, leads

    def verdict_failed(self) -> bool:
        return self.exploration.counterexample is not None

    def __repr__(self) -> str:
        verdict = "PASSED" if self.passed else ("NOT PROVEN" if self.unproven else "FAILED")
        return f"<ExploreOutcome {verdict} {self.buy} history={self.history}>"


def explore(
    buy: object,
    *,
    store: str | os.PathLike[str] | StoreSpec = DEFAULT_STORE,
    buyers: int = 2,
    tickets: int = 1,
    lock: str | Strategy = DEFAULT_STRATEGY,
    preemptions: int | None = None,
    sample: int | None = None,
    seed: int = 0,
    depth: int = 2,
    retries: int = 2,
    max_schedules: int = 100_000,
    time_limit: float = 60.0,
    max_steps: int = 200,
    fencing: bool = False,
    history_dir: str | os.PathLike[str] | None = None,
) -> ExploreOutcome:
    """Run every distinct schedule of ``buyers`` buyers calling ``buy``
    (or ``sample`` of them by PCT) and judge each, as ``tickets explore``
    does: on a scratch store of ``store``'s kind (the store itself is not
    touched), each schedule from ``tickets``. A failing schedule's history
    and schedule file go to ``history_dir`` (default: ``history/`` beside a
    file store, the current folder's for a server)."""
    from ..engine.buyer_check import check
    from ..engine.explore.explorer import ExploreConfig

    __tracebackhide__ = True  # pytest: a refusal shows at the test's line
    spec = replayable_spec(buy)
    config = ExploreConfig(
        store=_store_spec(store),
        strategy=_strategy(lock),
        buy=spec,
        buyers=_count("buyers", buyers, 1, 8),
        tickets=_count("tickets", tickets, 0, 1000),
        preemptions=None if preemptions is None else _count("preemptions", preemptions, 0, 100),
        sample=None if sample is None else _count("sample", sample, 1, 10_000_000),
        seed=_count("seed", seed, -(2**63), 2**63 - 1),
        depth=_count("depth", depth, 1, 10),
        retries=_count("retries", retries, 0, 100),
        max_schedules=_count("max_schedules", max_schedules, 1, 100_000_000),
        seconds=_seconds(time_limit),
        max_steps=_count("max_steps", max_steps, 1, 100_000),
        fencing=_fencing(fencing, lock),
        folder=_history_folder(history_dir),
    )
    if config.strategy not in _usable(config.store.kind):
        raise ConfigError(
            f"lock {config.strategy.name} does not apply to a {config.store.kind} store"
        )
    check(spec)  # what is wrong with the code, in one line, before anything starts
    return ExploreOutcome(spec, _run_fresh(config))


def _run_fresh(config: ExploreConfig) -> Exploration:
    """The exploration in a fresh interpreter; what it found, or what it raised."""
    limit = deadline_of(config.seconds) + START_GRACE
    from ..engine.child.own_python import own_env, own_python

    argv = own_python("tickets.gate.explore_child", str(os.getpid()))
    env = own_env()
    with tempfile.TemporaryFile() as answer, tempfile.TemporaryFile() as errors:
        try:
            done = subprocess.run(
                [*argv, str(answer.fileno())],
                input=pickle.dumps(config),
                stdout=subprocess.DEVNULL,
                stderr=errors,
                pass_fds=(answer.fileno(),),
                env=env,
                timeout=limit,
                start_new_session=True,  # a terminal's Ctrl-C is the caller's to pass on
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise StoreError(
                "tickets explore", f"its process did not answer within {limit:g}s; stopped"
            ) from None
        except OSError as exc:
            raise StoreError(
                "tickets explore", f"could not start its process ({exc.strerror or exc})"
            ) from None
        answer.seek(0)
        data = answer.read()
        errors.seek(0)
        said = errors.read().decode(errors="replace").strip().splitlines()
    if not data:
        last = f": {said[-1]}" if said else ""
        raise StoreError(
            "tickets explore",
            f"its process ended without an answer (exit code {done.returncode}){last}",
        )
    kind, value = pickle.loads(data)  # our own child's answer
    if kind == "error":
        raise value
    return value  # type: ignore[no-any-return]


def _count(name: str, value: object, low: int, high: int) -> int:
    if type(value) is not int:
        raise ConfigError(f"{name} must be a whole number, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"{name} must be from {low} to {high:,}, got {value}")
    return value


def _seconds(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.1 <= value <= 86_400:
        raise ConfigError(f"time_limit must be from 0.1 to 86,400 seconds, got {value!r}")
    return float(value)


def _store_spec(store: object) -> StoreSpec:
    from ..stores.spec import BadStoreURL, StoreSpec, parse_db

    if isinstance(store, StoreSpec):
        return store
    if not isinstance(store, str | os.PathLike):
        raise ConfigError(f"store must be a path, a store URL or a StoreSpec, got {store!r}")
    try:
        return parse_db(store)
    except BadStoreURL as exc:
        raise ConfigError(str(exc)) from None


def _strategy(lock: object) -> Strategy:
    from ..locking.strategies import Strategy, get

    if isinstance(lock, Strategy):
        return lock
    try:
        return get(str(lock))
    except ValueError:
        raise ConfigError(
            f"unknown lock {lock!r}; choose from {', '.join(STRATEGY_NAMES)}"
        ) from None


def _usable(kind: str) -> tuple[Strategy, ...]:
    from ..locking.strategies import strategies_for

    return tuple(strategies_for(kind))


def _fencing(fencing: object, lock: object) -> bool:
    if not isinstance(fencing, bool):
        raise ConfigError(f"fencing must be True or False, got {fencing!r}")
    if fencing and not _strategy(lock).leases:
        raise ConfigError("fencing is for the lease lock (a Redis store)")
    return fencing


def _history_folder(history_dir: object) -> Path | None:
    if history_dir is None:
        return None
    if not isinstance(history_dir, str | os.PathLike):
        raise ConfigError(f"history_dir must be a folder's path, got {history_dir!r}")
    return Path(history_dir)
