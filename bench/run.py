"""`make bench`: throughput and start-up, as ratios against baselines run in
the same session (these machines are shared and noisy: compare the ratios,
not the absolute numbers, across machines).

1. Each strategy with --no-delay, every buyer buying (stock == buyers),
   against a bare read-modify-write loop on the same lock and write path in
   one process: how much of the raw store speed a sale of processes keeps.
2. `tickets buy --buyers 1000 --no-delay`, whole command, and the parent's
   peak memory at 250 and 1000 buyers (memory per buyer in the parent),
   against a bare fork-and-join of as many processes (the tutorial's way:
   start N `multiprocessing.Process`, then join them all).
3. The order queue with --batch (group commit) against `buy --no-delay`,
   file lock, same store, same session.
4. `tickets --help` start-up against `python -c "import click"`.
5. The polling file lock (filelock) against the blocking flock on the
   default sale: the hand-off gaps a polling lock leaves.
6. `tickets check` of a million-operation history against a bare loop that
   only parses its lines with the same JSON library, and its peak memory
   per operation (bench/history_check.py).
7. SQLite and a real Redis server: every strategy's 400-buyer sale and
   `queue --batch 100`, against a bare loop of the same store operation in
   one process (bench/stores.py).
8. The user's own buyer (`--buy`) against the built-in purchase, same lock
   (bench/user_buyer.py).
9. Command buyers (`--exec`, a trivial command) against the built-in
   purchase: bounded by process start (bench/exec_buyer.py).
10. One named sale across 3 simulated hosts (root): wall time, purchases/s,
    and streaming the histories against files only (bench/hosts_sale.py).
11. Big sales on worker processes: 100,000 and 1,000,000 buyers against
    bare loops, memory, check, and the default delays (bench/big_sales.py).
13. `tickets explore`: the two-buyer oversell as a whole command against
    `tickets --help`, schedules per second per strategy on tmpfs and disk,
    and the reduction against every interleaving (bench/explore.py).
14. PostgreSQL 16: `atomic` and `for-update` on workers against a bare loop
    of the same statements on one connection; `read-committed` and
    `serializable` with their refusal and retry rates (bench/postgres.py).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import big_sales
import exec_buyer
import explore
import history_check
import hosts_sale
import postgres
import stores
import user_buyer
from tickets.constants import LOCK_STRATEGY_NAMES
from tickets.engine.buy import run_buy
from tickets.engine.child.plan import Delays
from tickets.engine.config import BuyConfig, QueueConfig
from tickets.engine.queue import run_queue
from tickets.locking.locks import FileLock, FlockLock, NoLock, ProcessLock
from tickets.locking.strategies import STRATEGIES
from tickets.stores import json_file as st
from tickets.stores.spec import parse_db

BUYERS = int(os.environ.get("BENCH_BUYERS", "400"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
CHECK_OPERATIONS = int(os.environ.get("BENCH_CHECK_OPERATIONS", "1000000"))


def bare_loop(path: Path, lock_name: str, n: int) -> float:
    """Purchases/s of one process doing lock, read, decrement, write, release."""
    st.save(path, n)
    if lock_name == "file":
        lock: object = FileLock(st.lock_path(path), 10)
    elif lock_name == "flock":
        lock = FlockLock(st.lock_path(path), 10, timer=True)  # the buyer's way
    elif lock_name in ("process", "per-buyer"):
        lock = ProcessLock(multiprocessing.get_context("fork").Lock(), 10)
    else:
        lock = NoLock(10)
    t = time.perf_counter()
    for _ in range(n):
        with lock:  # type: ignore[attr-defined]
            count = st.load(path)
            st.save(path, count - 1)
    return n / (time.perf_counter() - t)


def sale(path: Path, strategy: str, n: int) -> float:
    result = run_buy(
        BuyConfig(
            store=parse_db(str(path)),
            buyers=n,
            tickets=n,
            strategy=STRATEGIES[strategy],
            delays=Delays.none(),
            history=path.parent / f"h-{strategy}-{time.monotonic_ns()}.jsonl",
        )
    )
    return result.report.sold / result.duration_s


def queue_sale(path: Path, batch: int, orders: int) -> float:
    result = run_queue(
        QueueConfig(
            store=parse_db(str(path)),
            producers=2,
            orders=orders // 2,
            clerks=2,
            queue_size=1000,
            tickets=orders,
            batch=batch,
            delays=Delays.none(),
            history=path.parent / f"q-{batch}-{time.monotonic_ns()}.jsonl",
        )
    )
    assert result.passed and result.report.sold == orders, result.report
    return result.report.sold / result.duration_s


def timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=False, capture_output=True, timeout=120)
    return time.perf_counter() - t


BARE_FORK_JOIN = """
import multiprocessing as mp
ctx = mp.get_context("fork")
procs = [ctx.Process(target=int) for _ in range({n})]
for p in procs:
    p.start()
for p in procs:
    p.join()
