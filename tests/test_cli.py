"""Parsing, messages, exit codes and the JSON shape (CliRunner), plus the
entry points in a real subprocess."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from helpers import assert_run_fields, read_json_lines, snapshot
from histories import Op, lines_of, run_line, write
from tickets.cli import cli
from tickets.constants import JSON_SCHEMA

Invoke = Callable[..., Result]
ANSI = re.compile(r"\x1b\[")
COMMANDS = sorted(cli.commands)
# Searches of up to 20 ms (the default): a few buyers race for sure; with
# 1 or 2 ms a busy machine may run them in turn (nothing raced: NOT PROVEN).
FAST = ["--search-delay", "20", "--write-delay", "1"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(invoke: Invoke, command: str) -> None:
    result = invoke(command, "--help")
    assert result.exit_code == 0
    help_text = cli.commands[command].help
    assert help_text and len(help_text) > 20
    assert "Usage: " in result.output


def test_group_help_documents_exit_codes(invoke: Invoke) -> None:
    out = " ".join(invoke("--help").output.split())  # as wrapped, word for word
    for code in ("0 every check passed", "1 a check failed", "2 usage", "3 store", "4 run stopped"):
        assert code in out


def test_init_and_status(invoke: Invoke, store: Path) -> None:
    assert invoke("init", "--tickets", "7").exit_code == 0
    assert json.loads(store.read_text()) == {"count": 7}
    result = invoke("status", "--json")
    expected = {
        "schema": JSON_SCHEMA,
        "exit_code": 0,
        "count": 7,
        "store": str(store),
        "kind": "json",
    }
    assert result.exit_code == 0 and json.loads(result.output) == expected
    assert json.loads(invoke("init", "--tickets", "7", "--json").output) == expected
    assert "7 tickets left" in invoke("status").output


@pytest.mark.timeout(60)
def test_buy_json_schema_and_exit_0(invoke: Invoke, store: Path) -> None:
    result = invoke("buy", "--buyers", "15", "--tickets", "5", "--json", *FAST)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)  # nothing but JSON on stdout
    assert_run_fields(doc)
    assert (doc["strategy"], doc["initial"], doc["sold"], doc["remaining"]) == ("file", 5, 5, 0)
    assert doc["oversold"] == 0 and doc["passed"] is True
    assert len(doc["buyers"]) == 15
    for b in doc["buyers"]:
        assert {"buyer", "pid", "result", "seat"} <= set(b)
    assert Path(doc["history"]).exists()
    assert read_json_lines(Path(doc["history"]))[0]["type"] == "run"


@pytest.mark.timeout(60)
def test_buy_oversell_exits_1(invoke: Invoke) -> None:
    result = invoke(
        "buy",
        "--buyers",
        "12",
        "--tickets",
        "3",
        "--lock",
        "none",
        "--search-delay",
        "0",
        "--write-delay",
        "60",
        "--json",
    )
    assert result.exit_code == 1
    doc = json.loads(result.output)
    assert doc["oversold"] > 0 and doc["passed"] is False and doc["double_sold_seats"]


@pytest.mark.timeout(60)
def test_buy_table_output_is_plain_when_piped(invoke: Invoke) -> None:
    result = invoke("buy", "--buyers", "8", "--tickets", "3", *FAST)
    assert result.exit_code == 0
    assert not ANSI.search(result.output)
    for word in ("buyer", "seat", "initial", "sold", "remaining", "oversold", "PASSED", "history"):
        assert word in result.output


@pytest.mark.parametrize(
    "args, needle",
    [
        (["buy", "--buyers", "0"], "--buyers"),
        (["buy", "--buyers", "-3"], "--buyers"),
        (["buy", "--buyers", "ten"], "--buyers"),
        (["buy", "--buyers", "10000001"], "--buyers"),
        (["buy", "--tickets", "-1"], "--tickets"),
        (["buy", "--lock", "spin"], "--lock"),
        (["buy", "--lock-timeout", "0"], "--lock-timeout"),
        (["buy", "--lock-timeout", "-1"], "--lock-timeout"),
        (["buy", "--keep-stock", "--tickets", "4"], "--keep-stock"),
        (["init", "--tickets", "x"], "--tickets"),
        (["check"], "HISTORIES"),
        (["frobnicate"], "No such command"),
    ],
)
def test_usage_errors_exit_2_and_create_nothing(
    invoke: Invoke, tmp_path: Path, args: list[str], needle: str
) -> None:
    result = invoke(*args)
    assert result.exit_code == 2
    assert needle in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "content, needle",
    [(None, "no such store"), (b"", "is empty"), (b'{"count": -2}', "negative"), (b"[]", "list")],
)
def test_unusable_store_exits_3_and_changes_nothing(
    invoke: Invoke, store: Path, tmp_path: Path, content: bytes | None, needle: str
) -> None:
    if content is not None:
        store.write_bytes(content)
    before = snapshot(tmp_path)
    for args in (["status"], ["buy", "--keep-stock", "--buyers", "2"], ["buy", "--buyers", "2"]):
        if content is None and args == ["buy", "--buyers", "2"]:
            continue  # restocking creates a missing store: that is not an error
        result = invoke(*args)
        assert result.exit_code == 3, (args, result.output)
        assert needle in result.output and str(store) in result.output
        assert "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1
        assert snapshot(tmp_path) == before


def test_check_exit_codes(invoke: Invoke, tmp_path: Path) -> None:
    good = write(tmp_path / "good.jsonl", lines_of(2, 0, [Op("ok", 0, 1, 2), Op("ok", 0.5, 2, 1)]))
    bad = write(tmp_path / "bad.jsonl", lines_of(2, 1, [Op("ok", 0, 1, 2), Op("ok", 0, 1, 2)]))
    assert invoke("check", str(good)).exit_code == 0
    alone = write(tmp_path / "alone.jsonl", lines_of(2, 1, [Op("ok", 0, 1, 2)]))
    result = invoke("check", str(alone))  # one buyer raced nobody: nothing was tested
    assert result.exit_code == 5 and "one purchase cannot race" in result.output
    result = invoke("check", str(bad), "--json")
    assert result.exit_code == 1
    doc: dict[str, Any] = json.loads(result.output)
    assert doc["double_sold_seats"] == [2] and doc["oversold"] == 1
    notes = tmp_path / "notes.txt"
    notes.write_text("shopping list\n")
    result = invoke("check", str(notes))
    assert result.exit_code == 3 and "not a tickets history" in result.output


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tickets", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.timeout(90)
def test_python_m_tickets() -> None:
    result = run_cli("--help")
    assert result.returncode == 0 and "buy" in result.stdout and "check" in result.stdout


@pytest.mark.timeout(90)
def test_subprocess_buy_no_ansi_and_no_traceback(tmp_path: Path) -> None:
    result = run_cli("buy", "--buyers", "10", "--tickets", "4", *FAST)
    assert result.returncode == 0, result.stderr
    assert not ANSI.search(result.stdout) and result.stderr == ""
    (tmp_path / "tickets.json").write_text("{")
    result = run_cli("status")
    assert result.returncode == 3
    assert result.stderr.startswith("Error: ") and "Traceback" not in result.stderr


def test_import_tickets_is_light() -> None:
    code = (
        "import sys, tickets; "
        "print(sorted(m for m in ('click', 'rich', 'multiprocessing') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]"
    code = "import sys, tickets.engine.buy; print('click' in sys.modules, 'rich' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False False"


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "args",
    [
        ["buy", "--buyers", "5", "--no-delay", "--json"],
        ["race", "--buyers", "5", "--tickets", "2", "--no-delay", "--json"],
        ["queue", "--producers", "1", "--orders", "3", "--clerks", "1", "--no-delay", "--json"],
        ["status", "--json"],
    ],
    ids=lambda a: a[0],
)
def test_json_output_never_imports_rich(tmp_path: Path, args: list[str]) -> None:
    """A CI job that asks for --json pays for click and the core, not rich."""
    code = (
        "import sys\n"
        "from tickets.cli import main\n"
        "sys.argv = ['tickets', *sys.argv[1:]]\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    code = exc.code\n"
        "print('rich' in sys.modules, file=sys.stderr)\n"
    )
    db = ["--db", str(tmp_path / "tickets.json")]
    subprocess.run([sys.executable, "-m", "tickets", *db, "init"], check=True, timeout=60)
    out = subprocess.run(
        [sys.executable, "-c", code, *db, *args], capture_output=True, text=True, timeout=100
    )
    assert json.loads(out.stdout)
    assert out.stderr.strip().splitlines()[-1] == "False", out.stderr


def run_on_a_terminal(*args: str, env: dict[str, str] | None = None) -> str:
    """Run the CLI with a pseudo-terminal as stdout; return everything it wrote."""
    import pty
    import select

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tickets", *args],
        stdout=slave,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    os.close(slave)
    out = b""
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    proc.wait(60)
    os.close(master)
    return out.decode(errors="replace")


@pytest.mark.timeout(120)
def test_live_progress_on_a_terminal_only() -> None:
    slow = ["--buyers", "20", "--tickets", "5", "--search-delay", "300"]
    on_tty = run_on_a_terminal("buy", *slow)
    assert "buyers done" in on_tty and ANSI.search(on_tty)
    as_json = run_on_a_terminal("buy", *slow, "--json")
    assert "buyers done" not in as_json
    json.loads(as_json)  # nothing but the document
    queue = run_on_a_terminal("queue", "--orders", "10", "--search-delay", "60")
    assert "orders submitted" in queue and "queue depth" in queue
    plain = run_on_a_terminal("buy", *slow, env={"NO_COLOR": "1"})
    assert "PASSED" in plain and "\x1b[1m" not in plain.split("PASSED")[0][-20:]


@pytest.mark.timeout(120)
def test_db_works_after_the_command_name_too(invoke: Invoke, tmp_path: Path) -> None:
    """`tickets buy --db x.json` as well as `tickets --db x.json buy`; the
    one after the command wins; every store command's help names it."""
    x, y = tmp_path / "x.json", tmp_path / "y.json"
    assert invoke("init", "--db", str(x), "--tickets", "7").exit_code == 0
    assert json.loads(x.read_text()) == {"count": 7}
    assert "7 tickets left" in invoke("status", "--db", str(x)).output
    commands = [["buy", "--buyers", "3"], ["race", "--buyers", "3"], ["queue", "--orders", "2"]]
    for command in commands:
        args = ["--db", str(y), *command, "--db", str(x), "--tickets", "2", "--no-delay", "--json"]
        doc = json.loads(invoke(*args).output)
        stores = {run["store"] for run in doc.get("runs", [doc])}
        assert stores == {str(x)} and not y.exists(), command
    for name in ("init", "status", "buy", "race", "queue"):
        help_text = invoke(name, "--help").output
        assert "--db PATH|URL" in help_text and "$TICKETS_DB" in help_text, name


