"""`make bench` section 14: PostgreSQL (a real PostgreSQL 16, started here).

`atomic` and `for-update` purchases/s of a sale of N buyers on worker
processes (--no-delay, every buyer buying: stock == buyers) against a bare
loop of the same statements from one connection in the same run: the
conditional UPDATE alone; BEGIN, SELECT ... FOR UPDATE, UPDATE, COMMIT.
Goal: >= 0.5x. `read-committed` and `serializable` (with --retries) are
reported beside them, with how often the database refused a sale and how
often a buyer ran its transaction again.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from tickets.engine.buy import run_buy
from tickets.engine.child.plan import Delays
from tickets.engine.config import BuyConfig
from tickets.locking.strategies import STRATEGIES
from tickets.stores import open_store
from tickets.stores.spec import parse_db

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from pg_server import PostgresServer, find_binaries  # noqa: E402

BUYERS = 4000
BARE_OPS = 4000
WORKERS = 2
CONCURRENCY = 8


def bare_loop(url: str, strategy: str) -> float:
    """Sales/s of one connection running the strategy's statements back to back."""
    store: Any = open_store(parse_db(url))
    store.restock(BARE_OPS)
    t = time.perf_counter()
    if strategy == "atomic":
        for _ in range(BARE_OPS):
            store.take(1)
    else:
        lock = store.isolated_transaction(10.0, level="read committed", row_lock=True)
        for _ in range(BARE_OPS):
            lock.acquire()
            store.save(store.load() - 1)
            lock.release()
    rate = BARE_OPS / (time.perf_counter() - t)
    assert store.load() == 0
    store.close()
    return rate


def sale(
    url: str, strategy: str, folder: Path, retries: int = 0, processes: int = 0
) -> tuple[float, Any]:
    """Purchases/s on workers, or (``processes``) with that many buyers, a process each."""
    result = run_buy(
        BuyConfig(
            store=parse_db(url),
            buyers=processes or BUYERS,
            tickets=processes or BUYERS,
            strategy=STRATEGIES[strategy],
            delays=Delays.none(),
            workers=0 if processes else WORKERS,
            concurrency=None if processes else CONCURRENCY,
            lock_timeout=60,
            retries=retries,
            history=folder / f"pg-{time.monotonic_ns()}.jsonl",
        )
    )
    return result.report.sold / result.duration_s, result.report


def report() -> None:
    import tempfile

    binaries = find_binaries()
    if binaries is None:
        print("14. PostgreSQL: skipped (no binaries: `make test` installs pgserver)")
        return
    server = PostgresServer(binaries)
    try:
        url = server.url(table="bench")
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            print(
                f"14. PostgreSQL 16: {BUYERS:,} buyers on {WORKERS} workers x {CONCURRENCY}, "
                "--no-delay, against a bare loop of the same statements on one connection"
            )
            for strategy in ("atomic", "for-update"):
                bare = bare_loop(url, strategy)
                rate, rep = sale(url, strategy, folder)
                assert rep.passed or rep.uncontended, strategy
                print(
                    f"    {strategy:<16} {rate:8,.0f} purchases/s  bare {bare:8,.0f}/s  "
                    f"ratio {rate / bare:.2f}x  (goal >= 0.5x)"
                )
            rate, _ = sale(url, "atomic", folder, processes=400)
            print(f"    atomic, 400 buyers a process each (a connection each): {rate:,.0f}/s")
            for strategy, retries in (("read-committed", 0), ("serializable", 100)):
                rate, rep = sale(url, strategy, folder, retries)
                print(
                    f"    {strategy:<16} {rate:8,.0f} purchases/s  oversold {rep.oversold:,}  "
                    f"refused {rep.refused:,}/{BUYERS:,}  retries {rep.retries:,} "
                    f"({rep.retries / BUYERS:.2f} a buyer; --retries {retries})"
                )
    finally:
        server.stop()


if __name__ == "__main__":
    report()
