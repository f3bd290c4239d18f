"""The user's own purchase code as the buyer (``tickets buy --buy FILE.py:FUNC``),
on real processes and every store: judged by the same checker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT
from helpers import read_json_lines

pytestmark = pytest.mark.timeout(120)

EXAMPLE = str(ROOT / "examples" / "booking.py")


def tickets(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tickets", *args], capture_output=True, text=True, timeout=timeout
    )


def buy_json(*args: str) -> tuple[int, dict[str, Any]]:
    done = tickets(*args, "--json")
    return done.returncode, json.loads(done.stdout)


@pytest.fixture(params=["json", "sqlite", "redis"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "json":
        return str(tmp_path / "t.json")
    if request.param == "sqlite":
        return f"sqlite:{tmp_path / 'sale.db'}"
    return str(request.getfixturevalue("redis_url"))


def test_the_correct_example_never_oversells_and_the_broken_one_does(any_store: str) -> None:
    for seed in (0, 1):
        code, doc = buy_json(
            "--db",
            any_store,
            "buy",
            "-n",
            "12",
            "-t",
            "5",
            "--seed",
            str(seed),
            "--buy",
            f"{EXAMPLE}:take_ticket",
        )
        assert code == 0 and doc["passed"] and (doc["sold"], doc["remaining"]) == (5, 0)
    code, doc = buy_json(
        "--db",
        any_store,
        "buy",
        "-n",
        "12",
        "-t",
        "10",
        "--write-delay",
        "60",
        "--buy",
        f"{EXAMPLE}:take_ticket_broken",
    )
    assert code == 1 and doc["oversold"] > 0 and not doc["passed"]
    run = read_json_lines(Path(doc["history"]))[0]
    assert run["buyer"] == f"{EXAMPLE}:take_ticket_broken"


def test_a_user_buyer_can_use_the_store_s_own_take(real_store: str) -> None:
    code, doc = buy_json(
        "--db", real_store, "buy", "-n", "12", "-t", "5", "--lock", "none", "--buy", "takes:buy"
    )
    assert code == 2  # no such module yet: a usage error, before anything starts
    Path("takes.py").write_text("def buy(store):\n    return store.take()\n")
    code, doc = buy_json("--db", real_store, "buy", "-n", "12", "-t", "5", "--buy", "takes:buy")
    assert code == 0 and doc["passed"] and doc["sold"] == 5


USER_CODE = """
import os, sys, time

def prints(store):
    print("HELLO FROM THE BUYER")
    print("AND ITS STDERR", file=sys.stderr)
    with store.lock:
        count = store.read()
        if count == 0:
            return None
        store.write(count - 1)
        return count

def raises(store):
    raise KeyError("no such booking")

def hangs(store):
    if store.buyer == 0:
        time.sleep(600)
    return None

def returns_text(store):
    return "seat 7"

def raw(store):
    kinds = {"json": str, "sqlite": "Connection", "redis": "Redis"}
    assert store.kind in kinds
    return None

