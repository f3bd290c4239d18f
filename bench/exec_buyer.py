"""`make bench` section 9: command buyers (--exec), bounded by process start.

A 400-buyer sale of 400 tickets, every buyer one run of a trivial command
(`exit 22`: sold out, so the commands need no stock to agree on; and
`echo` of a distinct seat), against the built-in purchase (`--lock flock`,
--no-delay) in the same session: purchases (outcomes) per second, median
of five interleaved.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from tickets.engine.buy import run_buy
from tickets.engine.child.plan import Delays
from tickets.engine.config import BuyConfig
from tickets.locking.strategies import STRATEGIES
from tickets.stores.spec import parse_db


def built_in(folder: Path, buyers: int) -> float:
    result = run_buy(
        BuyConfig(
            store=parse_db(str(folder / "t.json")),
            buyers=buyers,
            tickets=buyers,
            strategy=STRATEGIES["flock"],
            delays=Delays.none(),
            history=folder / f"h-{time.monotonic_ns()}.jsonl",
        )
    )
    assert result.passed and result.report.sold == buyers, result.report
    return buyers / result.duration_s


def command(folder: Path, buyers: int, text: str) -> float:
    result = run_buy(
        BuyConfig(
            store=parse_db(str(folder / "t.json")),
            buyers=buyers,
            strategy=STRATEGIES["none"],
            command=text,
            stock_cmd=f"echo {buyers}",
            tickets=None,
            delays=Delays.none(),
            history=folder / f"h-{time.monotonic_ns()}.jsonl",
        )
    )
    assert result.report.unknown == 0 and result.report.sold + result.report.failed == buyers
    return buyers / result.duration_s


def report(buyers: int, rounds: int = 5) -> None:
    print(
        f"\n9. command buyers (--exec) against the built-in purchase, {buyers} buyers, "
        f"outcomes per second, median of {rounds} interleaved"
    )
    base, sold_out, seats = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(rounds):
            base.append(built_in(Path(tmp), buyers))
            sold_out.append(command(Path(tmp), buyers, "exit 22"))
            seats.append(command(Path(tmp), buyers, "echo $((TICKETS_BUYERS - TICKETS_BUYER))"))
    b, s, e = (statistics.median(x) for x in (base, sold_out, seats))
    print(
        f"   built-in {b:,.0f}/s   --exec 'exit 22' {s:,.0f}/s ({s / b:.2f})   "
        f"--exec 'echo N' {e:,.0f}/s ({e / b:.2f})"
    )


if __name__ == "__main__":
    report(400)
