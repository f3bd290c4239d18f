"""The same sale under several strategies, side by side, over K trials.

Every strategy gets the same buyers, stock, delays and, trial by trial, the
same seed, so the only difference between the sides is the lock. Oversell by
a strategy that does not exclude (``none``, ``per-buyer``) is the expected
demonstration; a strategy that excludes must pass every check.

A side is named by a word: a strategy's name, or the user's own buyer
(``FILE.py:FUNC``, ``MODULE:FUNC``), which runs under the base config's
lock and is there to be judged, so it counts as one that excludes. The
word is what the tables and the JSON document show.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TypedDict

from ..locking.strategies import STRATEGIES
from .buy import run_buy
from .config import BuyConfig, ConfigError
from .ledger import Progress, RunResult

MAX_TRIALS = 1000


def is_user_code(side: str) -> bool:
    """Is this side the user's own buyer (``FILE.py:FUNC``, ``MODULE:FUNC``)?
    No strategy's name has a colon."""
    return ":" in side


def side_label(side: str) -> str:
    """A side as tables name it: a strategy, or ``booking.py:take_ticket``
    for the user's code (its folder left out)."""
    if not is_user_code(side):
        return side
    where, _, function = side.rpartition(":")
    return f"{where.rsplit('/', 1)[-1]}:{function}"


def side_excludes(side: str) -> bool:
    """Is this side meant to keep the sale correct? The user's own code is:
    it is there to be judged."""
    return is_user_code(side) or STRATEGIES[side].excludes


def trial_seed(seed: int, trial: int) -> int:
    """Trial i's seed: new every trial, reproducible from ``--seed``."""
    return seed + trial


@dataclass(frozen=True)
class RaceRun:
    #: the side: a strategy's name, or the user's buyer
    strategy: str
    trial: int
    result: RunResult

    @property
    def excludes(self) -> bool:
        return side_excludes(self.strategy)


class SideDoc(TypedDict):
    """One side of a race as ``race --json`` lists it (``strategies``)."""

    strategy: str
    excludes: bool
    trials: int
    oversold_trials: int
    oversold_min: int
    oversold_median: float
    oversold_max: int
    failed_check_trials: int
    unproven_trials: int
    unknown: int
    turned_away: int
    retries: int
    duration_median_s: float
    purchases_per_s_median: float


@dataclass(frozen=True)
class SideStats:
    """One strategy over its trials."""

    strategy: str
    trials: int
    oversold_trials: int
    oversold_min: int
    oversold_median: float
    oversold_max: int
    sold_max: int
    failed_check_trials: int
    unknown_total: int
    duration_median_s: float
    purchases_per_s_median: float
    initial: int
    #: trials in which no check failed but nothing was proven (no stock,
    #: nobody could take part, the run could not test the sale)
    unproven_trials: int = 0
    #: why the first of them proved nothing
    unproven_why: str = ""
    #: operations turned away (busy, refused), and transactions run again, over its trials
    turned_away_total: int = 0
    retries_total: int = 0

    @property
    def excludes(self) -> bool:
        return side_excludes(self.strategy)

    def as_dict(self) -> SideDoc:
        return {
            "strategy": self.strategy,
            "excludes": self.excludes,
            "trials": self.trials,
            "oversold_trials": self.oversold_trials,
            "oversold_min": self.oversold_min,
            "oversold_median": self.oversold_median,
            "oversold_max": self.oversold_max,
            "failed_check_trials": self.failed_check_trials,
            "unproven_trials": self.unproven_trials,
            "unknown": self.unknown_total,
            "turned_away": self.turned_away_total,
            "retries": self.retries_total,
            "duration_median_s": round(self.duration_median_s, 6),
            "purchases_per_s_median": round(self.purchases_per_s_median, 1),
        }


def unproven(result: RunResult) -> bool:
    """A trial that failed no check and proved nothing."""
    return not result.passed and result.aborted is None and not result.report.failures()


def side_stats(strategy: str, results: Sequence[RunResult]) -> SideStats:
    oversold = [r.report.oversold for r in results]
    untested = [r for r in results if unproven(r)]
    return SideStats(
        strategy=strategy,
        trials=len(results),
        oversold_trials=sum(1 for x in oversold if x > 0),
        oversold_min=min(oversold),
        oversold_median=statistics.median(oversold),
        oversold_max=max(oversold),
        sold_max=max(r.report.sold for r in results),
        failed_check_trials=sum(1 for r in results if not r.passed) - len(untested),
        unknown_total=sum(r.report.unknown for r in results),
        turned_away_total=sum(r.report.refused for r in results),
        retries_total=sum(r.report.retries for r in results),
        duration_median_s=statistics.median(r.duration_s for r in results),
        purchases_per_s_median=statistics.median(r.purchases_per_s for r in results),
        initial=results[0].initial or 0,  # a race reads its own store
        unproven_trials=len(untested),
        unproven_why=next((r.run_error or r.report.untested or "" for r in untested), ""),
    )


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reasons: tuple[str, ...]
    #: nothing failed, but some trial proved nothing (exit 5)
    unproven: bool = False