print("IMPORTED, PRINTING")
"""


@pytest.fixture
def user_code(tmp_path: Path) -> str:
    path = tmp_path / "user_code.py"
    path.write_text(USER_CODE)
    return str(path)


def test_prints_never_reach_the_output(user_code: str) -> None:
    done = tickets("buy", "-n", "4", "-t", "3", "--buy", f"{user_code}:prints")
    assert done.returncode == 0, done.stderr
    for text in ("HELLO", "STDERR", "IMPORTED"):
        assert text not in done.stdout and text not in done.stderr


def test_an_exception_is_unknown_with_its_traceback_in_the_log(user_code: str) -> None:
    code, doc = buy_json("buy", "-n", "3", "-t", "3", "--buy", f"{user_code}:raises")
    assert code == 1 and doc["unknown"] == 3  # "no errors" fails: the code raised
    reasons = {b["reason"] for b in doc["buyers"]}
    assert reasons == {"error: KeyError: 'no such booking'"}
    log = Path(doc["history"] + ".log").read_text()
    assert log.count("Traceback (most recent call last)") == 3 and "def raises" not in log
    assert 'raise KeyError("no such booking")' in log


def test_a_result_that_is_not_a_seat_is_unknown(user_code: str) -> None:
    code, doc = buy_json("buy", "-n", "2", "-t", "3", "--buy", f"{user_code}:returns_text")
    assert code == 1 and doc["unknown"] == 2
    assert "returned 'seat 7', not a seat" in doc["buyers"][0]["reason"]


def test_a_hanging_buyer_is_stopped_at_its_timeout(user_code: str) -> None:
    t = time.monotonic()
    code, doc = buy_json(
        "buy", "-n", "3", "-t", "0", "--buyer-timeout", "1", "--buy", f"{user_code}:hangs"
    )
    assert time.monotonic() - t < 60
    hung = doc["buyers"][0]
    assert hung["result"] == "info" and hung["reason"].startswith("timeout: still buying after 1s")
    assert [b["result"] for b in doc["buyers"][1:]] == ["fail", "fail"]
    # An unknown outcome that changed nothing fails no check; a sale of no
    # stock tested nothing.
    assert code == 5 and doc["nothing_tested"].startswith("the store had no tickets")


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("missing.py:f", "missing.py: no such file"),
        ("{code}:nothing", "has no function 'nothing'"),
        ("{bad}:f", "cannot be imported (SyntaxError"),
        ("{needs_two}:f", "must take one argument"),
        ("no_such_module_here:f", "cannot be imported (ModuleNotFoundError"),
        ("nocolon.py", "write FILE.py:FUNCTION or MODULE:FUNCTION"),
    ],
)
def test_bad_buyer_code_is_a_usage_error_before_anything_starts(
    tmp_path: Path, user_code: str, spec: str, words: str
) -> None:
    (tmp_path / "bad.py").write_text("def f(store):\n    return (\n")
    (tmp_path / "needs_two.py").write_text("def f(store, other):\n    return None\n")
    spec = spec.format(code=user_code, bad=tmp_path / "bad.py", needs_two=tmp_path / "needs_two.py")
    before = set(os.listdir(tmp_path))
    done = tickets("buy", "-n", "3", "--buy", spec)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and words in lines[-1], done.stderr
    assert "Traceback" not in done.stderr
    assert set(os.listdir(tmp_path)) == before


def test_nothing_the_user_code_starts_is_left_behind(tmp_path: Path) -> None:
    marker = tmp_path / "spawned"
    (tmp_path / "spawner.py").write_text(
        "import os, subprocess, time\n"
        "def f(store):\n"
        f"    p = subprocess.Popen(['sh', '-c', 'echo $$ >> {marker}; exec sleep 300'])\n"
        "    deadline = time.monotonic() + 20\n"  # its pid is written before the sale ends
        f"    while time.monotonic() < deadline and not (os.path.exists({str(marker)!r}) and\n"
        f"            str(p.pid) in open({str(marker)!r}).read().split()):\n"
        "        time.sleep(0.005)\n"
        "    return None\n"
    )
    done = tickets("buy", "-n", "3", "-t", "3", "--buy", f"{tmp_path / 'spawner.py'}:f")
    assert done.returncode == 1, done.stdout  # told sold out while tickets remained
    deadline = time.monotonic() + 10
    pids = [int(p) for p in marker.read_text().split()]
    assert len(pids) == 3
    while time.monotonic() < deadline and any(os.path.exists(f"/proc/{p}") for p in pids):
        time.sleep(0.05)
    assert not any(os.path.exists(f"/proc/{p}") for p in pids)


def test_race_puts_the_user_code_beside_the_built_in_strategies(tmp_path: Path) -> None:
    good, bad = f"{EXAMPLE}:take_ticket", f"{EXAMPLE}:take_ticket_broken"
    code, doc = buy_json(
        "race", "-n", "12", "--write-delay", "60", "--strategies", f"none,file,{good},{bad}"
    )
    assert code == 1 and not doc["passed"]
    sides = {s["strategy"]: s for s in doc["strategies"]}
    assert sides[good]["excludes"] and sides[good]["oversold_trials"] == 0
    assert sides[bad]["excludes"] and sides[bad]["oversold_trials"] == 1
    assert any(bad in reason for reason in doc["reasons"])
    assert sum(1 for run in doc["runs"] if "take_ticket" in run["history"]) == 2
    code, doc = buy_json(
        "race",
        "-n",
        "8",
        "--strategies",
        f"none,{good}",
        "--expect-oversell",
        "--write-delay",
        "60",
    )
    assert code == 0 and doc["passed"]
    shown = tickets("race", "-n", "6", "--no-delay", "--strategies", f"file,{good}")
    assert (
        "booking.py:take_ticket" in shown.stdout
        and str(ROOT) not in shown.stdout.split("histories:")[0]
    )
    done = tickets("race", "--strategies", "none,missing.py:f")
    assert done.returncode == 2 and "missing.py: no such file" in done.stderr
