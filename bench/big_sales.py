"""`make bench` section 11: big sales, buyers multiplexed on worker processes.

a. 100,000 buyers for 100,000 tickets, --no-delay --workers 2, `flock` on
   the JSON store, against the bare loop doing the same lock, read and
   write in one process (section 1's), in the same session: purchases/s.
b. 1,000,000 buyers for 10,000 tickets, --no-delay, on a worker per core:
   wall time against as many processes doing the same 1,000,000 unlocked
   searches (store reads) and nothing else; the peak memory of the process
   that ran the sale; and `tickets check` of its history (seconds, and
   bytes per event of the compact history).
c. 100,000 buyers for 1,000 tickets with the default delays: wall time
   against 2 x the longest single buyer's delays (24 ms) x the sequential
   rounds the stock forces (1,000 sales, one at a time under the lock).

BENCH_BIG_SCALE (default 1) divides every size, for a quick look.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCALE = int(os.environ.get("BENCH_BIG_SCALE", "1"))

SALE = """
import json, resource, sys, time
from pathlib import Path
from tickets.engine.child.plan import Delays
from tickets.engine.config import BuyConfig
from tickets.engine.buy import run_buy
args = json.loads(sys.argv[1])
delays = Delays() if args.pop("delays") else Delays.none()
args["history"] = Path(args["history"])
result = run_buy(BuyConfig(delays=delays, **args))
print(json.dumps({"duration_s": result.duration_s, "sold": result.report.sold,
                  "passed": result.passed, "workers": result.config.workers,
                  "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def sale(**args: object) -> dict[str, object]:
    """One sale in a fresh process (its peak memory is the sale's own)."""
    done = subprocess.run(
        [sys.executable, "-c", SALE, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=3600,
        check=True,
    )
    out: dict[str, object] = json.loads(done.stdout)
    return out


def searches(path: str, n: int) -> None:
    from tickets.stores import json_file as st

    p = Path(path)
    for _ in range(n):
        st.load(p)


def bare_searches(path: Path, total: int, workers: int) -> float:
    """Wall time of ``workers`` processes doing ``total`` store reads between them."""
    ctx = multiprocessing.get_context("fork")
    procs = [
        ctx.Process(target=searches, args=(str(path), total // workers)) for _ in range(workers)
    ]
    t = time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    return time.perf_counter() - t


def report() -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from run import bare_loop
    from tickets.engine.config import default_workers

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        store, workers = folder / "t.json", default_workers()
        n = 100_000 // SCALE
        print(f"\n11. big sales on workers (a worker per core: {workers} here)")
        bare = bare_loop(store, "flock", 20_000 // SCALE)
        run = sale(
            store=str(store),
            buyers=n,
            tickets=n,
            strategy="flock",
            workers=2,
            delays=False,
            history=str(folder / "a.jsonl"),
        )
        rate = float(run["sold"]) / float(run["duration_s"])  # type: ignore[arg-type]
        bare_after = bare_loop(store, "flock", 20_000 // SCALE)
        base = (bare + bare_after) / 2
        print(
            f"   a. {n:,} buyers, flock, --no-delay --workers 2: {rate:,.0f} purchases/s, "
            f"bare loop {base:,.0f}/s (before {bare:,.0f}, after {bare_after:,.0f}): "
            f"ratio {rate / base:.2f}"
        )
        big, stock = 1_000_000 // SCALE, 10_000 // SCALE
        history = folder / "b.jsonl"
        run = sale(
            store=str(store),
            buyers=big,
            tickets=stock,
            strategy="flock",
            delays=False,
            history=str(history),
        )
        bare_s = bare_searches(store, big, int(run["workers"]))  # type: ignore[call-overload]
        wall = float(run["duration_s"])  # type: ignore[arg-type]
        peak_mb = int(run["maxrss_kb"]) / 1024  # type: ignore[call-overload]
        print(
            f"   b. {big:,} buyers for {stock:,} tickets, --no-delay, {run['workers']} workers:"
            f" {wall:.1f} s against {bare_s:.1f} s of bare searches: ratio "
            f"{wall / bare_s:.2f}; parent peak {peak_mb:.0f} MB"
        )
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "tickets", "check", str(history)],
            capture_output=True,
            timeout=3600,
            check=False,
        )
        check_s = time.perf_counter() - t
        size = history.stat().st_size
        lines = sum(1 for _ in history.open("rb"))
        print(
            f"      check of its history: {check_s:.1f} s; {size / 1e6:,.0f} MB, "
            f"{lines:,} lines, {size / lines:.0f} bytes per event"
        )
        n, stock = 100_000 // SCALE, 1_000 // SCALE
        run = sale(
            store=str(store),
            buyers=n,
            tickets=stock,
            strategy="flock",
            delays=True,
            history=str(folder / "c.jsonl"),
        )
        wall = float(run["duration_s"])  # type: ignore[arg-type]
        bound = 2 * 0.024 * stock
        print(
            f"   c. {n:,} buyers for {stock:,} tickets, default delays: {wall:.1f} s against "
            f"2 x 24 ms x {stock:,} rounds = {bound:.1f} s: ratio {wall / bound:.2f}"
        )


if __name__ == "__main__":
    report()
