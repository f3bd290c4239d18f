"""tickets: a flash-sale simulator and oversell checker.

The library API, for a script or a test that runs a sale and checks it
without the command line::

    import tickets

    store = tickets.parse_db("tickets.json")  # or "sqlite:sale.db", "redis://…"
    result = tickets.run_buy(tickets.BuyConfig(store=store, buyers=20, tickets=5))
    report = tickets.check_history(tickets.read_history(result.history))
    assert report.passed, report.failures()

- run a sale: :func:`run_buy` with a :class:`BuyConfig`, :func:`run_queue`
  with a :class:`QueueConfig` (:class:`Delays` for their timing); each
  returns a :class:`RunResult` whose ``report`` is the verdict;
- check a history: :func:`read_history`, then :func:`check_history` (one
  run) or :func:`check_histories` (several runs judged as one sale), each a
  :class:`Report`;
- open a store: :func:`parse_db` reads ``--db``'s words (a path,
  ``sqlite:…``, ``redis://…``) into the spec a config takes, :func:`open_db`
  opens it as a :class:`Store`; :data:`STRATEGIES` are the ``--lock``
  strategies;
- gate your own purchase code (a test's assertion): :func:`sale` runs real
  sales of your function, :func:`explore` every interleaving of a few
  buyers; each outcome's ``assert_passed()`` raises with the verdict (the
  pytest fixtures ``tickets_sale`` and ``tickets_explore`` wrap them);
- errors: everything refused derives from :class:`TicketsError`, whose
  ``exit_code`` is the command line's (:class:`UsageProblem` is exit 2).

The core imports neither click nor rich, and names load on first use, so
``import tickets`` stays light. The package: ``engine/`` runs a sale (its
``child/`` is what runs in the buyer, producer and clerk processes),
``check/`` is the checker, ``locking/`` the strategies and locks,
``stores/`` the stores, ``named_sale/`` a sale across hosts, ``render/``
what the command line shows, ``cli/`` the command line.
"""

from __future__ import annotations

import importlib

from .constants import TYPE_CHECKING

if TYPE_CHECKING:  # what the names below load on first use, for type checkers
    from .check.history import History, HistoryError
    from .check.history import read as read_history
    from .check.sale import check_histories
    from .check.verdict import Report, check_history
    from .engine.buy import run_buy
    from .engine.child.plan import Delays
    from .engine.config import BuyConfig, QueueConfig
    from .engine.queue import run_queue
    from .engine.rows import RunResult
    from .errors import ConfigError, TicketsError, UsageProblem
    from .gate.explore_gate import ExploreOutcome, explore
    from .gate.sale_gate import SaleOutcome, sale
    from .locking.locks import LockTimeout
    from .locking.strategies import STRATEGIES
    from .stores import open_db
    from .stores.base import Store, StoreError
    from .stores.spec import parse_db

__version__ = "0.1.0"

#: Each public name: the module it lives in (and its name there, if another).
_EXPORTS: dict[str, tuple[str, str]] = {
    "BuyConfig": ("engine.config", "BuyConfig"),
    "QueueConfig": ("engine.config", "QueueConfig"),
    "Delays": ("engine.child.plan", "Delays"),
    "run_buy": ("engine.buy", "run_buy"),
    "run_queue": ("engine.queue", "run_queue"),
    "RunResult": ("engine.rows", "RunResult"),
    "read_history": ("check.history", "read"),
    "History": ("check.history", "History"),
    "check_history": ("check.verdict", "check_history"),
    "check_histories": ("check.sale", "check_histories"),
    "Report": ("check.verdict", "Report"),
    "open_db": ("stores", "open_db"),
    "parse_db": ("stores.spec", "parse_db"),
    "Store": ("stores.base", "Store"),
    "STRATEGIES": ("locking.strategies", "STRATEGIES"),
    "TicketsError": ("errors", "TicketsError"),
    "UsageProblem": ("errors", "UsageProblem"),
    "ConfigError": ("errors", "ConfigError"),
    "StoreError": ("stores.base", "StoreError"),
    "HistoryError": ("check.history", "HistoryError"),
    "LockTimeout": ("locking.locks", "LockTimeout"),
    "sale": ("gate.sale_gate", "sale"),
    "explore": ("gate.explore_gate", "explore"),
    "SaleOutcome": ("gate.sale_gate", "SaleOutcome"),
    "ExploreOutcome": ("gate.explore_gate", "ExploreOutcome"),
}

__all__ = [
    "BuyConfig",
    "ConfigError",
    "Delays",
    "ExploreOutcome",
    "History",
    "HistoryError",
    "LockTimeout",
    "QueueConfig",
    "Report",
    "RunResult",
    "STRATEGIES",
    "SaleOutcome",
    "Store",
    "StoreError",
    "TicketsError",
    "UsageProblem",
    "check_histories",
    "check_history",
    "explore",
    "open_db",
    "parse_db",
    "read_history",
    "run_buy",
    "run_queue",
    "sale",
]


def __getattr__(name: str) -> object:
    try:
        module, attribute = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'tickets' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f".{module}", __name__), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
