"""tickets: a flash-sale simulator and oversell checker.

The core (store, locks, child, run, history, checks) imports neither click
nor rich; names are loaded on first use so ``import tickets`` stays light.
``ls`` shows the design: ``child/`` runs in the buyer, producer and clerk
processes, ``run/`` is the parent's side of a run, ``output/`` draws the
results, ``cli/`` is the command line.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "StoreError": "store",
    "load": "store",
    "save": "store",
    "STRATEGIES": "locks",
    "Strategy": "locks",
    "LockTimeout": "locks",
    "Delays": "child.plan",
    "BuyConfig": "config",
    "QueueConfig": "config",
    "ConfigError": "config",
    "RunResult": "run.ledger",
    "run_buy": "run.buy",
    "run_queue": "run.queue",
    "History": "history",
    "HistoryError": "history",
    "read_history": "history",
    "Report": "checks",
    "check_history": "checks",
    "check_histories": "sale_checks",
}
_RENAMED = {"read_history": "read"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'tickets' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f".{module}", __name__), _RENAMED.get(name, name))
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
