"""Long runs: `make stress` (deselected from the quick suite)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tickets.buyer import Delays
from tickets.runner import RunResult

Sale = Callable[..., RunResult]


@pytest.mark.stress
@pytest.mark.timeout(900)
@pytest.mark.parametrize("strategy", ["process", "file"])
def test_locked_strategies_never_oversell_under_heavy_contention(sale: Sale, strategy: str) -> None:
    for seed in range(10):
        result = sale(buyers=500, tickets=200, strategy=strategy, seed=seed, delays=Delays.none())
        assert (result.report.sold, result.remaining, result.report.oversold) == (200, 0, 0)
        assert result.passed


@pytest.mark.stress
@pytest.mark.timeout(1800)
def test_unlocked_demo_is_not_flaky(store: object, capsys: pytest.CaptureFixture[str]) -> None:
    """Default settings: >= 99 of 100 unlocked trials oversell, 100 of 100 locked ones don't."""
    from pathlib import Path

    from tickets.race import run_race
    from tickets.runner import RunConfig

    assert isinstance(store, Path)
    race = run_race(RunConfig(store=store, buyers=50, tickets=10), ["none", "file"], trials=100)
    none, file = race.sides
    with capsys.disabled():
        print(
            f"\nunlocked: {none.oversold_trials}/100 trials oversold "
            f"(min {none.oversold_min}, median {none.oversold_median}, max {none.oversold_max}); "
            f"locked: {file.oversold_trials}/100 oversold, "
            f"{file.failed_check_trials} failed a check"
        )
    assert none.oversold_trials >= 99
    assert file.oversold_trials == 0 and file.failed_check_trials == 0
    assert race.verdict.passed
