"""`make bench` section 7: the real stores, SQLite and a Redis server.

For each store and strategy: purchases/s of a sale of N buyers with
--no-delay (every buyer buying: stock == buyers) and of `queue --batch 100`,
next to a bare loop doing the store's own indivisible take-one in one
process (SQLite: one `UPDATE ... RETURNING` per ticket; Redis: the same Lua
script, pipelined 100 calls a round trip). The Redis server is a real
redis-server on a free loopback port, started here and stopped after.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tickets.engine.buy import run_buy
from tickets.engine.child.plan import Delays
from tickets.engine.config import BuyConfig, QueueConfig
from tickets.engine.queue import run_queue
from tickets.locking.strategies import STRATEGIES, strategies_for
from tickets.stores import open_store
from tickets.stores.spec import parse_db

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from redis_server import RedisServer, find_binary  # noqa: E402

QUEUE_ORDERS = 20_000
BARE_OPS = 20_000


def bare_loop(url: str) -> float:
    """Takes/s of one process taking one ticket at a time, as fast as the store allows."""
    store = open_store(parse_db(url))
    store.restock(BARE_OPS)
    if store.kind == "redis":
        from tickets.stores.redis import TAKE

        script = store.script("take", TAKE)  # type: ignore[attr-defined]
        client = store.client  # type: ignore[attr-defined]
        script(keys=[store.spec.key], args=[0])  # loaded once: EVALSHA from here on
        t = time.perf_counter()
        for _ in range(BARE_OPS // 100):
            pipe = client.pipeline(transaction=False)
            for _ in range(100):
                script(keys=[store.spec.key], args=[1], client=pipe)
            pipe.execute()
    else:
        t = time.perf_counter()
        for _ in range(BARE_OPS):
            store.take(1)
    rate = BARE_OPS / (time.perf_counter() - t)
    assert store.load() == 0
    store.close()
    return rate


def spec(url: str, lock_file: Path | None) -> Any:
    return parse_db(url, lock_file=None if lock_file is None else str(lock_file))


def sale(url: str, strategy: str, buyers: int, folder: Path, lock_file: Path | None) -> float:
    result = run_buy(
        BuyConfig(
            store=spec(url, lock_file),
            buyers=buyers,
            tickets=buyers,
            strategy=STRATEGIES[strategy],
            delays=Delays.none(),
            lock_timeout=60,
            history=folder / f"b-{time.monotonic_ns()}.jsonl",
        )
    )
    assert result.report.passed or strategy in ("none", "per-buyer", "deferred"), strategy
    return result.report.sold / result.duration_s


def queue(url: str, strategy: str, folder: Path, lock_file: Path | None) -> float:
    result = run_queue(
        QueueConfig(
            store=spec(url, lock_file),
            strategy=STRATEGIES[strategy],
            producers=2,
            orders=QUEUE_ORDERS // 2,
            clerks=2,
            queue_size=1000,
            tickets=QUEUE_ORDERS,
            batch=100,
            delays=Delays.none(),
            lock_timeout=60,
            history=folder / f"q-{time.monotonic_ns()}.jsonl",
        )
    )
    assert result.passed and result.report.sold == QUEUE_ORDERS, (strategy, result.report)
    return result.report.sold / result.duration_s


def report_store(
    kind: str, url: str, buyers: int, repeat: int, folder: Path, lock_file: Path | None = None
) -> None:
    bare = max(bare_loop(url) for _ in range(repeat))
    what = "UPDATE ... RETURNING, autocommit" if kind == "sqlite" else "Lua take, pipelined x100"
    print(f"   {kind}: bare loop ({what}) {bare:,.0f}/s")
    print(f"   {'strategy':<12} {'sale':>9} {'ratio':>6} {'queue':>9} {'ratio':>6}")
    for strategy in (s.name for s in strategies_for(kind)):
        if strategy in ("per-buyer",):
            continue  # the same as none, by design
        run = max(sale(url, strategy, buyers, folder, lock_file) for _ in range(repeat))
        if strategy in ("none", "deferred"):  # a queue of these would not sell the stock
            print(f"   {strategy:<12} {run:>9,.0f} {run / bare:>6.2f} {'-':>9} {'-':>6}")
            continue
        q = max(queue(url, strategy, folder, lock_file) for _ in range(repeat))
        print(f"   {strategy:<12} {run:>9,.0f} {run / bare:>6.2f} {q:>9,.0f} {q / bare:>6.2f}")


def report(buyers: int, repeat: int) -> None:
    print(
        f"\n7. real stores: purchases/s of a {buyers}-buyer --no-delay sale and of queue "
        f"--batch 100 ({QUEUE_ORDERS:,} orders, 2 clerks), best of {repeat}, as ratios "
        "to the bare loop"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        report_store("sqlite", f"sqlite:{folder / 'sale.db'}", buyers, repeat, folder)
        binary = find_binary()
        if binary is None:
            print("   redis: no redis-server (make test installs one)")
            return
        server = RedisServer(binary)
        try:
            # The lock file and the sale claim in the temporary folder too,
            # not in the current one (a Redis store's default).
            url = server.url(key="bench")
            report_store("redis", url, buyers, repeat, folder, folder / "bench.lock")
        finally:
            server.stop()


if __name__ == "__main__":
    report(int(sys.argv[1]) if len(sys.argv) > 1 else 400, 1)
