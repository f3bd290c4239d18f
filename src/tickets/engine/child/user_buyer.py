"""The user's own purchase code as the buyer: ``tickets buy --buy FILE.py:FUNC``.

Each buyer process calls the function once with a :class:`StoreHandle` and
records what it returns: a seat (the count it took, an int) is a sale,
``None`` is "sold out", anything else, or an exception, is an unknown
outcome (``info``): the function may have written the store before it
failed. The exception's one-line summary goes in the history, its traceback
to the log file beside it (``<history>.log``), never to the terminal: a
buyer's stdout and stderr go to /dev/null, so the function's prints do too.

The function is checked before anything starts in a throwaway process
(:func:`check_here`, under a warden: see :mod:`tickets.engine.buyer_check`), never
in the parent, and loaded again in the process that starts the buyers, so
that every forked buyer inherits it imported.
"""

from __future__ import annotations

import os
import sys
import time

from ...check.events import classify, sold, sold_out, unknown_error
from ...constants import MAX_COUNT, TYPE_CHECKING
from ...errors import UsageProblem
from ...stores.base import Refused

if TYPE_CHECKING:
    from collections.abc import Callable

    from ...check.events import Outcome
    from ...stores.base import RawHandle
    from .session import BuyerSession, WatchedLock

    #: The user's function: a store handle in, a seat (or None) out, it says.
    BuyerFunction = Callable[["StoreHandle"], object]

#: The name a buyer file is imported under (one per process: one --buy per run).
MODULE_NAME = "tickets_user_buyer"
#: Functions already loaded in this process, by spec: a race checks its side
#: once per trial, and every buyer the launcher forks inherits the launcher's.
_LOADED: dict[str, BuyerFunction] = {}


class BuyerCodeError(UsageProblem):
    """``--buy`` names nothing a buyer can call (a usage error, exit 2)."""


def split(spec: str) -> tuple[str, str]:
    """``path/to/file.py:func`` or ``package.module:func`` -> (where, name)."""
    where, sep, name = spec.rpartition(":")
    if not sep or not where or not name.isidentifier():
        raise BuyerCodeError(f"{spec!r}: write FILE.py:FUNCTION or MODULE:FUNCTION")
    return where, name


def load(spec: str) -> BuyerFunction:
    """Import the buyer's module and return its function (once per process),
    or raise :class:`BuyerCodeError` with one line that names what is wrong."""
    if spec not in _LOADED:
        _LOADED[spec] = _import(spec)
    return _LOADED[spec]


def _import(spec: str) -> BuyerFunction:
    import importlib
    import importlib.util

    where, name = split(spec)
    try:
        if where.endswith(".py") or os.sep in where:
            if not os.path.isfile(where):
                raise BuyerCodeError(f"{where}: no such file")
            folder = os.path.dirname(os.path.abspath(where))
            if folder not in sys.path:
                # its own sibling modules import, after the tool's own and the
                # standard library (a sqlite3.py or filelock.py of the user's
                # must not stand in for the ones the tool imports)
                sys.path.append(folder)
            found = importlib.util.spec_from_file_location(MODULE_NAME, where)
            if found is None or found.loader is None:
                raise BuyerCodeError(f"{where}: not a Python file")
            module = importlib.util.module_from_spec(found)
            sys.modules[MODULE_NAME] = module
            found.loader.exec_module(module)
        else:
            if os.getcwd() not in sys.path:
                sys.path.append(os.getcwd())  # modules here, after the tool's own
            module = importlib.import_module(where)
    except BuyerCodeError:
        raise
    except BaseException as exc:  # its import failed, however: one line
        raise BuyerCodeError(f"{where}: cannot be imported ({summary(exc)})") from None
    function = getattr(module, name, None)
    if function is None:
        raise BuyerCodeError(f"{where} has no function {name!r}")
    if not callable(function):
        raise BuyerCodeError(f"{where}: {name} is not a function")
    return function  # type: ignore[no-any-return]


def signature_problem(spec: str, function: BuyerFunction) -> str | None:
    """What is wrong with the function's signature for a buyer, if anything."""
    import inspect

    try:
        inspect.signature(function).bind(None)
    except TypeError:
        return f"{spec}: the function must take one argument (the store handle)"
    except ValueError:  # a builtin without a signature: let the call tell
        pass
    return None


