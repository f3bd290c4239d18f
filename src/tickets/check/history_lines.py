"""A history's run and end lines: what they must say, checked in words.

The run line opens a history (the sale's store, strategy, stock, who took
part, the format version); the end line closes it (the stock after, why it
was stopped). :func:`check_run_line` and :func:`check_end_line` raise
:class:`tickets.check.operations.Malformed` at the first rule one breaks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeGuard

from ..constants import (
    MAX_BUYERS,
    MAX_COUNT,
    MAX_ORDERS,
    MAX_RETRIES,
    MAX_WORKER_PRODUCERS,
    STOCK_SOURCES,
    STORE_KINDS,
    STRATEGY_NAMES,
    UNREAD_STOCK,
)
from ..locking.strategies import get, strategies_for
from .operations import (
    KINDS_BEFORE_3,
    MODES,
    READABLE_VERSIONS,
    Malformed,
    Operations,
    is_time,
    printable,
)

if TYPE_CHECKING:
    from .events import EndLine, RunLine


def _is_int(value: object, low: int, high: int) -> TypeGuard[int]:
    return type(value) is int and low <= value <= high


def check_run_line(ev: RunLine) -> tuple[int, str]:
    """The run line's fields; returns the number of operations and their noun.

    ``ev`` was read from a file: the type says what a run line holds, and
    this checks that this one does, field by field."""
    version = ev.get("version")
    if type(version) is not int or version not in READABLE_VERSIONS:  # True and 1.0 are == 1
        raise Malformed(
            f"has format version {printable(repr(version))[:40]}, not one this "
            f"tickets reads ({', '.join(map(str, READABLE_VERSIONS))})"
        )
    if "ticket_ids" in ev and (version < 2 or type(ev["ticket_ids"]) is not bool):
        raise Malformed(f"run line has ticket_ids {printable(repr(ev['ticket_ids']))[:40]}")
    mode, strategy = ev.get("mode"), ev.get("strategy")
    if mode not in MODES:
        raise Malformed(f"run line has mode {mode!r}, not one of {', '.join(MODES)}")
    if strategy not in STRATEGY_NAMES:
        names = ", ".join(STRATEGY_NAMES)
        raise Malformed(f"run line has strategy {strategy!r}, not one of {names}")
    stock = ev.get("stock", "store")
    if stock not in STOCK_SOURCES:
        raise Malformed(f"run line has stock {stock!r}, not one of {', '.join(STOCK_SOURCES)}")
    if stock == UNREAD_STOCK:  # nothing could read the stock: it is unknown, and said so
        if ev.get("initial") is not None:
            raise Malformed("run line has an initial stock but says none was read")
    elif not _is_int(ev.get("initial"), 0, MAX_COUNT):
        raise Malformed(f"run line has no valid initial stock (0..{MAX_COUNT:,})")
    if not is_time(ev.get("t")):
        raise Malformed("run line has no valid time")
    for key in ("run_id", "store"):
        if type(ev.get(key)) is not str:
            raise Malformed(f"run line has no {key}")
    if type(ev.get("restocked")) is not bool:
        raise Malformed("run line does not say whether it restocked")
    kind = ev.get("store_kind", "json")  # histories from before the real stores are JSON's
    if kind not in STORE_KINDS:
        raise Malformed(f"run line has store kind {kind!r}, not one of {', '.join(STORE_KINDS)}")
    if version < 3 and kind not in KINDS_BEFORE_3:
        raise Malformed(f"run line has store kind {kind!r}, which format version {version} lacks")
    if get(strategy) not in strategies_for(kind):
        raise Malformed(f"run line has strategy {strategy!r}, which a {kind} store does not have")
    if "retries" in ev and not (get(strategy).retried and _is_int(ev["retries"], 0, MAX_RETRIES)):
        raise Malformed(f"run line has retries {printable(repr(ev['retries']))[:40]}")
    for key in ("seed", "pid", "batch", "clerks", "queue_size"):
        value = ev.get(key)
        if key in ev and not _is_int(value, 0, MAX_COUNT):
            raise Malformed(f"run line has {key} {value!r}")
    if mode != "queue":
        if not _is_int(ev.get("buyers"), 1, MAX_BUYERS):
            raise Malformed(f"run line has no valid number of buyers (1..{MAX_BUYERS:,})")
        return ev["buyers"], "buyer"
    producers, orders = ev.get("producers"), ev.get("orders")
    if not (
        _is_int(producers, 1, MAX_WORKER_PRODUCERS)
        and _is_int(orders, 1, MAX_ORDERS)
        and producers * orders <= MAX_ORDERS
    ):
        raise Malformed(f"run line has no valid producers and orders (at most {MAX_ORDERS:,})")
    return producers * orders, "order"


def check_end_line(ev: EndLine, ops: Operations, stock_known: bool = True) -> EndLine:
    """The end line, checked field by field (it was read from a file), its
    texts made printable."""
    remaining = ev.get("remaining")
    if remaining is not None and not _is_int(remaining, 0, MAX_COUNT):
        raise Malformed(f"end line has remaining {remaining!r}, not a count")
    if remaining is not None and not stock_known:
        raise Malformed("end line has a final stock but the run line says none was read")
    t = ev.get("t")
    if not (is_time(t) and t >= ops.latest):
        raise Malformed(f"end line has time {t!r}, not after every event of the run")
    store_error, aborted, run_error = ev.get("store_error"), ev.get("aborted"), ev.get("run_error")
    texts = (("store_error", store_error), ("aborted", aborted), ("run_error", run_error))
    for key, value in texts:
        if value is not None and type(value) is not str:
            raise Malformed(f"end line has {key} {value!r}, not text")
    notes = ev.get("notes", [])
    if type(notes) is not list or not all(type(n) is str for n in notes):
        raise Malformed("end line has notes that are not a list of text")
    return {
        **ev,
        "store_error": _shown(store_error),
        "aborted": _shown(aborted),
        "run_error": _shown(run_error),
        "notes": [printable(n) for n in notes],
    }


def _shown(text: str | None) -> str | None:
    return None if text is None else printable(text)