@pytest.mark.timeout(120)
def test_buy_sells_from_the_store_as_it_is(invoke: Invoke, store: Path) -> None:
    """`init --tickets 100` then `buy --buyers 50` sells 50 of the 100; only
    --tickets restocks, and the output says what was done to the stock."""
    result = invoke("buy", "--buyers", "3", "--no-delay", "--json")  # no store yet
    doc = json.loads(result.output)
    assert (doc["stock"], doc["initial"], doc["remaining"]) == ("created with 10", 10, 7)
    assert invoke("init", "--tickets", "100").exit_code == 0
    doc = json.loads(invoke("buy", "--buyers", "50", "--no-delay", "--json").output)
    assert (doc["stock"], doc["initial"], doc["sold"], doc["remaining"]) == (
        "as it was: 100",
        100,
        50,
        50,
    )
    assert json.loads(store.read_text()) == {"count": 50}
    result = invoke("buy", "--buyers", "4", "--no-delay", "--tickets", "10")
    assert "restocked 50 → 10" in result.output
    doc = json.loads(invoke("queue", "--orders", "2", "--no-delay", "--json").output)
    assert doc["stock"] == "as it was: 6" and doc["initial"] == 6
    doc = json.loads(invoke("buy", "--buyers", "2", "--keep-stock", "--json").output)
    assert doc["stock"] == "as it was: 0"  # old scripts still run
    # A race restocks every trial.
    doc = json.loads(invoke("race", "--buyers", "3", "--no-delay", "--json").output)
    assert all(r["stock"].startswith("restocked") and r["initial"] == 10 for r in doc["runs"])


