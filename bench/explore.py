"""`make bench` section: `tickets explore`.

1. `tickets explore --lock none` (finds and prints the two-buyer oversell)
   as a whole command, against `tickets --help` in the same run: median of
   seven interleaved runs each.
2. Every schedule of 3 buyers over 2 tickets on the JSON store, for each
   lock strategy, with the store's folder on tmpfs (/dev/shm) and on disk:
   schedules run, distinct, dropped part-way, schedules per second; and
   the schedules run against every interleaving (--no-reduction) of 2
   buyers over 1 ticket (3 over 2 have millions).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tickets.engine.explore.explorer import ExploreConfig
from tickets.engine.explore.sale import ExploredSale
from tickets.engine.explore.search import Budget, Outcome, exhaustive
from tickets.locking.strategies import get
from tickets.stores.spec import parse_db

STRATEGIES = ("none", "per-buyer", "process", "file", "flock")


def timed(cmd: list[str], cwd: str) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, capture_output=True, check=False, timeout=120)
    return time.perf_counter() - t


def whole_command(tickets_bin: str) -> None:
    print("\n13. explore: `tickets explore --lock none` against `tickets --help`, median of 7")
    explores, helps = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(7):
            explores.append(timed([tickets_bin, "explore", "--lock", "none"], tmp))
            helps.append(timed([tickets_bin, "--help"], tmp))
    e, h = statistics.median(explores), statistics.median(helps)
    print(
        f"   explore --lock none {e * 1000:.0f} ms (goal < 500 ms), --help {h * 1000:.0f} ms, "
        f"ratio {e / h:.2f} (goal <= 5)"
    )


def every_schedule(
    folder: str, strategy: str, reduction: bool = True, buyers: int = 3, tickets: int = 2
) -> Outcome:
    config = ExploreConfig(
        store=parse_db(os.path.join(folder, "t.json")),
        strategy=get(strategy),
        buyers=buyers,
        tickets=tickets,
    )
    sale = ExploredSale(config.setup())
    try:
        return exhaustive(
            sale, None, Budget(1_000_000, 600), reduction=reduction, stop_at_failure=False
        )
    finally:
        sale.close()


def schedules_per_second() -> None:
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    print("   every schedule of 3 buyers over 2 tickets, JSON store (best of 3):")
    print("   strategy     distinct   run  dropped   tmpfs sched/s   disk sched/s")
    for strategy in STRATEGIES:
        rates = []
        best: Outcome | None = None
        for where in (shm, None):
            best = None
            for _ in range(3):
                with tempfile.TemporaryDirectory(dir=where) as tmp:
                    out = every_schedule(tmp, strategy)
                if best is None or out.seconds < best.seconds:
                    best = out
            assert best is not None
            rates.append(best.schedules / best.seconds)
        assert best is not None
        print(
            f"   {strategy:<10} {best.distinct:>9,} {best.schedules:>6,} {best.pruned:>8,}"
            f" {rates[0]:>15,.0f} {rates[1]:>14,.0f}"
        )
    print("   the reduction, 2 buyers over 1 ticket (3 x 2 has millions of interleavings):")
    for strategy in ("none", "flock"):
        with tempfile.TemporaryDirectory(dir=shm) as tmp:
            reduced = every_schedule(tmp, strategy, buyers=2, tickets=1)
            every = every_schedule(tmp, strategy, reduction=False, buyers=2, tickets=1)
        print(
            f"   {strategy:<10} {reduced.schedules:,} run (+{reduced.pruned:,} dropped) of "
            f"{every.schedules:,} interleavings: {reduced.schedules / every.schedules:.3f}; "
            f"{every.distinct:,} classes among them"
        )


def report() -> None:
    whole_command(str(Path(sys.executable).with_name("tickets")))
    schedules_per_second()


if __name__ == "__main__":
    report()
