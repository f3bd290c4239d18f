"""A named sale on Redis: hosts join it, start together, and share one history.

``tickets --db redis://… buy --sale NAME --hosts N`` on each of N machines.
Everything of a sale lives under ``tickets:sale:NAME:`` on the store's
server:

- ``meta`` (a hash): the hosts expected, the stock key and the stock every
  host read before the start, the state (``joining``, then ``started``), and
  the server's time when it was created and started;
- ``hosts`` (a hash): each host's run id and what it says of itself;
- ``events`` (a stream): every line of every host's history, as it is
  written (each host keeps its own file too).

Joining is one script, so it is all or nothing: a sale already started, a
different number of hosts, another stock key, or a stock that is not the one
the others read (restocked, or sold from, while they joined) is refused.
Each host joins once its buyers are ready, and waits (with a deadline) until
the last one has joined: the script that counts it in starts the sale, and
every host lets its buyers go the moment it sees that.

Time across hosts: a host's monotonic clock is not another's. Each host
measures its offset to the server's clock (``TIME``, the best of a few
round trips: the offset is known to within half the round trip) and records
it in its run line; ``tickets check --sale`` puts every host's times on the
server's clock and widens each operation by its host's uncertainty, so two
operations are ordered only when their gap exceeds what the clocks can tell.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, NotRequired, TypedDict

from ..stores.base import StoreError
from ..stores.redis import RedisStore, canonical_count, text_of

if TYPE_CHECKING:
    from redis.typing import StreamRangeResponse

    from ..json_types import Json

PREFIX = "tickets:sale:"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
#: How often a waiting host looks whether the sale has started (seconds).
POLL = 0.005
#: Lines read from the stream at a time.
CHUNK = 2000

JOIN = """
local state = redis.call('HGET', KEYS[1], 'state')
if state and state ~= 'joining' then return {'started', state} end
local hosts = redis.call('HGET', KEYS[1], 'hosts')
if hosts and hosts ~= ARGV[1] then return {'hosts', hosts} end
local key = redis.call('HGET', KEYS[1], 'key')
if key and key ~= ARGV[4] then return {'key', key} end
local stock = redis.call('HGET', KEYS[1], 'stock')
if stock and stock ~= ARGV[5] then return {'stock', stock} end
local now = redis.call('TIME')
if ARGV[6] == 'check' then return {'open', tostring(redis.call('HLEN', KEYS[2]))} end
if not state then
  redis.call('HSET', KEYS[1], 'state', 'joining', 'hosts', ARGV[1], 'key', ARGV[4],
             'stock', ARGV[5], 'created', now[1] .. '.' .. string.format('%06d', now[2]))
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
local n = redis.call('HLEN', KEYS[2])
if n >= tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'state', 'started',
             'started', now[1] .. '.' .. string.format('%06d', now[2]))
end
return {'joined', tostring(n)}
"""


#: A host that gives up waiting leaves; the last one to leave a sale that
#: never started removes it (its name is free again).
LEAVE = """
if redis.call('HGET', KEYS[1], 'state') ~= 'joining' then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
if redis.call('HLEN', KEYS[2]) == 0 then redis.call('DEL', KEYS[1]) end
return 1
"""


#: Every host has ended: read the stock once, for the sale (the first to see it).
FINAL = """
local ended = redis.call('HLEN', KEYS[2])
if ended >= tonumber(ARGV[1]) and redis.call('HEXISTS', KEYS[1], 'final') == 0 then
  redis.call('HSET', KEYS[1], 'final', redis.call('GET', ARGV[2]) or 'missing')
