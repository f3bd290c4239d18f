"""`tickets race`: the comparison, trial statistics and the CI exit codes."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import Result

from helpers import assert_run_fields, kept, read_json_lines, spec_of
from tickets.engine.child.plan import Delays
from tickets.engine.config import BuyConfig, ConfigError
from tickets.engine.race import SideStats, in_words, judge, run_race, trial_seed

Invoke = Callable[..., Result]
WIDE = ["--search-delay", "0", "--write-delay", "40"]  # every unlocked run oversells
SMALL = ["--buyers", "10", "--tickets", "3"]


def side(strategy: str, oversold: list[int], failed: int | None = None) -> SideStats:
    return SideStats(
        strategy=strategy,
        trials=len(oversold),
        oversold_trials=sum(1 for x in oversold if x),
        oversold_min=min(oversold),
        oversold_median=sorted(oversold)[len(oversold) // 2],
        oversold_max=max(oversold),
        sold_max=10 + max(oversold),
        failed_check_trials=sum(1 for x in oversold if x) if failed is None else failed,
        unknown_total=0,
        duration_median_s=0.1,
        purchases_per_s_median=100.0,
        initial=10,
    )


def test_judge_matrix() -> None:
    clean, demo = side("file", [0, 0]), side("none", [13, 0])
    assert judge([clean, demo]).passed  # unlocked oversell is the demonstration
    assert not judge([side("process", [0, 2]), demo]).passed
    assert not judge([side("file", [0], failed=1)]).passed  # a broken check, no oversell
    # --max-oversold holds the sides under test; the demonstration oversells freely
    assert judge([clean, demo], max_oversold=0).passed
    verdict = judge([side("file", [0, 3], failed=0), demo], max_oversold=2)
    assert not verdict.passed and verdict.reasons == (
        "file oversold 3, more than --max-oversold 2",
    )
    mine = side("shop.py:buy", [0, 4], failed=0)  # the user's code is under test
    assert judge([mine, demo], max_oversold=4).passed
    assert not judge([mine, demo], max_oversold=3).passed
    assert judge([clean, demo], expect_oversell=True).passed  # one trial of two oversold
    verdict = judge([clean, side("per-buyer", [0, 0])], expect_oversell=True)
    assert not verdict.passed and "did not oversell" in verdict.reasons[0]


def test_in_words() -> None:
    assert in_words(side("none", [13])) == "without a lock 10 tickets were sold 23 times"
    text = in_words(side("file", [0, 0, 0]))
    assert (
        text
        == "with the file lock 10 tickets were sold 10 times at most; none of 3 trials oversold"
    )


@pytest.mark.timeout(120)
def test_real_race_over_trials(store: Path) -> None:
    base = BuyConfig(store=spec_of(store), buyers=10, tickets=3, seed=7, delays=Delays(0.0, 0.04))
    race = run_race(base, ["none", "file"], trials=3)
    assert [(r.strategy, r.trial) for r in race.runs] == [
        ("none", 0),
        ("file", 0),
        ("none", 1),
        ("file", 1),
        ("none", 2),
        ("file", 2),
    ]
    none, file = race.sides
    assert (none.oversold_trials, file.oversold_trials) == (3, 0)
    assert none.oversold_min > 0 and file.oversold_max == 0
    assert race.verdict.passed
    # Same seed on both sides of a trial, a new one each trial.
    seeds = [read_json_lines(kept(r.result))[0]["seed"] for r in race.runs]
    assert seeds == [7, 7, 8, 8, 9, 9] == [trial_seed(7, t) for t in (0, 0, 1, 1, 2, 2)]


def test_race_config_errors(store: Path) -> None:
    base = BuyConfig(store=spec_of(store), buyers=2)
    for kwargs, message in (
        ({"strategies": []}, "at least one"),
        ({"strategies": ["none", "none"]}, "twice"),
        ({"strategies": ["none"], "trials": 0}, "trials"),
    ):
        with pytest.raises(ConfigError, match=message):
            run_race(base, **kwargs)
    with pytest.raises(ConfigError, match="--history"):
        run_race(replace(base, history=store.parent / "h.jsonl"), ["none", "file"])


@pytest.mark.timeout(120)
def test_cli_race_json(invoke: Invoke) -> None:
    result = invoke("race", *SMALL, *WIDE, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["passed"] is True
    assert [(r["strategy"], r["trial"]) for r in doc["runs"]] == [("file", 0), ("none", 0)]
    for run in doc["runs"]:
        assert_run_fields(run)
    assert doc["runs"][0]["oversold"] == 0 and doc["runs"][1]["oversold"] > 0


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    "args, code",
    [
        (["--no-lock"], 0),
        (["--no-lock", "--expect-oversell"], 0),
        (["--no-lock", "--max-oversold", "0"], 2),  # nothing under test to hold to it
        (["--max-oversold", "0"], 0),  # the file lock beside the unlocked demonstration
        (["--strategies", "process,per-buyer", "--expect-oversell"], 0),
        (["--lock", "process", "--max-oversold", "1000"], 0),
    ],
)
def test_cli_exit_code_matrix(invoke: Invoke, args: list[str], code: int) -> None:
    result = invoke("race", *SMALL, *WIDE, *args)
    assert result.exit_code == code, result.output


@pytest.mark.timeout(60)
def test_expect_oversell_of_a_demo_that_could_not_race_is_not_proven(invoke: Invoke) -> None:
    # One buyer cannot race anyone: the unlocked side sells exactly the stock,
    # and that proves nothing either way (not a failed demonstration).
    result = invoke("race", "--no-lock", "--buyers", "1", "--tickets", "3", "--expect-oversell")
    assert result.exit_code == 5
    assert "did not oversell" not in result.output and "one purchase cannot race" in result.output


@pytest.mark.timeout(60)
def test_cli_race_table(invoke: Invoke) -> None:
    result = invoke("race", *SMALL, *WIDE)
    assert result.exit_code == 0
    out = result.output
    for needle in (
        "file",
        "none",
        "oversold",
        "double-sold seats",
        "purchases/s",
        "without a lock 3 tickets were sold 10 times",
        "PASSED",
    ):
        assert needle in out, needle


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--strategies", "none,spin"], "spin"),
        (["--strategies", "none,none"], "twice"),
        (["--strategies", "none", "--no-lock"], "--strategies"),
        (["--no-lock", "--lock", "file"], "--no-lock"),
        (["--keep-stock"], "--keep-stock"),
        (["--trials", "0"], "--trials"),
        (["--trials", "2", "--history", "h.jsonl"], "--history"),
        (["--max-oversold", "-1"], "--max-oversold"),
    ],
)
def test_cli_race_usage_errors(
    invoke: Invoke, tmp_path: Path, args: list[str], needle: str
) -> None:
    result = invoke("race", *args)
    assert result.exit_code == 2, result.output
    assert needle in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.timeout(120)
def test_a_demonstration_says_demonstrated_and_the_verdict_comes_last(invoke: Invoke) -> None:
    """`race --no-lock` ran no locking strategy: it does not say PASSED. Its
    failing checks are marked expected; the verdict is the last line, after
    the timeline."""
    args = ["race", "--no-lock", "--buyers", "20", "--tickets", "5", "--search-delay", "0"]
    result = invoke(*args, "--write-delay", "40", "--timeline")
    assert result.exit_code == 0
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("DEMONSTRATED: without a lock 5 tickets were sold")
    assert lines[-1].endswith("(expected)") and "PASSED" not in result.output
    assert "FAIL (expected)" in result.output
    timeline_at = next(i for i, line in enumerate(lines) if "seat(s) sold twice" in line)
    assert timeline_at < len(lines) - 1
    both = (
        invoke(
            "race", "--buyers", "20", "--tickets", "5", "--search-delay", "0", "--write-delay", "40"
        )
        .output.strip()
        .splitlines()
    )
    verdict = " ".join(both[both.index(next(x for x in both if x.startswith("PASSED"))) :])
    assert verdict.startswith("PASSED: every locking strategy sold exactly the stock; without")
    assert verdict.endswith("(expected)")  # the last thing said, however it wraps


@pytest.mark.timeout(120)
def test_race_draws_the_locked_run_above_the_unlocked_one(invoke: Invoke, tmp_path: Path) -> None:
    import xml.etree.ElementTree as ET

    svg, html = tmp_path / "race.svg", tmp_path / "race.html"
    args = ["race", "-n", "12", "-t", "4", "--search-delay", "0", "--write-delay", "30"]
    result = invoke(*args, "--svg", str(svg), "--html", str(html), "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["passed"] is True
    text = "".join(ET.parse(svg).getroot().itertext()).replace("\xa0", " ")
    locked, unlocked = text.index("with strategy file"), text.index("with strategy none")
    assert locked < unlocked and "sold twice or more" in text[unlocked:]
    page = html.read_text()
    assert page.index("with strategy file") < page.index("with strategy none")
    result = invoke("race", "--svg", str(svg), "--history", "none")
    assert result.exit_code == 2 and "leave out --history none" in result.output


def test_a_race_with_no_stock_is_not_proven(invoke: Invoke) -> None:
    """`race -t 0` used to say FAILED (oversold up to 0), exit 1, and the
    unlocked side NOT SHOWN by luck: nothing was tested."""
    result = invoke("race", "--buyers", "5", "--tickets", "0", "--no-delay", "--json")
    doc = json.loads(result.output)
    assert result.exit_code == 5 and doc["passed"] is False
    assert [s["unproven_trials"] for s in doc["strategies"]] == [1, 1]
    assert all("the store had no tickets" in r for r in doc["reasons"])
    text = invoke("race", "--buyers", "5", "--tickets", "0", "--no-delay", "--no-lock")
    assert text.exit_code == 5 and "NOT PROVEN: none proved nothing" in text.output
