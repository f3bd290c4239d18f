"""One sale judged from several histories: ``--keep-stock`` runs on one
store (:func:`check_histories`), and a named sale across hosts, every
host's times put on the server's clock (:func:`check_sale`)."""

from __future__ import annotations

import copy
from array import array
from collections.abc import Callable
from dataclasses import replace

from ..errors import UsageProblem
from .history import History, HistoryError
from .operations import Operations
from .verdict import Check, Report, aborted_of, check_history, evaluate, run_error_of


def _first(histories: list[History], said: Callable[[History], str | None]) -> str | None:
    """A sale of several runs is cut short (or untested) if any of them was:
    the first, by its file."""
    return next((f"{h.path}: {why}" for h in histories if (why := said(h)) is not None), None)


def one_kind_of_ticket(histories: list[History]) -> None:
    """A sale's tickets are all seats, or all ids (or seats beside ids when
    every run said --ticket-ids): refuse runs that mix them otherwise."""
    if all(h.ops.ids for h in histories):
        return
    seats = next((h for h in histories if h.ops.numeric), None)
    ids = next((h for h in histories if h.ops.tickets), None)
    if seats is not None and ids is not None:
        raise HistoryError(
            ids.path,
            f"sold ticket ids where {seats.path} sold seats; "
            "one sale's tickets are all seats or, with "
            "--ticket-ids, all ids",
        )


def check_histories(histories: list[History]) -> Report:
    """One sale across several invocations on one store (``--keep-stock`` runs).

    The stock before the sale is the one the earliest run read at its start
    (before any buyer of any run); the stock after is the one the last run to
    end read once all of its buyers, and so everyone's, were done.
    """
    if not isinstance(histories, list | tuple) or not histories:
        raise UsageProblem(f"check a non-empty list of Histories as one sale, not {histories!r}")
    if not all(isinstance(h, History) for h in histories):
        raise UsageProblem("check Histories (read_history(path) reads one) as one sale")
    if len(histories) == 1:
        return check_history(histories[0])
    stores = {h.run["store"] for h in histories}
    if len(stores) > 1:
        raise HistoryError(
            histories[0].path, "these histories are of different stores; check them one at a time"
        )
    ordered = sorted(histories, key=lambda h: float(h.run["t"]))
    ids = [h.run["run_id"] for h in ordered]
    if len(set(ids)) != len(ids):
        raise HistoryError(ordered[0].path, "the same history was given twice")
    for h in ordered[1:]:
        if h.run["restocked"]:
            raise HistoryError(
                h.path,
                "restocked the store during the sale; one sale across runs needs --keep-stock runs",
            )
    one_kind_of_ticket(ordered)
    unfinished = [h for h in ordered if h.end is None]
    last = max(ordered, key=lambda h: float(h.end["t"] if h.end else 0.0))
    problem = next((h.end.get("store_error") for h in ordered if h.end), None)
    return evaluate(
        Operations.merge([h.ops for h in ordered]),
        ordered[0].initial,
        None if unfinished else last.remaining,
        store_problem=problem,
        unfinished=next((f"{h.path}: {h.unfinished}" for h in unfinished), None),
        aborted=_first(ordered, aborted_of),
        run_error=_first(ordered, run_error_of),
    )


#: The most a host's clock may be uncertain by, in a history (seconds).
MAX_UNCERTAINTY = 60.0


def check_sale(
    histories: list[History], final: int | None = None, final_problem: str | None = None
) -> Report:
    """A named sale across hosts (see tickets.named_sale.registry): every host's times put
    on the server's clock, and every operation widened by its host's
    uncertainty, so that two operations are ordered only when their gap
    exceeds what the clocks can tell. The stock before is the one every
    host read before the start; after, ``final``, read once every host had
    ended (else the one the last host to end read)."""
    tables = []
    certain = []  # narrowed, for the overlaps that are certain (contention)
    for h in histories:
        clock = h.run.get("clock")
        offset = clock.get("offset") if isinstance(clock, dict) else None
        spread = clock.get("uncertainty") if isinstance(clock, dict) else None
        if not (
            type(offset) is float
            and abs(offset) < 1e12
            and type(spread) is float
            and 0 <= spread <= MAX_UNCERTAINTY
        ):
            raise HistoryError(h.path, "run line has no valid clock offset for a named sale")
        tables.append((h, on_server_clock(h.ops, offset, spread), offset + spread))
        certain.append(on_server_clock(h.ops, offset, -spread))
    tables.sort(key=lambda t: t[1].t_run)
    one_kind_of_ticket([h for h, _, _ in tables])
    initials = {h.initial for h, _, _ in tables}
    if len(initials) > 1:
        raise HistoryError(tables[0][0].path, "its hosts began with different stocks")
    unfinished = [h for h, _, _ in tables if h.end is None]
    last = max(tables, key=lambda t: float(t[0].end["t"] if t[0].end else 0.0) + t[2])[0]
    problem = next((h.end.get("store_error") for h, _, _ in tables if h.end), None)
    remaining = last.remaining if final is None else final
    report = evaluate(
        Operations.merge([ops for _, ops, _ in tables]),
        tables[0][0].initial,
        None if unfinished or final_problem else remaining,
        store_problem=final_problem or problem,
        unfinished=next((f"{h.path}: {h.unfinished}" for h in unfinished), None),
        aborted=_first([h for h, _, _ in tables], aborted_of),
        run_error=_first([h for h, _, _ in tables], run_error_of),
        spans=Operations.merge(certain),
    )
    widest = max(float(h.run["clock"]["uncertainty"]) for h, _, _ in tables)
    said = (
        f"; {len(tables)} hosts, on the server's clock, each known to within "
        f"{widest * 1000:.3f} ms: operations are ordered only when further apart"
    )
    checks = tuple(
        Check(c.name, c.passed, c.detail + said) if c.name == "real-time order" else c
        for c in report.checks
    )
    return replace(report, checks=checks)


def on_server_clock(ops: Operations, offset: float, spread: float) -> Operations:
    """The table with its times moved to the server's clock, and every
    interval widened by ``spread`` each way (narrowed, for a negative
    ``spread``: what is certain to have overlapped)."""
    moved = copy.copy(ops)  # what it counted, its kinds and seats: as they were
    moved.t_run = ops.t_run + offset - spread
    moved.invoked = array("d", (t + offset - spread for t in ops.invoked))
    moved.started = array("d", (t + offset - spread for t in ops.started))  # INF stays
    moved.completed = array("d", (t + offset + spread for t in ops.completed))
    moved.unknown_at = {i: t + offset + spread for i, t in ops.unknown_at.items()}
    moved.latest = ops.latest + offset + spread
    return moved
