"""Any command as the buyer (``tickets buy --exec CMD``): real commands, a
real HTTP service on a loopback port, judged by the same checker."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import REDIS_PASSWORD, ROOT
from helpers import live_processes, read_json_lines

pytestmark = pytest.mark.timeout(180)

SERVICE = str(ROOT / "examples" / "booking_service.py")
README = (ROOT / "README.md").read_text()


def tickets(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tickets", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def buy_json(*args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    done = tickets("buy", *args, "--json", env=env)
    return done.returncode, json.loads(done.stdout)


def check_of(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in doc["checks"] if c["name"] == name)


def processes_with(mark: str) -> list[int]:
    """Live processes whose command line holds ``mark``."""
    return live_processes("/proc/{}/cmdline", lambda text: mark.encode() in text)


def wait_until(what: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if what():
            return True
        time.sleep(0.05)
    return bool(what())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the simplest commands ---------------------------------------------------


def test_without_a_stock_reading_the_verdict_is_not_proven_and_says_why() -> None:
    code, doc = buy_json("-n", "6", "--exec", "echo $((TICKETS_BUYERS - TICKETS_BUYER))")
    assert code == 5 and not doc["passed"] and doc["unproven"]
    assert doc["sold"] == 6 and doc["initial"] is None and doc["stock_source"] == "none"
    assert set(doc["not_run"]) == {"sold <= initial", "conservation", "store valid after the run"}
    assert check_of(doc, "conservation")["passed"] is None
    assert "--stock-cmd" in check_of(doc, "conservation")["detail"]
    assert not Path("tickets.json").exists()  # the tool's own store is not touched
    done = tickets("check", doc["history"])  # the history says the same
    assert done.returncode == 5 and "NOT PROVEN" in done.stdout
    text = tickets("buy", "-n", "3", "--exec", "echo $((TICKETS_BUYERS - TICKETS_BUYER))")
    assert text.returncode == 5 and "NOT PROVEN" in text.stdout and "--stock-cmd" in text.stdout


def test_a_seat_sold_twice_fails_whatever_the_stock() -> None:
    code, doc = buy_json("-n", "5", "--exec", "echo 7")
    assert code == 1 and doc["double_sold_seats"] == [7] and not doc["unproven"]
    code, doc = buy_json("-n", "5", "--exec", "echo 7", "--stock-cmd", "echo 10")
    assert code == 1 and doc["initial"] == 10 and doc["remaining"] == 10
    assert check_of(doc, "conservation")["passed"] is False


def test_sold_out_is_the_documented_exit_code_and_is_checked() -> None:
    code, doc = buy_json("-n", "4", "--exec", "exit 22", "--stock-cmd", "echo 0")
    # Read as sold out; and a sale of no stock tested nothing: not proven.
    assert code == 5 and not doc["passed"] and doc["no_ticket"] == 4
    assert doc["nothing_tested"].startswith("the store had no tickets")
    assert {b["reason"] for b in doc["buyers"]} == {"sold out"}
    code, doc = buy_json("-n", "4", "--exec", "exit 22", "--stock-cmd", "echo 3")
    assert code == 1 and check_of(doc, "no undersell")["passed"] is False
    code, doc = buy_json(
        "-n", "2", "--exec", "exit 9", "--sold-out-exit", "9", "--stock-cmd", "echo 0"
    )
    assert code == 5 and doc["no_ticket"] == 2


def test_any_other_exit_is_an_unknown_outcome_its_stderr_in_the_log() -> None:
    done = tickets(
        "buy",
        "-n",
        "3",
        "--stock-cmd",
        "echo 5",
        "--exec",
        "echo SECRET-$((1+1)); echo oops-$((6*7)) >&2; echo more-$((2*3)) >&2; echo >&2; exit 1",
    )
    assert done.returncode == 1, done.stdout  # errors: the sale proves nothing
    # Its last stderr line is the reason (a traceback's last line is its
    # error); nothing else it wrote reaches the terminal.
    assert "oops-42" not in done.stdout + done.stderr and "SECRET-2" not in done.stdout
    history = next(Path("history").glob("*.jsonl"))
    events = read_json_lines(history)
    infos = [e for e in events if e["type"] == "info"]
    assert len(infos) == 3 and all(e["reason"] == "error: exit 1: more-6" for e in infos)
    log = Path(str(history) + ".log").read_text()
    assert log.count("more-6") == 6 and log.count("oops-42") == 3 and "buyer 2" in log


def test_a_python_command_s_error_is_its_traceback_s_last_line() -> None:
    script = "import sys; print('x' * 9000, file=sys.stderr); raise ValueError('no seat here')"
    done = tickets(
        "buy", "-n", "2", "--stock-cmd", "echo 5", "--exec", f'{sys.executable} -c "{script}"'
    )
    history = next(Path("history").glob("*.jsonl"))
    infos = [e for e in read_json_lines(history) if e["type"] == "info"]
    assert done.returncode == 1 and len(infos) == 2, done.stdout + done.stderr
    assert {e["reason"] for e in infos} == {"error: exit 1: ValueError: no seat here"}


TAKE_ONE = f"{sys.executable} {ROOT / 'examples' / 'take_one.py'}"


@pytest.mark.parametrize("kind", ["json", "sqlite", "redis"])
def test_the_command_sells_from_the_tool_s_store_when_db_names_it(
    kind: str, request: pytest.FixtureRequest
) -> None:
    db = {"json": "shop.json", "sqlite": "sqlite:shop.db"}.get(kind)
    if db is None:  # a real server, with a password: the command gets it in its environment
        db = str(request.getfixturevalue("redis_url"))
    done = tickets("--db", db, "buy", "-n", "12", "-t", "6", "--exec", TAKE_ONE, "--json")
    code, doc = done.returncode, json.loads(done.stdout)
    assert code == 0 and doc["passed"] and (doc["sold"], doc["remaining"]) == (6, 0)
    history = Path(doc["history"]).read_text()
    assert REDIS_PASSWORD not in done.stdout + done.stderr + history
    assert doc["stock_source"] == "store" and doc["initial"] == 6
    assert doc["no_ticket"] == 6  # exit 22: sold out


def test_the_example_command_oversells_without_its_lock() -> None:
    code, doc = buy_json(
        "--db", "shop.json", "-n", "12", "-t", "6", "--exec", f"{TAKE_ONE} --broken"
    )
    assert code == 1 and doc["oversold"] > 0


def test_a_hanging_command_is_stopped_at_its_timeout_and_nothing_is_left() -> None:
    started = time.monotonic()
    code, doc = buy_json(
        "-n", "3", "--buyer-timeout", "1", "--stock-cmd", "echo 3", "--exec", "sleep 37.25; echo 1"
    )
    assert time.monotonic() - started < 30
    # Unknown outcomes may or may not have sold: no check fails, but a sale
    # in which no buyer completed an attempt tested nothing.
    assert code == 5 and doc["unknown"] == 3 and doc["sold"] == 0
    assert doc["nothing_tested"] == (
        "no buyer completed an attempt against the store: 3 of unknown outcome"
    )
    assert {b["reason"] for b in doc["buyers"]} == {"timeout: still running after 1s; killed"}
    assert processes_with("sleep 37.25") == []


def test_what_a_command_leaves_running_is_killed_when_it_exits() -> None:
    left = "(sleep 41.5 &); setsid sleep 41.75 > /dev/null 2>&1 < /dev/null &"
    code, doc = buy_json(
        "-n",
        "3",
        "--stock-cmd",
        "echo 3",
        "--exec",
        f"{left} echo $((TICKETS_BUYERS - TICKETS_BUYER))",
    )
    assert doc["sold"] == 3
    # In its group, and out of it (setsid): the launcher adopts orphans.
    assert wait_until(lambda: processes_with("sleep 41.") == [], 5)


def test_killing_the_parent_leaves_no_command_behind(tmp_path: Path) -> None:
    escape = "setsid sleep 43.5 > /dev/null 2>&1 < /dev/null &"
    parent = subprocess.Popen(
        [sys.executable, "-m", "tickets", "buy", "-n", "4", "--exec", f"{escape} sleep 43.75"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_until(lambda: len(processes_with("sleep 43.75")) >= 4, 30)
        parent.kill()
        parent.wait(10)
        assert wait_until(lambda: processes_with("sleep 43.") == [], 5)
    finally:
        parent.kill()
        for pid in processes_with("sleep 43."):
            os.kill(pid, signal.SIGKILL)


def test_a_command_that_kills_the_launcher_ends_the_sale_and_nothing_is_left() -> None:
    started = time.monotonic()
    code, doc = buy_json(
        "-n", "3", "--stock-cmd", "echo 3", "--exec", "kill -9 $PPID; sleep 53.25; echo 1"
    )
    assert time.monotonic() - started < 15  # not the buyer timeout: at once
    assert doc["unknown"] == 3 and code == 5  # no check fails; nothing was tested
    assert wait_until(lambda: processes_with("sleep 53.25") == [], 5)


def test_ticket_ids_get_the_uniqueness_and_count_checks() -> None:
    code, doc = buy_json("-n", "4", "--exec", "echo T-$TICKETS_BUYER", "--stock-cmd", "echo 4")
    # Four sold, and the stock never moved: the count checks catch it.
    assert code == 1 and check_of(doc, "conservation")["passed"] is False
    assert check_of(doc, "no ticket sold twice")["passed"] is True
    assert check_of(doc, "real-time order")["passed"] is None
    code, doc = buy_json("-n", "3", "--exec", "echo same", "--stock-cmd", "echo 9")
    assert code == 1 and doc["double_sold_seats"] == ["same"]
    code, doc = buy_json("-n", "3", "--ticket-ids", "--exec", "echo 5", "--stock-cmd", "echo 9")
    assert code == 1 and check_of(doc, "no ticket sold twice")["passed"] is False


# -- bad input: one line, exit 2 (3 for the stock), nothing started ------------


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--exec", "no-such-command-xyz --flag"], "command not found"),
        (["--exec", "echo 'unbalanced"], "does not parse"),
        (["--exec", "./missing.sh"], "no such file"),
        (["--exec", "./plain.txt"], "not an executable file"),
        (["--exec", "if then fi"], "not valid shell"),
        (["--exec", ""], "not an empty one"),
        (["--exec", "true", "--buy", "x.py:f"], "give one"),
        (["--exec", "true", "--lock", "file"], "--lock does not apply"),
        (["--exec", "true", "--stock-cmd", "echo 1", "--tickets", "5"], "--tickets is for"),
        (["--exec", "true", "--stock-cmd", "echo 1", "--db", "x.json"], "both say where"),
        (["--sold-out-exit", "3"], "--sold-out-exit is for --exec"),
        (["--stock-cmd", "echo 3"], "--stock-cmd is for --exec or --buy"),
        (["--exec", "true", "--sold-out-exit", "0"], "--sold-out-exit"),
        (["--exec", "true", "--stock-cmd", "nope-xyz"], "--stock-cmd: nope-xyz"),
    ],
)
def test_bad_commands_are_usage_errors(args: list[str], words: str, invoke: Any) -> None:
    Path("plain.txt").write_text("not a program\n")
    done = invoke("buy", "-n", "2", *args)
    assert done.exit_code == 2, done.output
    assert words in done.output and "Traceback" not in done.output
    assert not Path("history").exists() and not Path("tickets.json").exists()


@pytest.mark.parametrize(
    ("stock_cmd", "words"),
    [
        ("echo ten", "printed 'ten', not a stock"),
        ("echo -3", "printed '-3', not a stock"),
        ("exit 4", "exit 4"),
        ("echo 1; echo broke >&2; exit 7", "exit 7 (broke)"),
    ],
)
def test_a_stock_command_that_prints_no_stock_is_exit_3(
    stock_cmd: str, words: str, invoke: Any
) -> None:
    done = invoke("buy", "-n", "2", "--exec", "echo 1", "--stock-cmd", stock_cmd)
    assert done.exit_code == 3, done.output
    assert f"--stock-cmd: before the sale: {words}" in done.output
    assert len(done.output.strip().splitlines()) == 1 and not Path("history").exists()


# -- the example service and the README's recipe ------------------------------


def recipe() -> str:
    found = re.search(r"<!-- exec-recipe -->\n```sh\n(.*?)```", README, re.S)
    assert found, "the README has no exec recipe"
    return found.group(1)


@pytest.fixture
def shop_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    env.pop("TICKETS_DB", None)
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    yield env
    for pid in processes_with(SERVICE.rpartition("/")[2]) + processes_with("booking_service"):
        try:
            if Path(f"/proc/{pid}/cwd").resolve() == tmp_path.resolve():
                os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


@pytest.mark.parametrize(("variant", "expected"), [("", 0), ("--broken", 1)])
def test_the_readme_recipe_passes_the_service_and_fails_its_broken_variant(
    shop_env: dict[str, str], variant: str, expected: int
) -> None:
    port = str(free_port())
    script = recipe().replace("8765", port)
    script = script.replace("booking_service.py ", f"booking_service.py {variant} ")
    done = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, env=shop_env, timeout=150
    )
    assert done.returncode == expected, done.stdout[-3000:] + done.stderr[-2000:]
    assert ("PASSED" if expected == 0 else "FAILED") in done.stdout
    if expected:
        assert "double-sold seats" in done.stdout


def test_the_readme_recipe_fails_when_tickets_is_not_on_the_path(
    shop_env: dict[str, str],
) -> None:
    """A CI job whose tickets never ran must not go green."""
    folders = shop_env["PATH"].split(os.pathsep)
    env = {
        **shop_env,
        "PATH": os.pathsep.join(f for f in folders if not Path(f, "tickets").exists()),
    }
    script = recipe().replace("8765", str(free_port()))
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 127 and "tickets: not found" in done.stderr, done.stderr


@pytest.fixture
def shop(shop_env: dict[str, str], tmp_path: Path) -> Iterator[Any]:
    """Start the example service (a variant) on a free loopback port."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*flags: str) -> str:
        ready = tmp_path / f"ready-{len(started)}"
        proc = subprocess.Popen(
            [
                sys.executable,
                SERVICE,
                "--port",
                "0",
                "--db",
                str(tmp_path / "shop.db"),
                "--ready-file",
                str(ready),
                *flags,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append(proc)
        assert wait_until(ready.exists, 20), "the service did not start"
        return "http://" + ready.read_text().strip()

    yield start
    for proc in started:
        proc.kill()
        proc.wait(10)


def test_the_service_s_ticket_ids_pass_correct_and_fail_broken(shop: Any) -> None:
    url = shop("--ids", "--tickets", "8")
    buy, stock = f"curl -fsS -X POST {url}/buy", f"curl -fsS {url}/stock"
    code, doc = buy_json("-n", "14", "--exec", buy, "--stock-cmd", stock)
    assert code == 0 and doc["passed"] and doc["sold"] == 8, doc["checks"]
    assert check_of(doc, "real-time order")["passed"] is None
    assert all(b["seat"].startswith("T-") for b in doc["buyers"] if b["result"] == "ok")
    url = shop("--ids", "--tickets", "8", "--broken")
    code, doc = buy_json(
        "-n",
        "14",
        "--exec",
        f"curl -fsS -X POST {url}/buy",
        "--stock-cmd",
        f"curl -fsS {url}/stock",
    )
    assert code == 1 and doc["oversold"] > 0


def test_a_python_buyer_that_sells_elsewhere_is_judged_by_the_stock_command() -> None:
    Path("elsewhere.py").write_text("def buy(store):\n    return None\n")
    code, doc = buy_json("-n", "3", "--buy", "elsewhere.py:buy", "--stock-cmd", "echo 0")
    assert code == 5 and doc["stock_source"] == "command"  # judged; no stock: not proven
    code, doc = buy_json("-n", "3", "--buy", "elsewhere.py:buy", "--stock-cmd", "echo 2")
    assert code == 1 and check_of(doc, "no undersell")["passed"] is False


def test_chaos_kills_command_buyers_and_the_service_still_passes(shop: Any) -> None:
    url = shop("--tickets", "10")
    code, doc = buy_json(
        "-n",
        "24",
        "--chaos",
        "--kill-rate",
        "0.5",
        "--pause-rate",
        "0",
        "--exec",
        f"sleep 0.5; curl -fsS -X POST {url}/buy",
        "--stock-cmd",
        f"curl -fsS {url}/stock",
    )
    chaos = doc["chaos"]
    # Each doomed command dies within 50 ms of its start, long before its request
    # (half a second: a busy machine may be late to kill by tens of ms).
    assert chaos["killed"] == chaos["kills_planned"] > 0
    assert doc["unknown"] == chaos["killed"] and code == 0 and doc["passed"]
    reasons = {b["reason"] for b in doc["buyers"] if b["result"] == "info"}
    assert reasons == {"chaos: its command was killed with SIGKILL"}


def test_more_command_buyers_than_the_file_limit_allows_is_a_usage_error() -> None:
    import resource

    def low() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    done = subprocess.run(
        [sys.executable, "-m", "tickets", "buy", "-n", "200", "--exec", "exit 22"],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=low,
    )
    assert done.returncode == 2 and "needs 464 open files" in done.stderr
    assert not Path("history").exists()


def test_a_fifo_where_the_log_goes_is_left_alone_and_never_waited_on() -> None:
    os.mkfifo("h.jsonl.log")
    done = tickets(
        "buy",
        "-n",
        "3",
        "--history",
        "h.jsonl",
        "--stock-cmd",
        "echo 3",
        "--exec",
        "echo to-the-log >&2; exit 1",
        timeout=60,
    )
    assert done.returncode == 1 and "error: exit 1: to-the-log" in Path("h.jsonl").read_text()
    assert Path("h.jsonl.log").is_fifo()


def test_a_command_holds_none_of_the_run_s_descriptors() -> None:
    tickets(
        "buy",
        "-n",
        "1",
        "--history",
        "h.jsonl",
        "--stock-cmd",
        "echo 1",
        "--exec",
        "exec 1>&2; ls /proc/$$/fd; exit 1",
    )
    listed = Path("h.jsonl.log").read_text().split("\n", 1)[1].split()
    assert sorted(listed) == ["0", "1", "2"]  # the shell holds stdin, stdout and stderr only


def test_the_watchdog_waits_for_a_command_within_its_timeout() -> None:
    code, doc = buy_json(
        "-n", "2", "--stall-timeout", "0.5", "--stock-cmd", "echo 0", "--exec", "sleep 1.2; exit 22"
    )
    assert code == 5 and doc["aborted"] is None and doc["no_ticket"] == 2


def test_a_command_s_sale_on_a_stock_elsewhere_never_opens_the_tool_s_store() -> None:
    env = {**os.environ, "TICKETS_DB": "redis://127.0.0.1:1/0"}  # nothing listens there
    done = tickets("buy", "-n", "2", "--exec", "exit 22", "--stock-cmd", "echo 0", env=env)
    assert done.returncode == 5, done.stderr
