"""A key on a Redis server as the store: the count as an integer string.

Client: ``redis`` (redis-py), one connection per process, no retries (a
command sent twice could sell twice) and every wait bounded by
``--connect-timeout``. The capabilities Redis has of its own:

- :meth:`~RedisStore.take` (the ``atomic`` strategy): one Lua script
  (``EVALSHA``) that reads the count and takes up to n if any are left;
- :meth:`~RedisStore.take_optimistic` (``transaction``): optimistic
  ``WATCH`` / ``GET`` / ``MULTI`` / ``SET`` / ``EXEC``, retried when another
  client changed the key in between (the retries are counted in the
  history);
- :meth:`~RedisStore.lease_lock` (``lease``): a distributed lock, ``SET
  <key>:lease TOKEN NX PX ttl``, released by a compare-and-delete script. A
  holder paused past its lease still writes after the next holder took the
  lock, and the sale oversells. With fencing the lease's token is a number
  from ``INCR <key>:fence``, and every read and write of a holder goes
  through a script that refuses a token older than the newest it has seen:
  the paused holder's write is refused.
"""

from __future__ import annotations

import os
import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..constants import MAX_COUNT, TYPE_CHECKING
from ..locking.locks import BuyerLock, LockTimeout
from .base import NoEffect, Store, StoreError

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Protocol, TypeVar

    from redis.commands.core import Script

    from .spec import StoreSpec

    #: What one exchange with the server returns.
    Reply = TypeVar("Reply")

    class WatchingPipeline(Protocol):
        """What an optimistic transaction does with a ``redis.client.Pipeline``
        (whose ``watch`` redis-py leaves unannotated)."""

        def watch(self, *names: str) -> object: ...

        def get(self, name: str) -> bytes | str | None: ...

        def multi(self) -> None: ...

        def set(self, name: str, value: int) -> object: ...

        def execute(self) -> object: ...

        def reset(self) -> None: ...


INIT_FIX = "create it with `tickets --db URL init -t N` (or is ?key= a typo?)"

#: A count is as SET writes an int: plain digits, no sign, space or leading
#: zero, and no larger than MAX_COUNT (checked before anything is taken).
TAKE = f"""
local c = redis.call('GET', KEYS[1])
if not c then return redis.error_reply('TICKETS no such key') end
if not (c == '0' or string.match(c, '^[1-9]%d*$')) or tonumber(c) > {MAX_COUNT} then
  return redis.error_reply('TICKETS not a count')
end
c = tonumber(c)
local k = math.min(c, tonumber(ARGV[1]))
if k > 0 then redis.call('DECRBY', KEYS[1], k) end
return c
"""
#: KEYS: stock, newest token seen. ARGV: token [, new count]. Refuses old tokens.
FENCED = """
local newest = tonumber(redis.call('GET', KEYS[2]) or '0')
local token = tonumber(ARGV[1])
if token < newest then return redis.error_reply('TICKETS fenced ' .. newest) end
redis.call('SET', KEYS[2], token)
if ARGV[2] then redis.call('SET', KEYS[1], ARGV[2]) return 'OK' end
return redis.call('GET', KEYS[1])
"""
#: KEYS: lease, token counter. ARGV: ttl in ms. The lease and its fencing token at once.
ACQUIRE_FENCED = """
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], token, 'PX', ARGV[1])
return token
"""
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


#: How a count is written (SET of an int): what else a key holds is not read as one.
COUNT_FORM = f"(0 to {MAX_COUNT:,} in plain digits: no sign, space or leading zero)"


def canonical_count(text: str) -> bool:
    """Is ``text`` a count as tickets writes one? ``"05"`` is not: a value
    someone else wrote that way is a corrupt store, not 5."""
    return text.isascii() and text.isdigit() and (text == "0" or text[0] != "0")


def text_of(reply: bytes | str | int) -> str:
    """A reply as text: the client's are bytes (it decodes nothing)."""
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


