"""Real sales on real processes and a real store file."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from helpers import kept, read_json_lines, spec_of
from tickets.check.history import read
from tickets.check.operations import SOLD_OUT
from tickets.check.verdict import check_history
from tickets.engine.buy import run_buy
from tickets.engine.child.plan import Delays
from tickets.engine.config import BuyConfig, ConfigError
from tickets.engine.ledger import RunResult
from tickets.stores import json_file as st
from tickets.stores.base import StoreError

Sale = Callable[..., RunResult]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("strategy", ["process", "file", "flock"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_locked_strategies_sell_exactly_the_stock(sale: Sale, strategy: str, seed: int) -> None:
    result = sale(buyers=50, tickets=10, strategy=strategy, seed=seed, delays=Delays())
    assert result.report.sold == 10
    assert result.remaining == 0
    assert result.report.oversold == 0
    assert result.report.unknown == 0
    assert result.passed
    seats = [r.seat for r in result.rows if r.result == "ok"]
    assert sorted(s for s in seats if isinstance(s, int)) == list(range(1, 11)) == sorted(seats)  # type: ignore[type-var]
    assert Counter(r.reason for r in result.rows if r.result == "fail") == {"sold out": 40}
    # Linearizable too, and tickets check of the history says exactly the same.
    names = [c.name for c in result.report.checks]
    assert "real-time order" in names and "no undersell" in names
    assert check_history(read(kept(result))) == result.report


@pytest.mark.timeout(120)
@pytest.mark.parametrize("strategy", ["none", "per-buyer"])
def test_unlocked_strategies_oversell_when_the_window_is_wide(sale: Sale, strategy: str) -> None:
    # No search delay and a 30-60 ms write window: all 20 buyers read 5
    # before anyone writes, so the overlap is certain, not likely.
    result = sale(buyers=20, tickets=5, strategy=strategy, delays=Delays(0.0, 0.06))
    assert result.report.oversold > 0
    assert result.report.double_sold
    assert not result.passed
    failed = {c.name for c in result.report.failures()}
    assert {"no seat sold twice", "conservation"} <= failed
    assert check_history(read(kept(result))) == result.report


@pytest.mark.timeout(60)
def test_history_records_every_buyer(sale: Sale) -> None:
    result = sale(buyers=12, tickets=4, strategy="file")
    lines = read_json_lines(kept(result))
    assert lines[0]["type"] == "run" and lines[0]["initial"] == 4
    assert lines[-1]["type"] == "end" and lines[-1]["remaining"] == 0
    per_buyer: dict[int, list[str]] = {}
    for ev in lines[1:-1]:
        per_buyer.setdefault(ev["buyer"], []).append(ev["type"])
    assert sorted(per_buyer) == list(range(12))
    assert all(kinds[0] == "invoke" and kinds[-1] in ("ok", "fail") for kinds in per_buyer.values())
    ok = [ev for ev in lines if ev["type"] == "ok"]
    assert all(ev["t_start"] <= ev["t_search"] <= ev["t_locked"] <= ev["t"] for ev in ok)
    assert len({ev["pid"] for ev in ok}) == 4
    assert read(kept(result)).remaining == 0


@pytest.mark.timeout(60)
def test_keep_stock_sells_what_is_left(sale: Sale, store: Path) -> None:
    st.save(store, 7)
    first = sale(buyers=4, tickets=None, strategy="file")
    assert (first.initial, first.report.sold, first.remaining) == (7, 4, 3)
    second = sale(buyers=5, tickets=None, strategy="file")
    assert (second.initial, second.report.sold, second.remaining) == (3, 3, 0)
    assert second.passed


@pytest.mark.timeout(120)
@pytest.mark.parametrize("method", ["spawn", "forkserver"])
@pytest.mark.parametrize("strategy", ["process", "file", "flock"])
def test_other_start_methods(sale: Sale, method: str, strategy: str) -> None:
    # Searches of up to 200 ms: a spawned buyer past the gate still has its
    # first steps to load, and on a busy machine (another suite beside this
    # one) 20 ms searches were run in turn: nothing raced, NOT PROVEN.
    delays = Delays(0.2, 0.01)
    result = sale(buyers=6, tickets=3, strategy=strategy, start_method=method, delays=delays)
    assert result.report.sold == 3 and result.passed, result.report.contention


@pytest.mark.timeout(120)
@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_per_buyer_locks_reach_spawned_buyers(
    sale: Sale, method: str, capfd: pytest.CaptureFixture[str]
) -> None:
    """Each buyer's own lock used to be unlinked before a spawned child could
    open it: 18 of 20 buyers died with FileNotFoundError, and the run passed."""
    result = sale(buyers=8, tickets=20, strategy="per-buyer", start_method=method)
    assert [r.result for r in result.rows] == ["ok"] * 8, [r.reason for r in result.rows]
    assert result.report.unknown == 0
    assert capfd.readouterr().err == ""


@pytest.mark.timeout(60)
def test_children_never_print(sale: Sale, capfd: pytest.CaptureFixture[str]) -> None:
    sale(buyers=10, tickets=3, strategy="none", delays=Delays(0.0, 0.01))
    out, err = capfd.readouterr()
    assert out == "" and err == ""


@pytest.mark.timeout(60)
def test_no_delay_run_is_fast_enough_to_finish(sale: Sale) -> None:
    result = sale(buyers=200, tickets=50, strategy="file", delays=Delays.none())
    assert result.report.sold == 50 and result.passed


@pytest.mark.parametrize(
    "change, message",
    [
        ({"buyers": 0}, "buyers must be"),
        ({"buyers": 10_000_001}, "buyers must be"),
        ({"strategy": "spin"}, "unknown strategy"),
        ({"tickets": -1}, "tickets must be"),
        ({"lock_timeout": 0}, "lock timeout"),
        ({"start_method": "teleport"}, "not available"),
    ],
)
def test_bad_config_changes_nothing(
    store: Path, tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    cfg: dict[str, Any] = {"store": store, "buyers": 3, **change}
    with pytest.raises(ConfigError, match=message):
        run_buy(BuyConfig(**cfg))
    assert list(tmp_path.iterdir()) == []


def test_store_error_discards_the_history(store: Path, tmp_path: Path) -> None:
    store.write_text('{"count": "ten"}')
    with pytest.raises(StoreError):
        run_buy(BuyConfig(store=spec_of(store), buyers=3, tickets=None))
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["tickets.json"]
    assert json.loads(store.read_text()) == {"count": "ten"}


@pytest.mark.timeout(60)
def test_lock_timeout_changes_nothing(store: Path, tmp_path: Path) -> None:
    import fcntl
    import os

    from helpers import snapshot
    from tickets.stores.json_file import lock_path

    st.save(store, 5)
    held = os.open(lock_path(store), os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(held, fcntl.LOCK_EX)
    before = snapshot(tmp_path)
    try:
        with pytest.raises(StoreError, match="held by another process"):
            run_buy(BuyConfig(store=spec_of(store), buyers=3, lock_timeout=0.2))
    finally:
        os.close(held)
    assert snapshot(tmp_path) == before
    assert not (tmp_path / "history").exists()


def test_draws_are_seeded_and_uniform() -> None:
    from tickets.engine.child.plan import Draws

    a = [Draws(7, 0, 3).random() for _ in range(3)]
    assert a == [Draws(7, 0, 3).random() for _ in range(3)]
    d = Draws(7, 0, 3)
    values = [d.uniform(2.0, 4.0) for _ in range(10_000)]
    assert 2.0 <= min(values) and max(values) < 4.0
    assert 2.95 < sum(values) / len(values) < 3.05
    assert Draws(7, 0, 3).random() != Draws(7, 0, 4).random() != Draws(8, 0, 3).random()


def test_each_buyer_draws_its_own_delays_and_none_without_delays() -> None:
    from tickets.engine.child.plan import Delays, buyer_rng

    delays = Delays(search=0.02, write=0.004)
    drawn = [delays.for_buyer(5, b) for b in range(50)]
    assert drawn == [delays.draw(buyer_rng(5, b)) for b in range(50)]
    assert len(set(drawn)) == 50
    assert all(0 <= s < 0.02 and 0.002 <= w < 0.004 for s, w in drawn)
    assert {Delays.none().for_buyer(5, b) for b in range(50)} == {(0.0, 0.0)}


def test_buyers_who_see_none_left_walk_away_without_the_lock(sale: Sale, store: Path) -> None:
    """Sold out at the search: the buyer reports and leaves without queueing."""
    result = sale(buyers=20, tickets=0)
    assert result.report.sold == 0 and not result.report.failures()
    assert result.report.unproven and not result.passed  # no stock: nothing tested
    assert read(kept(result)).ops.count(SOLD_OUT) == 20
    events = read_json_lines(kept(result))
    assert [e["reason"] for e in events if e["type"] == "fail"] == ["sold out"] * 20
    assert not any("t_locked" in e for e in events)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("late_orders", [False, True], ids=["orders-sent", "launcher-gone-first"])
def test_a_launcher_that_cannot_start_stops_the_run(
    sale: Sale, store: Path, monkeypatch: pytest.MonkeyPatch, late_orders: bool
) -> None:
    import sys
    import time
    from types import SimpleNamespace

    from tickets.engine import launcher_handle as launcher

    monkeypatch.setattr(sys, "executable", "/bin/false")
    if late_orders:
        # The launcher exits before its orders are written: the write meets a
        # closed pipe, which must end the run like any other early exit.
        def slow_dumps(doc: Any) -> str:
            time.sleep(0.5)
            return json.dumps(doc)

        monkeypatch.setattr(launcher, "json", SimpleNamespace(dumps=slow_dumps))
    result = sale(buyers=5, tickets=3)
    assert result.aborted is not None and "launcher exited with code 1" in result.aborted
    assert result.report.unknown == 5 and st.load(store) == 3
    assert all("never started" in (r.reason or "") for r in result.rows)
    events = read_json_lines(kept(result))
    assert sum(e["type"] == "info" for e in events) == 5


@pytest.mark.timeout(60)
def test_a_launcher_that_cannot_be_executed_stops_the_run(
    sale: Sale, store: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import sys

    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    result = sale(buyers=4, tickets=2)
    assert result.aborted is not None
    assert "could not start the buyer launcher" in result.aborted
    assert result.report.unknown == 4 and st.load(store) == 2
    assert all("never started" in (r.reason or "") for r in result.rows)
