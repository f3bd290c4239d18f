"""Signals to a real parent: SIGTERM and SIGHUP stop a run like Ctrl-C, the
history is finished, nothing is left running, and the exit code says which."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import left_running, read_json_lines, spec_of


def start(store: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "TICKETS_DB": str(store)}
    cmd = [sys.executable, "-m", "tickets", *args, "--json"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def history_of(store: Path, timeout: float = 30) -> Path:
    """The run's history, once its run line is on disk (the sale is under way)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = list((store.parent / "history").glob("*.jsonl"))
        if found and found[0].read_text().count("\n") >= 2:  # the run line and an event
            return found[0]
        time.sleep(0.02)
    raise AssertionError("the run never started")


# Every buyer searches at once and queues at the lock, each holding it for
# 100-200 ms: the sale lasts seconds, most of it buyers waiting to sell.
SLOW_BUY = ["buy", "--buyers", "40", "--tickets", "100"]
SLOW_BUY += ["--search-delay", "0", "--write-delay", "200"]
# One slow clerk and a queue of one: the producers block in put().
SLOW_QUEUE = ["queue", "--clerks", "1", "--queue-size", "1", "--orders", "50"]
SLOW_QUEUE += ["--write-delay", "300"]
# The same sale on two workers, twenty buyers at once each.
SLOW_WORKERS = [*SLOW_BUY, "--workers", "2", "--concurrency", "20"]
# The slow queue's producers as threads of two workers.
SLOW_QUEUE_WORKERS = [*SLOW_QUEUE, "--producers", "100", "--workers", "2"]


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    "args, sig, code",
    [
        (SLOW_BUY, signal.SIGTERM, 143),
        (SLOW_BUY, signal.SIGHUP, 129),
        (SLOW_BUY, signal.SIGINT, 130),
        (SLOW_QUEUE, signal.SIGTERM, 143),
        (SLOW_WORKERS, signal.SIGTERM, 143),
        (SLOW_QUEUE_WORKERS, signal.SIGTERM, 143),
    ],
    ids=["buy-term", "buy-hup", "buy-int", "queue-term", "workers-term", "queue-workers-term"],
)
def test_a_signal_stops_the_run_like_ctrl_c(
    store: Path, args: list[str], sig: int, code: int
) -> None:
    proc = start(store, *args)
    history = history_of(store)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    name = "interrupted" if sig == signal.SIGINT else f"terminated by {signal.Signals(sig).name}"
    assert name in err and "Traceback" not in err
    doc = json.loads(out)  # what was sold so far still reaches the JSON document
    assert doc["aborted"] == name and doc["passed"] is False and doc["exit_code"] == code
    lines = read_json_lines(history)
    assert lines[-1]["type"] == "end" and lines[-1]["aborted"] == name
    assert all(b["result"] != "pending" for b in doc["buyers"])
    assert left_running(store) == []  # nothing of the run is left running


@pytest.mark.timeout(120)
@pytest.mark.parametrize("second", [signal.SIGTERM, signal.SIGINT])
def test_a_second_signal_never_leaves_the_history_unfinished(store: Path, second: int) -> None:
    for _ in range(3):
        for old in (store.parent / "history").glob("*.jsonl"):
            old.unlink()
        proc = start(store, *SLOW_BUY)
        history = history_of(store)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.01)
        proc.send_signal(second)
        proc.communicate(timeout=60)
        assert proc.returncode in (130, 143)
        assert read_json_lines(history)[-1]["type"] == "end"


