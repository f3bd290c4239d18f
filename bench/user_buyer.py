"""`make bench` section 8: the user's own buyer against the built-in one.

A 400-buyer --no-delay sale with `--lock flock`, once with the built-in
purchase and once with `examples/booking.py:take_ticket` (the same lock,
read, decrement and write, called through the store handle), interleaved,
median of five each.
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

EXAMPLE = str(Path(__file__).resolve().parent.parent / "examples" / "booking.py")


def sale(folder: Path, buyers: int, buy: str | None) -> float:
    result = run_buy(
        BuyConfig(
            store=parse_db(str(folder / "t.json")),
            buyers=buyers,
            tickets=buyers,
            strategy=STRATEGIES["flock"],
            delays=Delays.none(),
            buy=buy,
            history=folder / f"h-{time.monotonic_ns()}.jsonl",
        )
    )
    assert result.passed and result.report.sold == buyers, result.report
    return result.report.sold / result.duration_s


def report(buyers: int, rounds: int = 5) -> None:
    print(
        f"\n8. your own buyer (--buy) against the built-in purchase, {buyers} buyers, "
        f"--no-delay, flock, median of {rounds} interleaved"
    )
    built_in, user = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(rounds):
            built_in.append(sale(Path(tmp), buyers, None))
            user.append(sale(Path(tmp), buyers, f"{EXAMPLE}:take_ticket"))
    b, u = statistics.median(built_in), statistics.median(user)
    print(
        f"   built-in {b:,.0f}/s   --buy take_ticket {u:,.0f}/s   ratio {u / b:.2f} (target >= 0.9)"
    )


if __name__ == "__main__":
    report(400)