end
return ended
"""


class HostInfo(TypedDict, total=False):
    """What a host says of itself as it joins: shown by ``sale show``, never checked."""

    run_id: str
    pid: int
    buyers: int


class SaleDoc(TypedDict):
    """A sale as ``sale show`` prints it: its ``meta`` hash, what each host
    said as it joined, and how many hosts have ended and lines it holds."""

    name: str
    #: joining, started, or unknown (a hash half made again)
    state: str
    #: None: not a number (a sale dropped and half made again)
    hosts: int | None
    key: str
    stock: int | None
    #: the server's time when the sale was created, started; its stock at the end
    created: NotRequired[str]
    started: NotRequired[str]
    final: NotRequired[str]
    #: each host: its name and what it said (JSON from the server: unchecked)
    joined: list[dict[str, Json]]
    ended: int
    events: int


class SaleError(StoreError):
    """A named sale that cannot be joined or read (exit 3)."""


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise ValueError(
            f"{name!r}: a sale's name is 1 to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


class NamedSale:
    """One sale's keys on the store's server."""

    def __init__(self, store: RedisStore, name: str) -> None:
        self.store = store
        self.name = check_name(name)
        base = PREFIX + name
        self.meta, self.hosts, self.events = f"{base}:meta", f"{base}:hosts", f"{base}:events"
        #: the hosts that have ended, and written their history's end line
        self.ended = f"{base}:ended"

    def _fail(self, problem: str, fix: str = "") -> SaleError:
        return SaleError(f"sale {self.name}", problem, fix)

    def _join(self, hosts: int, host: str, info: HostInfo, stock: int, mode: str) -> int:
        script = self.store.script("join", JOIN)
        argv: list[int | str] = [hosts, host, json.dumps(info), self.store.key, stock, mode]
        what, value = self.store.call(lambda: script(keys=[self.meta, self.hosts], args=argv))
        what, value = what.decode(), value.decode()
        if what == "started":
            raise self._fail(
                "has already started; a host can join only before the start",
                "give the sale another name, or drop it with `tickets sale drop`",
            )
        if what == "hosts":
            raise self._fail(f"expects {value} hosts, not {hosts}", "give the same --hosts")
        if what == "key":
            raise self._fail(
                f"sells the key {value!r}, not {self.store.key!r}", "give the same --db"
            )
        if what == "stock":
            raise self._fail(
                f"began with a stock of {value}, and this host read {stock}: the stock was "
                "restocked or sold from while hosts joined",
                "prepare the stock once, then start every host",
            )
        return int(value)

    def check_open(self, hosts: int, stock: int) -> None:
        """Before anything is set up: may this host join? (Raises SaleError.)"""
        self._join(hosts, "", {}, stock, "check")

    def join_and_wait(
        self, hosts: int, host: str, info: HostInfo, stock: int, timeout: float
    ) -> str | None:
        """Join, and wait until every host has: None once the sale has
        started, or why this host stops waiting (it leaves the sale)."""
        self._join(hosts, host, info, stock, "join")
        deadline = time.monotonic() + timeout
        client = self.store.client
        try:
            while True:
                state = self.store.call(lambda: client.hget(self.meta, "state"))
                if state == b"started":
                    return None
                if time.monotonic() > deadline:
                    joined = self.store.call(lambda: client.hlen(self.hosts))
                    self.leave(host)
                    return (
                        f"sale {self.name}: only {joined} of {hosts} hosts joined within "
                        f"{timeout:g}s; this host left it"
                    )
                time.sleep(POLL)
        except KeyboardInterrupt:  # Ctrl-C while waiting: not counted in any more
            self.leave(host)
            raise

    def leave(self, host: str) -> None:
        """Leave a sale that has not started (the last to leave frees its name)."""
        script = self.store.script("leave", LEAVE)
        try:
            self.store.call(lambda: script(keys=[self.meta, self.hosts], args=[host]))
        except StoreError:
            pass  # the server is gone: nothing to leave

    def finish_and_wait(self, host: str, run_id: str, hosts: int, timeout: float) -> int:
        """This host has ended (its end line is in the stream): say so, and
        wait until every host has, or the deadline. How many have. The
        first host to see every host ended reads the stock after the sale
        into the sale's ``final`` (a host's own reading may precede
        another's last sales, or fail across a partition)."""
        client = self.store.client
        deadline = time.monotonic() + timeout
        script = self.store.script("final", FINAL)
        keys = [self.meta, self.ended]
        args: list[int | str] = [hosts, self.store.key]
        said = False
        while True:
            try:  # across a partition: again, until the deadline
                if not said:
                    self.store.call(lambda: client.hset(self.ended, host, run_id))
                    said = True
                ended = int(self.store.call(lambda: script(keys=keys, args=args)))
            except StoreError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
                continue
            if ended >= hosts or time.monotonic() > deadline:
                return ended
            time.sleep(POLL)

    def final(self) -> tuple[int | None, str | None]:
        """The stock after the sale, as recorded once every host had ended
        (None: not recorded), or why it is not a count."""
        value = self.store.call(lambda: self.store.client.hget(self.meta, "final"))
        if value is None:
            return None, None
        text = text_of(value)
        if canonical_count(text):
            return int(text), None
        return None, f"the stock after the sale was {text[:40]!r}, not a count"

    def append(self, run_id: str, lines: list[str], first: int = 1) -> None:
        """Add history lines to the sale's stream, in order, in one round
        trip; ``first`` numbers the first of them in its run's history (a
        batch sent again after a failure may repeat lines: readers keep one)."""
        if not lines:
            return
        client = self.store.client

        def add() -> None:
            pipe = client.pipeline(transaction=False)
            for n, line in enumerate(lines, first):
                pipe.xadd(self.events, {"run": run_id, "seq": n, "line": line})
            pipe.execute()

        self.store.call(add)

    def lines(self) -> Iterator[tuple[str, int, bytes]]:
        """Every history line of the sale, in the order the server took them:
        (run id, its number in the run's history, line)."""
        client, start = self.store.client, "-"

        def page(after: str) -> StreamRangeResponse:
            return (
                self.store.call(lambda: client.xrange(self.events, after, "+", count=CHUNK)) or []
            )

        while True:
            batch = page(start)
            for _, fields in batch:
                got = fields or {}
                seq = _raw(got.get(b"seq", b""))
                yield (
                    text_of(got.get(b"run", b"")),
                    int(seq) if seq.isdigit() else 0,
                    _raw(got.get(b"line", b"")),
                )
            if len(batch) < CHUNK:
                return
            last = text_of(batch[-1][0] or b"")
            ms, number = last.split("-")
            start = f"{ms}-{int(number) + 1}"

    def describe(self) -> SaleDoc | None:
        """What ``sale show`` prints; None: no such sale."""
        client = self.store.client
        meta = self.store.call(lambda: client.hgetall(self.meta))
        if not meta:
            return None
        hosts = self.store.call(lambda: client.hgetall(self.hosts))
        events = self.store.call(lambda: client.xlen(self.events))
        ended = self.store.call(lambda: client.hlen(self.ended))
        said = {text_of(k): text_of(v) for k, v in meta.items()}
        joined: list[dict[str, Json]] = [
            {"host": text_of(h), **_loads(_raw(v))} for h, v in hosts.items()
        ]
        doc: SaleDoc = {
            "name": self.name,
            "state": said.get("state", "unknown"),
            "hosts": _number(said.get("hosts", "")),
            "key": said.get("key", ""),
            "stock": _number(said.get("stock", "")),
            "joined": sorted(joined, key=lambda d: str(d["host"])),
            "ended": int(ended),
            "events": int(events),
        }
        for time_field in ("created", "started", "final"):
            if time_field in said:
                doc[time_field] = said[time_field]
        return doc

    def drop(self) -> bool:
        client = self.store.client
        keys = (self.meta, self.hosts, self.events, self.ended)
        return bool(self.store.call(lambda: client.delete(*keys)))