class RedisStore(Store):
    kind = "redis"

    def __init__(self, spec: StoreSpec, lock_timeout: float = 10.0) -> None:
        super().__init__(spec)
        self.key = str(spec.key)
        self.lock_timeout = lock_timeout
        #: the lease's fencing token while a fenced lease is held (see LeaseLock)
        self.fence: int | None = None
        self._client: redis.Redis | None = None
        self._scripts: dict[str, Script] = {}

    @property
    def client(self) -> redis.Redis:
        if self._client is None:
            spec = self.spec
            # One connection, made here: a refused password or a server that
            # is not there is one line, wherever the client is first used.
            self._client = self.call(
                lambda: redis.Redis(
                    host=str(spec.host),
                    port=int(spec.port or 0),
                    db=int(spec.db or 0),
                    username=spec.username,
                    password=spec.password,
                    socket_connect_timeout=spec.connect_timeout,
                    socket_timeout=max(spec.connect_timeout, 1.0),
                    retry=Retry(NoBackoff(), 0),
                    single_connection_client=True,
                    protocol=2,
                    driver_info=None,
                )
            )
        return self._client

    def script(self, name: str, text: str) -> Script:
        if name not in self._scripts:
            self._scripts[name] = self.client.register_script(text)
        return self._scripts[name]

    def raw_handle(self) -> redis.Redis:
        return self.client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def call(self, what: Callable[[], Reply]) -> Reply:
        """Run one exchange with the server; its errors in one line."""
        try:
            return what()
        except redis.WatchError:
            raise  # the optimistic transaction's retry signal, not a failure
        except redis.AuthenticationError:
            raise StoreError(
                self.label, "refused the user name or password", "check the credentials in the URL"
            ) from None
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise StoreError(
                self.label,
                f"cannot be reached ({self._scrub(exc)})",
                "start the server, or check the host and port",
            ) from None
        except redis.ResponseError as exc:
            raise self._refused(str(exc)) from None
        except redis.RedisError as exc:
            raise StoreError(self.label, f"failed: {self._scrub(exc)}") from None

    def _scrub(self, exc: BaseException) -> str:
        text = str(exc).strip().rstrip(".")[:200]
        password = self.spec.password
        return text.replace(password, "***") if password else text

    def _refused(self, text: str) -> Exception:
        if text.startswith("TICKETS fenced"):
            return NoEffect(
                f"fenced: the lease expired and token {self.fence} is older than "
                f"token {text.split()[-1]}, which the store has seen"
            )
        if text.startswith("TICKETS no such key"):
            return StoreError(self.label, "no such key", INIT_FIX)
        if text.startswith("TICKETS not a count"):
            return StoreError(
                self.label,
                f"holds something that is not a count {COUNT_FORM}",
                "repair it or recreate it with `tickets init`",
            )
        if text.startswith(("WRONGPASS", "NOAUTH", "NOPERM")):
            return StoreError(
                self.label, "refused the user name or password", "check the credentials in the URL"
            )
        if text.startswith("WRONGTYPE"):
            try:
                kind = text_of(self.client.type(self.key))
            except redis.RedisError:
                kind = "value of another type"
            return StoreError(
                self.label, f"holds a {kind}, not a count", "use another key=, or delete this one"
            )
        return StoreError(self.label, f"refused: {text[:200]}")

    def _count(self, raw: bytes | str | int | None) -> int:
        """The count a reply holds: GET's (bytes), or a script's (a Lua number)."""
        if raw is None:
            raise StoreError(self.label, "no such key", INIT_FIX)
        text = text_of(raw)
        if not canonical_count(text):
            raise StoreError(
                self.label,
                f"holds {text[:40]!r}, not a whole number {COUNT_FORM}",
                "repair it or recreate it with `tickets init`",
            )
        count = int(text)
        if count > MAX_COUNT:
            raise StoreError(
                self.label,
                f"count {count} is larger than {MAX_COUNT:,}",
                "repair it or recreate it with `tickets init`",
            )
        return count

    # -- the interface ---------------------------------------------------

    def exists(self) -> bool:
        return bool(self.call(lambda: self.client.exists(self.key)))

    def check_ready(self) -> None:
        kind = self.call(lambda: self.client.type(self.key))
        if kind not in (b"string", b"none"):
            raise StoreError(
                self.label,
                f"holds a {text_of(kind)}, not a count",
                "use another key=, or delete this one",
            )
        if kind == b"string":
            self.load()

    def load(self) -> int:
        fence = self.fence
        if fence is not None:
            fenced = self.script("fenced", FENCED)
            keys = [self.key, self.key + ":fenced"]
            return self._count(self.call(lambda: fenced(keys=keys, args=[fence])))
        return self._count(self.call(lambda: self.client.get(self.key)))

    def save(self, count: int, before_write: Callable[[], None] | None = None) -> None:
        if before_write is not None:
            before_write()
        fence = self.fence
        if fence is not None:
            fenced = self.script("fenced", FENCED)
            keys = [self.key, self.key + ":fenced"]
            self.call(lambda: fenced(keys=keys, args=[fence, count]))
        else:
            self.call(lambda: self.client.set(self.key, count))

    def restock(self, count: int) -> None:
        def reset() -> None:
            pipe = self.client.pipeline(transaction=True)
            pipe.set(self.key, count)
            pipe.delete(self.key + ":lease")
            pipe.execute()

        self.check_ready()
        self.call(reset)

    def take(self, n: int, before_write: Callable[[], None] | None = None) -> int:
        take = self.script("take", TAKE)
        if before_write is not None:
            before_write()
        return self._count(self.call(lambda: take(keys=[self.key], args=[n])))

    def take_optimistic(self, n: int, wait: Callable[[], None], timeout: float) -> tuple[int, int]:
        """WATCH, read, MULTI, write, EXEC; again while someone else wrote in
        between. Returns the count before and how many retries it took."""
        deadline = time.monotonic() + timeout
        retries = 0
        while True:
            try:
                return self.call(lambda: self._watched(n, wait)), retries
            except redis.WatchError:
                retries += 1
                if time.monotonic() >= deadline:
                    raise LockTimeout(
                        f"an unchanged {self.key} ({retries} retries)", timeout
                    ) from None

    def _watched(self, n: int, wait: Callable[[], None]) -> int:
        """One try: the count before, 0 when sold out; WatchError when another
        client wrote the key between our WATCH and our EXEC."""
        pipe: WatchingPipeline = self.client.pipeline(transaction=True)
        try:
            pipe.watch(self.key)
            count = self._count(pipe.get(self.key))
            if count == 0:
                return 0
            wait()  # the race window, as the lock strategies have it
            pipe.multi()
            pipe.set(self.key, count - min(n, count))
            pipe.execute()
            return count
        finally:
            pipe.reset()

    def lease_lock(self, timeout: float, *, ttl: float, fencing: bool) -> BuyerLock:
        return LeaseLock(self, timeout, ttl=ttl, fencing=fencing)