GATE = "import json, sys; sys.exit(0 if json.load(sys.stdin)['passed'] else 1)"


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "args, code, error",
    [
        (["buy", "--buyers", "abc"], 2, "'abc' is not a whole number"),
        (["--db", "bad.json", "buy"], 3, "bad.json: is not valid store JSON"),
        (["--db", "missing.json", "status"], 3, "missing.json"),
        (["check", "nothing.jsonl"], 3, "no such history file"),
        (["nosuch"], 2, "No such command"),
    ],
)
def test_json_gate_fails_on_every_refusal_even_without_pipefail(
    tmp_path: Path, args: list[str], code: int, error: str
) -> None:
    """With --json, a refused command still prints one JSON document on
    stdout, so `tickets ... --json | jq -e .passed` fails without pipefail;
    the one-line message stays on stderr."""
    (tmp_path / "bad.json").write_text("{bad")
    cmd = [sys.executable, "-m", "tickets", *args, "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=30)
    assert done.returncode == code, done.stderr
    doc = json.loads(done.stdout)
    assert doc == {"schema": JSON_SCHEMA, "exit_code": code, "passed": False, "error": doc["error"]}
    assert error in doc["error"] and error in done.stderr
    # The shell pipeline a CI script writes, without pipefail: it must fail.
    script = f"{shlex.join(cmd)} | {shlex.join([sys.executable, '-c', GATE])}"
    gate = subprocess.run(["sh", "-c", script], cwd=tmp_path, capture_output=True, timeout=30)
    assert gate.returncode == 1


@pytest.mark.timeout(60)
def test_every_json_document_has_schema_exit_code_and_passed(invoke: Invoke) -> None:
    for args in (["buy", "--buyers", "3"], ["queue", "--orders", "2"], ["race", "--buyers", "3"]):
        result = invoke(*args, "--no-delay", "--json")
        doc = json.loads(result.output)
        assert (doc["schema"], doc["exit_code"]) == (JSON_SCHEMA, result.exit_code)
        assert isinstance(doc["passed"], bool)
    doc = json.loads(invoke("buy", "--buyers", "12", "--tickets", "2", "--json").output)
    assert doc["no_ticket"] == 10 and "failed" not in doc  # "failed" read like a failed check


@pytest.mark.timeout(60)
def test_piped_output_is_not_wrapped_or_padded(tmp_path: Path) -> None:
    """In a CI log the history's path is whole on one line, and no line
    ends in spaces (tables pad their cells)."""
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env["TICKETS_DB"] = str(tmp_path / "a-store-with-a-rather-long-name-for-a-ci-log.json")
    cmd = [sys.executable, "-m", "tickets", "buy", "--buyers", "5", *FAST]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=30)
    assert done.returncode == 0, done.stderr
    history = next(line for line in done.stdout.splitlines() if line.startswith("history"))
    assert Path(history.split()[-1]).exists()  # whole: copy it, grep it
    assert not [line for line in done.stdout.splitlines() if line != line.rstrip()]
    assert max(len(line) for line in done.stdout.splitlines()) > 80  # not wrapped at 80