def _raw(reply: bytes | str) -> bytes:
    """A reply as the client gives it (bytes: it decodes nothing)."""
    return reply if isinstance(reply, bytes) else reply.encode()


def _number(text: str) -> int | None:
    """A count in the meta hash; None if it is none (a sale dropped and half made again)."""
    return int(text) if text.isascii() and text.isdigit() else None


def _loads(text: bytes) -> dict[str, Json]:
    """A JSON object a host wrote (anything else: nothing)."""
    try:
        doc: Json = json.loads(text)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def sale_names(store: RedisStore) -> list[str]:
    """The sales on the store's server (of any key), by name."""
    client = store.client
    keys = store.call(lambda: list(client.scan_iter(match=PREFIX + "*:meta", count=500)))
    names = (k.decode(errors="replace")[len(PREFIX) : -len(":meta")] for k in keys)
    return sorted(n for n in names if NAME.fullmatch(n))


def clock_offset(store: RedisStore, rounds: int = 7) -> tuple[float, float]:
    """This host's monotonic clock against the server's (``TIME``): the
    offset to add to a monotonic time to get the server's, and how far off
    it may be (half the shortest round trip)."""
    client = store.client
    best: tuple[float, float] | None = None
    for _ in range(rounds):
        before = time.monotonic()
        seconds, micros = store.call(client.time)
        after = time.monotonic()
        half = (after - before) / 2
        offset = seconds + micros / 1e6 - (before + half)
        if best is None or half < best[1]:
            best = (offset, half)
    assert best is not None
    return best


def check_not_selling(store: RedisStore) -> None:
    """Refuse to restock a key that a named sale is selling: one that has
    started and whose hosts have not all ended (a restock mid-way would
    make its verdict meaningless)."""
    for name in sale_names(store):
        doc = NamedSale(store, name).describe()
        if doc is None or doc["key"] != store.key or doc["state"] != "started":
            continue
        hosts = doc["hosts"]
        if hosts is not None and doc["ended"] < hosts:
            raise SaleError(
                store.label,
                f"is being sold by the named sale {name} ({doc['ended']} of {hosts} "
                "hosts ended); a restock now would spoil its verdict",
                f"wait for it to end, or `tickets sale drop {name}`",
            )