class LeaseLock(BuyerLock):
    """``SET <key>:lease TOKEN NX PX ttl``, polled until free or ``timeout``;
    released only by its holder (compare and delete). A lease, not a mutex:
    it ends when its time is up, whether or not its holder is done."""

    def __init__(self, store: RedisStore, timeout: float, *, ttl: float, fencing: bool) -> None:
        super().__init__(timeout)
        self.store = store
        self.ttl_ms = max(1, round(ttl * 1000))
        self.fencing = fencing
        self.name = store.key + ":lease"
        self.token: str | None = None

    def _try(self) -> str | None:
        client = self.store.client
        if self.fencing:
            acquire = self.store.script("acquire", ACQUIRE_FENCED)
            got = self.store.call(
                lambda: acquire(keys=[self.name, self.store.key + ":fence"], args=[self.ttl_ms])
            )
            return None if got is None else str(got)
        token = os.urandom(8).hex()
        ok = self.store.call(lambda: client.set(self.name, token, nx=True, px=self.ttl_ms))
        return token if ok else None

    def acquire(self) -> None:
        deadline = time.monotonic() + self.timeout
        pause = 0.0005
        while True:
            self.token = self._try()
            if self.token is not None:
                if self.fencing:
                    self.store.fence = int(self.token)
                return
            if time.monotonic() >= deadline:
                raise LockTimeout(f"lease {self.name}", self.timeout)
            time.sleep(pause)
            pause = min(pause * 2, 0.005)

    def release(self) -> None:
        token, self.token = self.token, None
        self.store.fence = None
        if token is not None:
            release = self.store.script("release", RELEASE)
            self.store.call(lambda: release(keys=[self.name], args=[token]))