@pytest.mark.timeout(120)
def test_check_takes_folders_each_history_on_its_own_or_one_sale(
    invoke: Invoke, store: Path, tmp_path: Path
) -> None:
    """`check history/` checks every history on its own (runs that each
    restocked are not one sale); --one-sale judges them together; a store
    is named as a store."""
    assert invoke("buy", "--buyers", "4", "--tickets", "3", *FAST).exit_code == 0
    assert invoke("buy", "--buyers", "4", "--tickets", "3", *FAST).exit_code == 0
    result = invoke("check", str(tmp_path / "history"))
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == "PASSED: all 2 histories"
    doc = json.loads(invoke("check", str(tmp_path / "history"), "--json").stdout)
    assert doc["passed"] is True and len(doc["results"]) == 2
    result = invoke("check", str(tmp_path / "history"), "--one-sale")
    assert result.exit_code == 3 and "restocked the store during the sale" in result.output
    result = invoke("check", str(store))
    assert result.exit_code == 3 and "is a store, not a history" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = invoke("check", str(empty))
    assert result.exit_code == 3 and "no history (*.jsonl) in it" in result.output


def test_short_options_help_and_exit_codes_everywhere(invoke: Invoke) -> None:
    """Every command's help ends with its own exit codes, and says nothing
    of what other commands do (buy of clerks, init of oversells)."""
    firsts = {
        "init": "0 the store holds the stock asked for",
        "status": "0 the count was read",
        "buy": "0 every check passed",
        "race": "0 every side under test",
        "queue": "0 every check passed",
        "check": "0 every check passed",
        "timeline": "0 drawn",
        "history": "0 listed",
        "explore": "0 every schedule explored passed",
    }
    for command, first in firsts.items():
        text = invoke(command, "-h").output
        assert text.startswith("Usage: ") and f" {command} [OPTIONS]" in text, command
        codes = text.replace("\n  ", " ").split("Exit codes: ", 1)[1]
        assert codes.startswith(first), command
        if command in ("init", "status", "timeline", "history"):
            assert "oversold" not in codes and "--stock-cmd" not in codes, command
    for sub in ("list", "show", "drop"):
        text = invoke("sale", sub, "-h").output.replace("\n  ", " ")
        assert "Examples:" in text and "Exit codes: 0 done" in text, sub
    buy_help = invoke("buy", "-h").output
    assert "clerk" not in buy_help and "queue" not in buy_help and "COUNT" not in buy_help
    queue_help = invoke("queue", "-h").output.replace("\n ", " ")
    assert "How a clerk protects" in " ".join(queue_help.split())
    assert "--keep-stock" not in invoke("race", "-h").output  # every race run restocks
    result = invoke("buy", "-n", "2", "-t", "1", "-l", "flock", "--no-delay", "--json")
    doc = json.loads(result.stdout)
    assert (doc["strategy"], doc["initial"], len(doc["buyers"])) == ("flock", 1, 2)
    result = invoke("buy", "-n", "abc")
    assert result.exit_code == 2 and "'abc' is not a whole number" in result.output
    for flag, value in (("--search-delay", "soon"), ("--lock-timeout", "nan")):
        result = invoke("buy", flag, value)
        assert result.exit_code == 2 and f"'{value}' is not a number" in result.output


