"""A small HTTP booking service to test with `tickets buy --exec`: standard
library only, a SQLite database behind it.

    python3 examples/booking_service.py --port 8765 --db shop.db --tickets 20
    python3 examples/booking_service.py --port 8765 --db shop.db --tickets 20 --broken

    POST /buy    200 and the seat (the count it took) on one line;
                 410 "sold out" when none is left
    GET  /stock  200 and the count left
    POST /stock?count=N   restock to N (for the next run)

The correct variant sells with one statement, `UPDATE ... SET count =
count - 1 WHERE count > 0 RETURNING count + 1`: the check and the decrement
are one indivisible step. `--broken` is the classic check-then-act: read
the count, think for a moment (`--think-ms`), write `count - 1`. Under
concurrent requests two buyers read the same count and both sell it.

`--ids` answers with a ticket id (`T-000042`) instead of the seat, as many
real services do; `tickets buy --exec ... --ticket-ids` checks those for
uniqueness and count. The service stops on SIGTERM or Ctrl-C; with
`--ready-file F` it writes its address to F once it listens.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sqlite3
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

TABLE = "booking_stock"


class Shop:
    """The stock, in SQLite; one connection per request (threads)."""

    def __init__(self, path: str, broken: bool, think: float, ids: bool) -> None:
        self.path = path
        self.broken = broken
        self.think = think
        self.ids = ids

    def connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA busy_timeout = 30000")
        return db

    def restock(self, count: int) -> None:
        with contextlib.closing(self.connect()) as db:
            db.execute("PRAGMA journal_mode = WAL")
            db.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (id INTEGER PRIMARY KEY, count INTEGER)")
            db.execute(f"INSERT OR REPLACE INTO {TABLE} (id, count) VALUES (1, ?)", (count,))

    def stock(self) -> int:
        with contextlib.closing(self.connect()) as db:
            return int(db.execute(f"SELECT count FROM {TABLE} WHERE id = 1").fetchone()[0])

    def buy(self) -> int | None:
        """The seat sold (the count taken), or None when sold out."""
        with contextlib.closing(self.connect()) as db:
            if self.broken:  # check-then-act: the bug
                count = int(db.execute(f"SELECT count FROM {TABLE} WHERE id = 1").fetchone()[0])
                if count <= 0:
                    return None
                time.sleep(self.think)
                db.execute(f"UPDATE {TABLE} SET count = ? WHERE id = 1", (count - 1,))
                return count
            row = db.execute(
                f"UPDATE {TABLE} SET count = count - 1 WHERE id = 1 AND count > 0 "
                "RETURNING count + 1"
            ).fetchone()
            return None if row is None else int(row[0])


class Handler(BaseHTTPRequestHandler):
    shop: Shop

    def answer(self, status: int, text: str) -> None:
        body = (text + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if urlsplit(self.path).path == "/stock":
            self.answer(200, str(self.shop.stock()))
        else:
            self.answer(404, "not found")

    def do_POST(self) -> None:  # noqa: N802
        url = urlsplit(self.path)
        if url.path == "/buy":
            seat = self.shop.buy()
            if seat is None:
                self.answer(410, "sold out")
            else:
                self.answer(200, f"T-{seat:06d}" if self.shop.ids else str(seat))
        elif url.path == "/stock":
            count = parse_qs(url.query).get("count", [""])[0]
            if not count.isdigit():
                self.answer(400, "give ?count=N")
                return
            self.shop.restock(int(count))
            self.answer(200, count)
        else:
            self.answer(404, "not found")

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # quiet: a sale is thousands of requests


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--db", default="booking.db", help="the SQLite file (default booking.db)")
    parser.add_argument("--tickets", type=int, default=20, help="restock to N at start")
    parser.add_argument("--broken", action="store_true", help="sell with check-then-act")
    parser.add_argument("--think-ms", type=float, default=20.0,
                        help="--broken: the pause between the read and the write")
    parser.add_argument("--ids", action="store_true", help="answer with ticket ids, not seats")
    parser.add_argument("--ready-file", help="write host:port here once listening")
    args = parser.parse_args(argv)
    shop = Shop(args.db, args.broken, args.think_ms / 1000, args.ids)
    shop.restock(args.tickets)
    Handler.shop = shop
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.request_queue_size = 256
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if args.ready_file:
        host, port = server.server_address[:2]
        with open(args.ready_file + ".tmp", "w") as f:
            f.write(f"{host}:{port}\n")
        os.replace(args.ready_file + ".tmp", args.ready_file)
    variant = "broken (check-then-act)" if args.broken else "correct (one UPDATE)"
    print(f"booking service, {variant}, on http://{args.host}:{server.server_address[1]}",
          file=sys.stderr)
    with server:
        server.serve_forever(poll_interval=0.1)


if __name__ == "__main__":
    main()
