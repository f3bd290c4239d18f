"""The verdict's words, shared by every view of it (the table on a
terminal, the JUnit report): one place says what a PASSED leaves out and
whom a FAILED blames. Imports neither rich nor click.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..engine.config import BuyConfig

if TYPE_CHECKING:
    from ..check.verdict import Report
    from ..engine.rows import RunResult
    from ..locking.strategies import Strategy


def took_no_part(report: Report) -> str:
    """``; 3 left unsold: 43 turned away (busy or refused)``: a green is
    about those who took part, and says who did not and what was not sold."""
    parts = []
    if report.refused:
        parts.append(f"{report.refused:,} turned away (busy or refused)")
    if report.unknown:
        parts.append(f"{report.unknown:,} of unknown outcome")
    if report.remaining:
        why = " and ".join(parts) or "every buyer who came was served (more tickets than buyers)"
        return f"; {report.remaining:,} left unsold: {why}"
    return "".join(f"; {p}" if i == 0 else f", {p}" for i, p in enumerate(parts))


def passed_line(report: Report) -> str:
    """``PASSED: 7 sold from a stock of 10, nothing oversold; 3 left unsold: …``"""
    initial = "?" if report.initial is None else f"{report.initial:,}"
    text = f"PASSED: {report.sold:,} sold from a stock of {initial}, nothing oversold"
    return text + took_no_part(report)


def failed_line(report: Report, strategy: Strategy | None) -> str:
    """The first line of a FAILED verdict. An oversell under a strategy
    without exclusion is the expected demonstration; ``strategy`` is None
    when the buyer is the user's own code (then the bug is theirs, said
    plainly) or nobody's strategy is to blame."""
    if report.oversold and strategy is not None and not strategy.excludes:
        return (
            f"FAILED, as expected with --lock {strategy.name} (no exclusion): "
            f"{report.initial:,} tickets were sold {report.sold:,} times, "
            f"oversold by {report.oversold:,}"
        )
    if report.oversold and strategy is not None and strategy.leases:
        return (
            f"FAILED: oversold by {report.oversold:,}: a lease is not a mutex (a holder "
            "that outlived its lease still wrote; --fencing refuses it)"
        )
    if report.oversold:
        return f"FAILED: oversold by {report.oversold:,}"
    failures = report.failures()
    if [c.name for c in failures] == ["no errors"]:  # "FAILED: no errors" read as a pass
        return f"FAILED: {failures[0].detail}"
    return "FAILED: " + ", ".join(c.name for c in failures)


def blamed_strategy(result: RunResult) -> Strategy | None:
    """The strategy a run's verdict speaks of: None when the buyer is the
    user's own code (``--buy``: its bug is its own, whatever lock it was
    handed; ``--exec``: the command locks as it will)."""
    config = result.config
    if isinstance(config, BuyConfig) and (config.command or config.buy) is not None:
        return None
    return config.strategy