@pytest.mark.timeout(90)
def test_a_long_piped_run_says_it_is_alive_on_stderr(tmp_path: Path) -> None:
    """No live line in a pipe, but a heartbeat on stderr (every 5 s, here 0.5 s); stdout
    stays the one JSON document."""
    env = {**os.environ, "TICKETS_DB": str(tmp_path / "t.json"), "TICKETS_HEARTBEAT_S": "0.5"}
    cmd = [
        sys.executable,
        "-m",
        "tickets",
        "buy",
        "-n",
        "12",
        "-t",
        "12",
        "--search-delay",
        "0",
        "--write-delay",
        "200",
        "--json",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=80)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["sold"] == 12
    beats = [line for line in done.stderr.splitlines() if line.startswith("buy --lock file: ")]
    assert beats and "buyers done" in beats[0] and "oversold so far" in beats[0]
    assert any(", ETA 0:00:0" in beat and "/s, " in beat for beat in beats)  # rate and ETA


@pytest.mark.timeout(60)
def test_history_none_keeps_no_history_but_still_checks(invoke: Invoke, tmp_path: Path) -> None:
    doc = json.loads(invoke("buy", "-n", "5", *FAST, "--history", "none", "--json").stdout)
    assert doc["history"] is None and doc["passed"] is True
    assert "not kept (--history none)" in invoke("buy", "-n", "3", "--history", "none").output
    args = ["buy", "-n", "20", "-t", "5", "-l", "none", "--search-delay", "0"]
    result = invoke(*args, "--write-delay", "60", "--history", "none", "--json")
    assert result.exit_code == 1 and json.loads(result.stdout)["oversold"] > 0  # in memory
    assert not (tmp_path / "history").exists()
    result = invoke("race", "--timeline", "--history", "none")
    assert result.exit_code == 2 and "leave out --history none" in result.output