def check_here(spec: str, result_fd: int) -> None:
    """A throwaway process's check of ``--buy`` (see tickets.engine.buyer_check):
    import the module with descriptors 1 and 2 on /dev/null, look at the
    function, and write the one-line answer ("ok" or what is wrong) to
    ``result_fd``."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    try:
        problem = signature_problem(spec, load(spec))
    except BuyerCodeError as exc:
        problem = str(exc)
    os.write(result_fd, (problem or "").encode(errors="replace")[:4000] or b"ok")


def summary(exc: BaseException) -> str:
    """``KeyError: 'count'``: the exception in one line."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class HollowLock:
    """``store.lock`` under a strategy whose critical section is the store's
    own take (``atomic``; ``transaction`` on Redis): it would exclude
    nobody, and correct code would be judged an oversell. Entering it says
    so, an error the verdict names."""

    def __init__(self, strategy: str) -> None:
        self.strategy = strategy

    def __enter__(self) -> HollowLock:
        raise RuntimeError(
            f"store.lock excludes nobody under --lock {self.strategy} (the store's own take is "
            "its critical section): sell with store.take(), or run under --lock file, flock or "
            "process"
        )

    def __exit__(self, *exc: object) -> None:
        return None


class StoreHandle:
    """What the user's function gets: the store's own operations, its raw
    client, and the lock of the run's ``--lock`` strategy.

    - ``read()``: the count; ``write(n)``: set it; ``take()``: the store's
      own indivisible take-one (SQLite, Redis), the seat or None;
    - ``wait()``: the run's simulated write delay (the race window);
    - ``lock``: a context manager (``with handle.lock: ...``);
    - ``raw``: the JSON file's path, a ``sqlite3.Connection`` (autocommit),
      a ``redis.Redis`` or a ``psycopg.Connection`` (autocommit); ``kind``:
      ``json``, ``sqlite``, ``redis`` or ``postgres``; ``key``: the Redis
      key or the PostgreSQL row's, ``table``: the PostgreSQL table (else None);
    - ``buyer``: this buyer's number.
    """

    def __init__(
        self, session: BuyerSession, lock: WatchedLock, buyer: int, hollow: str | None = None
    ) -> None:
        self._session = session
        self.lock: WatchedLock | HollowLock = lock if hollow is None else HollowLock(hollow)
        self.buyer = buyer
        self.kind = session.store.kind
        self.key: str | None = session.store.spec.key
        self.table: str | None = session.store.spec.table

    @property
    def raw(self) -> RawHandle:
        return self._session.store.raw_handle()

    def read(self) -> int:
        return self._session.read()

    def write(self, count: int) -> None:
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_COUNT:
            raise ValueError(f"write({count!r}): a count is a whole number from 0")
        self._session.write(count)

    def take(self) -> int | None:
        return self._session.take()

    def wait(self) -> None:
        self._session.wait()


def outcome(
    function: BuyerFunction,
    session: BuyerSession,
    lock: WatchedLock,
    log: str | None,
    hollow: str | None = None,
) -> Outcome:
    """Call the user's function once; how it ended, as a history event's
    fields. ``hollow``: the strategy's name when its lock excludes nobody
    (see :class:`HollowLock`)."""
    session.begin()
    buyer = session.base["buyer"]
    handle = StoreHandle(session, lock, buyer, hollow)
    while True:
        try:
            result = function(handle)
        except Refused as exc:
            # The database refused the handle's transaction as unserializable
            # and rolled it back: with --retries the function is called again,
            # as a retrying client calls its purchase again.
            if session.again():
                continue
            return _raised(exc, log, buyer)
        except BaseException as exc:  # whatever it raised, SystemExit too: unknown
            return _raised(exc, log, buyer)
        break
    if result is None:
        return sold_out()
    if type(result) is int and 0 < result <= MAX_COUNT:
        return sold(result)
    shown = repr(result)[:60]
    return unknown_error(f"returned {shown}, not a seat (an int) or None")


def _raised(exc: BaseException, log: str | None, buyer: int) -> Outcome:
    """What the user's function raised: unknown (it may have written first)."""
    if log is not None:
        write_traceback(log, buyer, exc)
    return classify(exc, True, summary(exc), ours=False)


def write_traceback(log: str, buyer: int, exc: BaseException) -> None:
    """Append the traceback to the log, in one write (buyers share the file)."""
    import traceback

    text = "".join(traceback.format_exception(exc))
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    data = f"--- buyer {buyer} (pid {os.getpid()}) at {stamp}\n{text}".encode(errors="replace")
    append_log(log, data)


def append_log(log: str, data: bytes) -> None:
    """Append to the log beside the history in one write (buyers share it).
    Only a regular file: a symlink, a FIFO (never waited on) or a device
    there is left alone. No log, no harm: the summary is in the history."""
    import stat

    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(log, flags, 0o644)
    except OSError:
        return
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.write(fd, data)
    except OSError:
        pass
    finally:
        os.close(fd)


if __name__ == "__main__":  # python -m tickets.engine.child.user_buyer SPEC RESULT_FD LIFELINE
    from .warden import ward

    ward(int(sys.argv[3]))  # what the import starts dies with the check
    check_here(sys.argv[1], int(sys.argv[2]))