def judge(
    sides: Sequence[SideStats],
    *,
    max_oversold: int | None = None,
    expect_oversell: bool = False,
) -> Verdict:
    """Pass when every excluding strategy passed every check in every trial.

    ``max_oversold`` caps the oversell of every run of the sides under test
    (a threshold, like k6's): the strategies that exclude and the user's own
    code, never a demonstration side that is there to oversell;
    ``expect_oversell`` fails a strategy that does not exclude when none of
    its trials oversold (the demonstration did not show).
    """
    reasons = []
    for side in sides:
        if side.excludes and side.failed_check_trials:
            reasons.append(
                f"{side.strategy} failed a check in {side.failed_check_trials} of {side.trials} "
                f"trial(s) (oversold up to {side.oversold_max})"
            )
        if max_oversold is not None and side.excludes and side.oversold_max > max_oversold:
            reasons.append(
                f"{side.strategy} oversold {side.oversold_max}, "
                f"more than --max-oversold {max_oversold}"
            )
        tested = side.trials - side.unproven_trials  # a trial in which nothing raced cannot
        if expect_oversell and not side.excludes and side.oversold_trials == 0 and tested:
            reasons.append(f"{side.strategy} did not oversell in {tested} trial(s)")
    if reasons:
        return Verdict(False, tuple(reasons))
    untested = [
        f"{s.strategy} proved nothing in {s.unproven_trials} of {s.trials} trial(s) "
        f"({s.unproven_why})"
        for s in sides
        if s.unproven_trials
    ]
    return Verdict(not untested, tuple(untested), unproven=bool(untested))


def in_words(side: SideStats) -> str:
    """ "without a lock 10 tickets were sold 23 times" (the worst trial)."""
    if is_user_code(side.strategy):
        label = f"with {side_label(side.strategy)}"
    else:
        label = STRATEGIES[side.strategy].phrase
    if side.sold_max < side.initial:  # fewer buyers than tickets, or some turned away
        text = f"{label} {side.sold_max} of {side.initial} tickets were sold"
    else:
        times = "once" if side.sold_max == 1 else f"{side.sold_max} times"
        tickets = "1 ticket was" if side.initial == 1 else f"{side.initial} tickets were"
        text = f"{label} {tickets} sold {times}"
    if side.trials > 1:
        text += (
            f" at worst; {side.oversold_trials} of {side.trials} trials oversold"
            if side.oversold_trials
            else f" at most; none of {side.trials} trials oversold"
        )
    return text


@dataclass(frozen=True)
class RaceResult:
    runs: tuple[RaceRun, ...]
    sides: tuple[SideStats, ...]
    verdict: Verdict


def run_race(
    base: BuyConfig,
    strategies: Sequence[str],
    trials: int = 1,
    *,
    max_oversold: int | None = None,
    expect_oversell: bool = False,
    progress: Callable[[str, Progress], None] | None = None,
) -> RaceResult:
    """Run every strategy ``trials`` times on the same sale, one run at a time."""
    if not strategies:
        raise ConfigError("name at least one strategy")
    for name in strategies:
        if name not in STRATEGIES and not is_user_code(name):
            raise ConfigError(
                f"unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}"
                " or name your own buyer, FILE.py:FUNC"
            )
    if len(set(strategies)) != len(strategies):
        raise ConfigError("a strategy is named twice")
    if not 1 <= trials <= MAX_TRIALS:
        raise ConfigError(f"trials must be from 1 to {MAX_TRIALS}, got {trials}")
    if max_oversold is not None and not any(side_excludes(n) for n in strategies):
        raise ConfigError(
            f"--max-oversold holds the sides under test to a limit, and {', '.join(strategies)} "
            "only demonstrate an oversell; race a lock or your own FILE.py:FUNC beside them "
            "(--expect-oversell requires the demonstration to show)"
        )
    if base.history is not None and (trials > 1 or len(strategies) > 1):
        raise ConfigError("one --history path cannot hold several runs; leave it out")
    runs: list[RaceRun] = []
    for trial in range(trials):
        for name in strategies:
            config = side_config(base, name, trial)
            label = f"{name}, trial {trial + 1}/{trials}"
            hook = None if progress is None else _labelled(progress, label)
            try:
                runs.append(RaceRun(name, trial, run_buy(config, progress=hook)))
            except KeyboardInterrupt as interrupt:  # Ctrl-C, SIGTERM, SIGHUP
                stopped = getattr(interrupt, "result", None)
                if stopped is not None:
                    runs.append(RaceRun(name, trial, stopped))
                reason = f"stopped during {label}: {stopped.aborted if stopped else 'interrupted'}"
                interrupt.result = _race_result(  # type: ignore[attr-defined]
                    runs, strategies, Verdict(False, (reason,))
                )
                raise
    return _race_result(runs, strategies, None, max_oversold, expect_oversell)


def side_config(base: BuyConfig, name: str, trial: int) -> BuyConfig:
    """One side's run: a strategy, or the user's own buyer under the base's lock."""
    seed = trial_seed(base.seed, trial)
    if is_user_code(name):
        return replace(base, buy=name, seed=seed, mode="race")
    return replace(base, strategy=STRATEGIES[name], buy=None, seed=seed, mode="race")


def _race_result(
    runs: list[RaceRun],
    strategies: Sequence[str],
    verdict: Verdict | None,
    max_oversold: int | None = None,
    expect_oversell: bool = False,
) -> RaceResult:
    """The sides of the strategies that ran, and their verdict (judged unless given)."""
    ran = [n for n in strategies if any(r.strategy == n for r in runs)]
    sides = tuple(side_stats(n, [r.result for r in runs if r.strategy == n]) for n in ran)
    if verdict is None:
        verdict = judge(sides, max_oversold=max_oversold, expect_oversell=expect_oversell)
    return RaceResult(tuple(runs), sides, verdict)


def _labelled(progress: Callable[[str, Progress], None], label: str) -> Callable[[Progress], None]:
    return lambda p: progress(label, p)