@pytest.mark.timeout(120)
def test_history_lists_verdicts_and_prunes_but_never_a_running_sale(
    invoke: Invoke, store: Path, tmp_path: Path
) -> None:
    import time

    assert invoke("buy", "-n", "3", *FAST).exit_code == 0
    args = ["buy", "-n", "20", "-t", "5", "-l", "none", "--search-delay", "0"]
    assert invoke(*args, "--write-delay", "60").exit_code == 1
    folder = tmp_path / "history"
    (folder / "notes.jsonl").write_text("not a history\n")
    running = folder / "running.jsonl"  # a sale still going: its parent is this process
    ours = os.path.realpath(store)  # the run line names the store as a run writes it
    running.write_text(json.dumps(run_line(1, 1, pid=os.getpid(), t=1.0, store=ours)) + "\n")
    old = time.time() - 3 * 86_400
    for path in folder.iterdir():
        os.utime(path, (old, old))
    doc = json.loads(invoke("history", "--json").stdout)
    verdicts = sorted(h["verdict"] for h in doc["histories"])
    assert verdicts == ["failed", "passed", "running", "unreadable"]
    doc = json.loads(invoke("history", "--older-than", "2d", "--json").stdout)
    assert sorted(h["verdict"] for h in doc["histories"]) == ["running", "unreadable"]
    assert len(doc["removed"]) == 2
    assert sorted(p.name for p in folder.iterdir()) == ["notes.jsonl", "running.jsonl"]
    assert invoke("history", "--keep", "0").exit_code == 0 and running.exists()
    (folder / "notes.jsonl").unlink()  # not a history: left for its owner (here, this test)
    result = invoke("history", "--older-than", "soon")
    assert result.exit_code == 2 and "'soon' is not an age" in result.output
    result = invoke("history", "--older-than", "7")  # days? seconds? it removed nearly all
    assert result.exit_code == 2 and "(a number and its unit)" in result.output


@pytest.mark.timeout(120)
def test_the_table_shows_what_matters_and_fits_80_columns(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Locked: the sales, and the buyers with no ticket rolled up. Unlocked:
    a row per seat. --all: every buyer. No line over 80 columns."""
    monkeypatch.setenv("COLUMNS", "80")
    out = invoke("buy", "-n", "50", "-t", "10", "--no-delay").output
    lines = out.splitlines()
    # every line but the history's path, which stays whole (to copy)
    [path] = [line for line in lines if line.startswith("history ")]
    assert path.split()[-1].endswith(".jsonl") and Path(path.split()[-1]).is_file()
    assert max(len(line) for line in lines if line != path) <= 80
    assert sum(1 for line in lines if " sold " in line and line.startswith("│")) == 10
    rolled = [
        re.fullmatch(r"(\d+) buyers?: sold out (at the search|under the lock)", line)
        for line in lines
    ]
    assert sum(int(m.group(1)) for m in rolled if m) == 40, out  # where, as the timing fell
    args = ["buy", "-n", "30", "-t", "5", "-l", "none", "--search-delay", "0"]
    out = invoke(*args, "--write-delay", "40").output
    lines = out.splitlines()
    assert max(len(line) for line in lines if not line.startswith("history ")) <= 80
    assert re.search(r"sales of \d seats, strategy none", out)
    assert not [line for line in lines if re.match(r"│\s+\d+ │\s+\d+ │ sold", line)]
    every = invoke("buy", "-n", "12", "-t", "3", "--no-delay", "--all").output
    assert "pid" in every and sum(1 for line in every.splitlines() if "│" in line) >= 12


def test_passed_never_contradicts_the_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    """A run whose sale was clean but whose command a signal stopped as it
    closed exits 143: its document must not say passed."""
    from tickets.cli.console import emit_json

    emit_json({"passed": True, "sold": 5}, 143)
    doc = json.loads(capsys.readouterr().out)
    assert doc == {"schema": JSON_SCHEMA, "exit_code": 143, "passed": False, "sold": 5}
