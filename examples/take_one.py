"""A command buyer that sells from the tool's own store: any program can.

    tickets buy --db sale.json --exec 'python3 examples/take_one.py'
    tickets buy --db sqlite:sale.db --exec 'python3 examples/take_one.py'
    tickets buy --db redis://127.0.0.1:6379 --exec 'python3 examples/take_one.py'
    tickets buy --db sale.json --exec 'python3 examples/take_one.py --broken'

The store comes in the environment: TICKETS_STORE_KIND, and
TICKETS_STORE_PATH (a JSON or SQLite file) or TICKETS_STORE (a Redis URL,
password included) and TICKETS_STORE_KEY. It prints the seat it took (the
count before its sale) and exits 0, or exits 22 when sold out. On a JSON
file it takes a lock of its own (flock on `<store>.mine`) around the read
and the write; `--broken` leaves the lock out, and waits 20 ms between the
read and the write, as a slow network would: two buyers sell one seat.
On SQLite one statement does it all: `UPDATE ... WHERE count > 0 RETURNING`;
on Redis one Lua script (the `redis` package must be installed for it).
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import sys
import time

SOLD_OUT = 22


def take_json(path: str, broken: bool) -> int | None:
    with open(path + ".mine", "a") as lock:
        if not broken:
            fcntl.flock(lock, fcntl.LOCK_EX)
        with open(path) as f:
            count = json.load(f)["count"]
        if count == 0:
            return None
        if broken:
            time.sleep(0.02)
        with open(path + ".tmp", "w") as f:
            json.dump({"count": count - 1}, f)
        os.replace(path + ".tmp", path)
        return int(count)


TAKE = """
local count = tonumber(redis.call('GET', KEYS[1]))
if count == nil or count <= 0 then return 0 end
redis.call('SET', KEYS[1], count - 1)
return count
"""


def take_redis(url: str, key: str) -> int | None:
    import redis

    seat = int(redis.Redis.from_url(url, socket_timeout=10).eval(TAKE, 1, key))
    return seat or None


def take_sqlite(path: str) -> int | None:
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    row = db.execute(
        "UPDATE tickets_stock SET count = count - 1 WHERE id = 1 AND count > 0 RETURNING count + 1"
    ).fetchone()
    return None if row is None else int(row[0])


def main() -> int:
    kind = os.environ["TICKETS_STORE_KIND"]
    if kind == "json":
        seat = take_json(os.environ["TICKETS_STORE_PATH"], "--broken" in sys.argv)
    elif kind == "sqlite":
        seat = take_sqlite(os.environ["TICKETS_STORE_PATH"])
    else:
        seat = take_redis(os.environ["TICKETS_STORE"], os.environ["TICKETS_STORE_KEY"])
    if seat is None:
        return SOLD_OUT
    print(seat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