@pytest.mark.timeout(60)
def test_the_history_is_on_disk_while_the_sale_goes(store: Path) -> None:
    """A parent killed with SIGKILL leaves every batch it had read: the run
    line and the events so far, which check reports as unfinished."""
    proc = start(store, *SLOW_BUY)
    history = history_of(store)
    proc.kill()
    proc.communicate(timeout=30)
    lines = read_json_lines(history)
    assert lines[0]["type"] == "run" and any(e["type"] == "invoke" for e in lines)
    check = subprocess.run(
        [sys.executable, "-m", "tickets", "check", str(history), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 1
    assert "did not finish" in check.stdout


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    "args",
    [
        SLOW_BUY,
        [*SLOW_BUY, "--start-method", "spawn"],
        SLOW_QUEUE,
        SLOW_WORKERS,
        SLOW_QUEUE_WORKERS,
    ],
    ids=["buy-fork", "buy-spawn", "queue", "workers", "queue-workers"],
)
def test_nothing_outlives_a_killed_parent(store: Path, args: list[str]) -> None:
    """SIGKILL of the parent mid-sale: within 2 s no process of the run is
    left, and the store stops changing (the orphans used to keep selling)."""
    proc = start(store, *args)
    history_of(store)
    proc.kill()
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 2.0
    while left_running(store) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert left_running(store) == []
    before = store.read_bytes()
    time.sleep(0.5)
    assert store.read_bytes() == before


@pytest.mark.timeout(120)
def test_ctrl_c_early_in_a_spawn_run_prints_no_child_tracebacks(store: Path) -> None:
    """Ctrl-C reaches the whole process group; spawned buyers still importing
    used to print tracebacks of their own."""
    env = {**os.environ, "TICKETS_DB": str(store)}
    for delay in (0.25, 0.4, 0.6):
        proc = subprocess.Popen(
            [sys.executable, "-m", "tickets", "buy", "--start-method", "spawn", "--buyers", "12"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,
        )
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        _, err = proc.communicate(timeout=60)
        assert "Traceback" not in err, err


@pytest.mark.timeout(120)
def test_a_terminated_race_still_says_what_ran(store: Path) -> None:
    """A CI job's timeout during a race: the JSON document has the runs so
    far, the interrupted one last, and a verdict that does not pass."""
    proc = start(store, "race", "--buyers", "30", "--trials", "3", "--write-delay", "30")
    deadline = time.monotonic() + 60
    while len(list((store.parent / "history").glob("*.jsonl"))) < 3:
        assert time.monotonic() < deadline, "the race never got to its third run"
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    doc = json.loads(out)
    assert doc["passed"] is False and "stopped during" in doc["reasons"][0]
    assert doc["exit_code"] == 143
    assert len(doc["runs"]) >= 3 and doc["runs"][-1]["aborted"] == "terminated by SIGTERM"
    assert all(run["aborted"] is None for run in doc["runs"][:-1])


@pytest.mark.timeout(60)
@pytest.mark.parametrize("stop", [KeyboardInterrupt(), OSError(24, "Too many open files")])
def test_stopped_while_the_children_are_set_up_the_history_is_finished(
    store: Path, monkeypatch: pytest.MonkeyPatch, stop: BaseException
) -> None:
    """A signal (or an error) after the run line, before the harness can
    settle the sale itself, still gives the history its end line."""
    from tickets.check.history import read
    from tickets.engine.buy import BuyMode, run_buy
    from tickets.engine.config import BuyConfig

    def fail(*args: object) -> None:
        raise stop

    monkeypatch.setattr(BuyMode, "make_children", fail)
    with pytest.raises(type(stop)) as caught:
        run_buy(BuyConfig(store=spec_of(store), tickets=5, buyers=4))
    result = caught.value.result  # type: ignore[attr-defined]
    history = read(result.history)
    assert history.end is not None and history.end["remaining"] == 5
    expected = "interrupted" if isinstance(stop, KeyboardInterrupt) else "stopped by an error"
    assert str(history.end["aborted"]).startswith(expected)
    assert left_running(store) == []


@pytest.mark.timeout(90)
def test_ctrl_c_shows_what_was_sold_and_where_the_history_is(store: Path) -> None:
    """Without --json too: the partial summary, the history's path, the
    verdict ABORTED, and one line on stderr."""
    env = {**os.environ, "TICKETS_DB": str(store), "COLUMNS": "400"}  # the path whole
    cmd = [sys.executable, "-m", "tickets", *SLOW_BUY]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    history = history_of(store)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert f"history            {history.relative_to(store.parent)}" in out or str(history) in out
    assert out.strip().splitlines()[-1] == "ABORTED: interrupted"
    assert err.strip() == "interrupted; the history records the buyers stopped as unknown"


def test_a_signal_while_the_first_is_handled_is_noted_not_raised() -> None:
    """The window between catching the first interrupt and holding the
    signals back: a second one there left the history without its end line."""
    from tickets.engine import interrupts

    noted = None
    with interrupts.terminations_interrupt():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            raise AssertionError("SIGTERM did not interrupt")
        except KeyboardInterrupt as first:
            assert str(first) == "terminated by SIGTERM"
            os.kill(os.getpid(), signal.SIGINT)  # handled at once: same thread, main
            noted = interrupts.shielded.late_signals()
    assert noted == [signal.SIGINT]
    assert not interrupts.shielded.tripped  # the next command starts clean


@pytest.mark.timeout(60)
def test_ctrl_c_while_the_command_line_loads_prints_no_traceback() -> None:
    """A busy machine can take a second to import click and rich: Ctrl-C
    then came before any handler and printed a KeyboardInterrupt traceback."""
    code = (
        "import builtins, os, signal\n"
        "real = builtins.__import__\n"
        "def interrupted(name, *args, **kwargs):\n"
        "    if name == 'cli':\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "    return real(name, *args, **kwargs)\n"
        "builtins.__import__ = interrupted\n"
        "from tickets.__main__ import main\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "status"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 130 and done.stderr == "" and done.stdout == ""


def test_ctrl_c_before_the_run_takes_the_signals_exits_130_with_its_document(
    tmp_path: Path,
) -> None:
    """click turns a KeyboardInterrupt raised while it parses into Abort,
    which was exit 1 ("Aborted!"): the code CI reads as an oversell."""
    code = (
        "import os, signal, sys\n"
        "import tickets.cli.options as options\n"
        "real = options.sale_config\n"
        "def interrupted(*args, **kwargs):\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    return real(*args, **kwargs)\n"
        "options.sale_config = interrupted\n"
        "import tickets.cli.sale_commands as commands\n"
        "commands.sale_config = interrupted\n"
        "from tickets.cli import cli\n"
        "cli(sys.argv[1:], prog_name='tickets')\n"
    )
    args = ["--db", str(tmp_path / "t.json"), "buy", "-n", "3", "-t", "2", "--json"]
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr and "Aborted" not in done.stderr
    assert json.loads(done.stdout) == {**json.loads(done.stdout), "passed": False}
    assert not (tmp_path / "t.json").exists()  # nothing began
