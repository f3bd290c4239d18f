"""Nothing of a run outlives it: every start method, every buyer kind, every
way the run ends, with buyers that try to escape (setsid, a double fork).

Each escaping helper writes its pid to ``daemon.<buyer>`` as soon as it is
out on its own and then waits for a ``go`` file before it sells: the tests
wait for those files (a signal, not a sleep), end the run their way, and
then every pid must be dead within the deadline, and the store stay as the
history left it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import left_running, read_json_lines

#: A --buy function whose buyer leaves a daemon behind (setsid and a double
#: fork, out of its group and session) that sells once the test says go.
ESCAPER = """
import json, os, time

def buy(h):
    here = os.path.dirname(os.path.abspath(h.raw))
    mark = os.path.join(here, f"daemon.{h.buyer}")
    first = os.fork()
    if first == 0:
        os.setsid()
        if os.fork() == 0:
            with open(mark + ".tmp", "w") as f:
                f.write(str(os.getpid()))
            os.rename(mark + ".tmp", mark)
            deadline = time.monotonic() + 30
            while not os.path.exists(os.path.join(here, "go")):
                if time.monotonic() > deadline:
                    os._exit(1)
                time.sleep(0.01)
            count = json.load(open(h.raw))["count"]
            with open(h.raw, "w") as f:
                json.dump({"count": count - 1}, f)
            os._exit(0)
        os._exit(0)
    os.waitpid(first, 0)
    deadline = time.monotonic() + 30
    while not os.path.exists(mark) and time.monotonic() < deadline:
        time.sleep(0.005)
    with h.lock:
        count = h.read()
        if count > 0:
            h.wait()
            h.write(count - 1)
            return count
    return None