"""


def strategies_against_bare_loops(path: Path) -> None:
    print(f"1. purchases/s, {BUYERS} buyers, --no-delay, best of {REPEAT} (same session)")
    print(f"   {'strategy':<10} {'sale':>10} {'bare loop':>10} {'ratio':>7}")
    for strategy in LOCK_STRATEGY_NAMES:
        bare = max(bare_loop(path, strategy, 2000) for _ in range(REPEAT))
        run = max(sale(path, strategy, BUYERS) for _ in range(REPEAT))
        print(f"   {strategy:<10} {run:>10,.0f} {bare:>10,.0f} {run / bare:>7.2f}")


def whole_command(tickets_bin: str, path: Path, n: int) -> tuple[float, int]:
    """Wall time and the parent's peak RSS (KB) of `tickets buy --buyers n --no-delay`."""
    env = {**os.environ, "TICKETS_DB": str(path)}
    history = path.parent / f"h{n}-{time.monotonic_ns()}.jsonl"
    cmd = [tickets_bin, "buy", "--buyers", str(n), "--no-delay", "--json"]
    cmd += ["--history", str(history)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, check=False)
    wall = time.perf_counter() - t
    doc = json.loads(out.stdout)
    assert doc["passed"], doc
    return wall, max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)


def buy_against_bare_fork_join(tickets_bin: str, path: Path) -> None:
    print("\n2. tickets buy --buyers N --no-delay against a bare fork-and-join of N processes")
    print("   (whole commands, median of 3, interleaved)")
    for n in (250, 1000):
        walls, rss, bare = [], [], []
        for _ in range(3):
            wall, peak = whole_command(tickets_bin, path, n)
            walls.append(wall)
            rss.append(peak)
            bare.append(timed([sys.executable, "-c", BARE_FORK_JOIN.format(n=n)]))
        w, b = statistics.median(walls), statistics.median(bare)
        print(
            f"   {n:>5} buyers: {w:.2f} s wall, bare fork-and-join {b:.2f} s, "
            f"ratio {w / b:.2f} (target <= 2), parent peak RSS {max(rss) / 1024:.0f} MB"
        )


def queue_against_buy(path: Path) -> None:
    print(f"\n3. order queue against buy --no-delay, file lock, best of {REPEAT}")
    buy = max(sale(path, "file", BUYERS) for _ in range(REPEAT))
    print(f"   buy --buyers {BUYERS} --no-delay      {buy:>9,.0f}/s   1.00")
    for batch, n in ((1, 4000), (100, 20000)):
        rate = max(queue_sale(path, batch, n) for _ in range(REPEAT))
        print(
            f"   queue --batch {batch:<3} ({n:,} orders) {rate:>9,.0f}/s {rate / buy:>6.2f}x"
            + ("   (target >= 10x)" if batch > 1 else "")
        )


def polling_against_blocking(path: Path) -> None:
    """The default sale (50 buyers, 10 tickets, default delays) under the
    polling file lock and the blocking flock: what the hand-off gaps cost."""
    print(f"\n5. the default sale, 50 buyers for 10 tickets, median of {3 * REPEAT}")
    walls: dict[str, list[float]] = {"file": [], "flock": []}
    for seed in range(3 * REPEAT):
        for strategy in walls:
            config = BuyConfig(
                store=parse_db(str(path)),
                buyers=50,
                tickets=10,
                strategy=STRATEGIES[strategy],
                seed=seed,
                history=path.parent / f"d-{strategy}-{time.monotonic_ns()}.jsonl",
            )
            walls[strategy].append(run_buy(config).duration_s)
    file, flock = (statistics.median(walls[s]) for s in ("file", "flock"))
    print(f"   file (filelock, polls)   {file * 1000:7.1f} ms   {file / flock:.2f}x")
    print(f"   flock (blocks)           {flock * 1000:7.1f} ms   1.00x")


def startup(tickets_bin: str) -> None:
    print("\n4. start-up, median of 9 interleaved runs")
    helps, clicks = [], []
    for _ in range(9):
        helps.append(timed([tickets_bin, "--help"]))
        clicks.append(timed([sys.executable, "-c", "import click"]))
    h, c = statistics.median(helps), statistics.median(clicks)
    print(
        f"   tickets --help {h * 1000:.0f} ms, python -c 'import click' {c * 1000:.0f} ms, "
        f"ratio {h / c:.2f} (target <= 1.5)"
    )


def main() -> None:
    tickets_bin = str(Path(sys.executable).with_name("tickets"))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tickets.json"
        strategies_against_bare_loops(path)
        buy_against_bare_fork_join(tickets_bin, path)
        queue_against_buy(path)
        startup(tickets_bin)
        polling_against_blocking(path)
    history_check.report(CHECK_OPERATIONS)
    stores.report(BUYERS, REPEAT)
    user_buyer.report(BUYERS)
    exec_buyer.report(BUYERS)
    hosts_sale.report()
    big_sales.report()
    explore.report()
    postgres.report()


if __name__ == "__main__":
    main()