"""

#: A command buyer whose helper leaves its group and session (setsid) and
#: would sell once the test says go; the command itself takes its time.
EXEC_ESCAPER = (
    "setsid sh -c 'echo $$ > daemon.$TICKETS_BUYER.tmp; mv daemon.$TICKETS_BUYER.tmp "
    "daemon.$TICKETS_BUYER; i=0; while [ ! -e go ] && [ $i -lt 3000 ]; do sleep 0.01; "
    "i=$((i+1)); done; [ -e go ] && echo late >> sold-late' "
    "> /dev/null 2>&1 < /dev/null & sleep 30; echo $((TICKETS_BUYERS - TICKETS_BUYER))"
)


def start(folder: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "TICKETS_DB": str(folder / "tickets.json")}
    return subprocess.Popen(
        [sys.executable, "-m", "tickets", *args, "--json"],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(what: object, timeout: float, why: str) -> None:
    deadline = time.monotonic() + timeout
    while not what():  # type: ignore[operator]
        assert time.monotonic() < deadline, why
        time.sleep(0.01)


def daemons(folder: Path) -> list[int]:
    return [int(p.read_text()) for p in folder.glob("daemon.*") if not p.name.endswith(".tmp")]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def assert_all_gone(folder: Path, pids: list[int], within: float = 2.0) -> None:
    """No process of the run is left (every pid dead, none with the run's
    store in its environment), then the go file: nothing can sell late."""
    store = folder / "tickets.json"
    deadline = time.monotonic() + within
    while (left_running(store) or any(alive(p) for p in pids)) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [p for p in pids if alive(p)] == [] and left_running(store) == []
    before = store.read_bytes() if store.exists() else None
    (folder / "go").touch()
    after = store.read_bytes() if store.exists() else None
    assert after == before and not (folder / "sold-late").exists()


@pytest.fixture
def escaper(tmp_path: Path) -> str:
    (tmp_path / "escaper.py").write_text(ESCAPER)
    return "escaper.py:buy"


@pytest.mark.timeout(90)
# fork in the quick suite; every start method under make stress
@pytest.mark.parametrize(
    "method",
    [
        "fork",
        pytest.param("spawn", marks=pytest.mark.stress),
        pytest.param("forkserver", marks=pytest.mark.stress),
    ],
)
def test_a_buy_functions_daemons_die_with_a_sale_that_passed(
    tmp_path: Path, escaper: str, method: str
) -> None:
    proc = start(tmp_path, "buy", "--buy", escaper, "-n", "4", "-t", "10", "--start-method", method)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    doc = json.loads(out)
    assert doc["sold"] == 4 and doc["remaining"] == 6
    pids = daemons(tmp_path)
    assert len(pids) == 4  # every buyer did leave one behind
    assert_all_gone(tmp_path, pids)
    assert json.loads((tmp_path / "tickets.json").read_text())["count"] == 6


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    "method, kind",
    [
        ("forkserver", "buy"),
        pytest.param("spawn", "buy", marks=pytest.mark.stress),
        pytest.param("fork", "buy", marks=pytest.mark.stress),
        ("forkserver", "builtin"),
        ("forkserver", "queue"),
        pytest.param("spawn", "queue", marks=pytest.mark.stress),
    ],
)
def test_nothing_outlives_a_killed_parent_whatever_the_start_method(
    tmp_path: Path, escaper: str, method: str, kind: str
) -> None:
    """SIGKILL of the parent mid-sale: forkserver buyers used to outlive it
    (their death signal was tied to the fork server, which lives on while
    any of them does) and go on selling, unrecorded."""
    args = {
        "buy": ["buy", "--buy", escaper, "-n", "6", "-t", "100", "--write-delay", "200"],
        "builtin": ["buy", "-n", "20", "-t", "100", "--search-delay", "1500"],
        "queue": [
            "queue",
            "--clerks",
            "2",
            "--producers",
            "2",
            "--orders",
            "100",
            "--write-delay",
            "50",
            "-t",
            "500",
        ],
    }[kind]
    proc = start(tmp_path, *args, "--start-method", method)
    history = tmp_path / "history"
    if kind == "buy":  # every buyer's daemon is out on its own
        wait_for(lambda: len(daemons(tmp_path)) == 6, 60, "the daemons never started")
    else:  # the sale is under way: its first events are on disk
        lines = 2 if kind == "builtin" else 20
        wait_for(
            lambda: any(len(read_lines(h)) > lines for h in history.glob("*.jsonl")),
            60,
            "the sale never started",
        )
    proc.kill()
    proc.communicate(timeout=30)
    assert_all_gone(tmp_path, daemons(tmp_path))
    # Every ticket that left the store went to an operation the history
    # knows of (a forkserver buyer used to sell after the kill, unrecorded).
    events = [json.loads(line) for line in read_lines(next(history.glob("*.jsonl")))]
    taken = events[0]["initial"] - json.loads((tmp_path / "tickets.json").read_text())["count"]
    assert taken <= sum(1 for e in events if e["type"] == "invoke")


def read_lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    "sig",
    [
        signal.SIGTERM,
        pytest.param(signal.SIGINT, marks=pytest.mark.stress),
        pytest.param(signal.SIGHUP, marks=pytest.mark.stress),
    ],
)
def test_a_stopped_exec_sale_leaves_no_escaped_helper(tmp_path: Path, sig: int) -> None:
    """TERM/INT/HUP: the parent used to kill the launcher's group before the
    launcher could kill the helpers it had adopted (they left with setsid),
    which then sold after the history said the sale was over."""
    proc = start(tmp_path, "buy", "-n", "5", "--exec", EXEC_ESCAPER, "--stock-cmd", "echo 5")
    wait_for(lambda: len(daemons(tmp_path)) == 5, 60, "the helpers never started")
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    assert_all_gone(tmp_path, daemons(tmp_path))
    history = next((tmp_path / "history").glob("*.jsonl"))
    assert read_json_lines(history)[-1]["type"] == "end"


def launcher_of(parent: int, warden: bool = False) -> int:
    """The launcher below the ``tickets`` process ``parent`` (or its warden:
    the launcher's first fork, whose parent half watches the rest)."""
    from tickets.engine.child.reaper import each_process

    def child_of(pid: int) -> int:
        for child, _, ppid, _ in each_process():
            if ppid == pid:
                with open(f"/proc/{child}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
                    if b"tickets.engine.child.launcher" in argv[1:4]:  # python -P -m …
                        return child
        raise AssertionError(f"no launcher below {pid}")

    keeper = child_of(parent)
    return keeper if warden else child_of(keeper)


#: A --buy function whose buyer 0 kills its own launcher, the way a helper's
#: ``trap 'kill 0' EXIT`` or a stray kill would, once every daemon is out.
KILLER = ESCAPER.replace(
    "    with h.lock:",
    "    if h.buyer == 0:\n"
    "        while len([f for f in os.listdir(here) if f.startswith('daemon.')\n"
    "                   and not f.endswith('.tmp')]) < 4 and time.monotonic() < deadline:\n"
    "            time.sleep(0.005)\n"
    "        os.kill(os.getppid(), int(os.environ['KILL_WITH']))\n"
    "    with h.lock:",
    1,
)


HOW = [
    "SIGKILL from outside",
    pytest.param("SIGSTOP from outside", marks=pytest.mark.stress),
    pytest.param("buyer code: SIGKILL", marks=pytest.mark.stress),
    "buyer code: kill 0 (SIGTERM)",
    pytest.param("SIGKILL of its warden", marks=pytest.mark.stress),
]


@pytest.mark.timeout(90)
@pytest.mark.parametrize("how", HOW)
def test_a_launcher_killed_or_stopped_leaves_nothing_behind(tmp_path: Path, how: str) -> None:
    """Its orphans (the buyers' escaped daemons) used to go to init: the
    parent adopts them, and the launcher shrugs off TERM from its group."""
    (tmp_path / "killer.py").write_text(KILLER)
    env_sig = {"buyer code: SIGKILL": "9", "buyer code: kill 0 (SIGTERM)": "0"}.get(how, "")
    args = [
        "buy",
        "--buy",
        "killer.py:buy" if env_sig else "escaper.py:buy",
        "-n",
        "4",
        "-t",
        "10",
        "--stall-timeout",
        "3",
        "--write-delay",
        "300",
    ]
    (tmp_path / "escaper.py").write_text(ESCAPER)
    env = {**os.environ, "TICKETS_DB": str(tmp_path / "tickets.json"), "KILL_WITH": env_sig}
    if env_sig == "0":  # kill 0: SIGTERM to the buyer's whole process group
        env["KILL_WITH"] = "15"
        (tmp_path / "killer.py").write_text(KILLER.replace("os.kill(os.getppid(),", "os.killpg(0,"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tickets", *args, "--json"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: len(daemons(tmp_path)) == 4, 60, "the daemons never started")
    if how == "SIGKILL of its warden":
        os.kill(launcher_of(proc.pid, warden=True), signal.SIGKILL)
    elif not env_sig:
        os.kill(launcher_of(proc.pid), getattr(signal, how.split()[0]))
    out, err = proc.communicate(timeout=60)
    assert "Traceback" not in err and proc.returncode in (0, 1, 3, 4, 5), err
    json.loads(out)  # one document, whatever the verdict (buyers may have finished)
    assert_all_gone(tmp_path, daemons(tmp_path))


@pytest.mark.timeout(90)
def test_a_stock_command_leaves_nothing_and_prints_within_bounds(tmp_path: Path) -> None:
    """--stock-cmd ran as a plain child: what it left with setsid went to
    init, and its output was read whole before being cut (yes 5: GBs)."""
    (tmp_path / "stock.sh").write_text(
        "#!/bin/sh\n"
        'setsid sh -c "echo \\$\\$ > daemon.$$; sleep 30" >/dev/null 2>&1 </dev/null &\n'
        "while [ ! -s daemon.$$ ]; do sleep 0.01; done\necho 4\n"
    )
    (tmp_path / "stock.sh").chmod(0o755)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tickets",
            "buy",
            "-n",
            "2",
            "--exec",
            "exit 22",
            "--stock-cmd",
            "./stock.sh",
            "--json",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr  # told sold out with 4 left
    pids = [int(p.read_text()) for p in tmp_path.glob("daemon.*")]
    assert len(pids) == 2 and not any(alive(p) for p in pids)  # before and after the sale
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tickets",
            "buy",
            "-n",
            "2",
            "--exec",
            "exit 22",
            "--stock-cmd",
            "yes 5",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3 and "printed over 64 KiB; killed" in done.stderr
