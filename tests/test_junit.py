"""``--junit-xml PATH``: every command's verdict as the JUnit XML a CI system's
test report reads, each file validated against the schemas Jenkins' JUnit
format is described by (``tests/junit/``: the junit-team's
jenkins-junit.xsd, the xunit plugin's junit-10.xsd)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
import xmlschema
from click.testing import Result

from helpers import snapshot
from histories import Op, end_line, events_of, lines_of, run_line, write
from tickets.check.verdict import Check, Report
from tickets.render.junit import verdict_case, xml_text

Invoke = Callable[..., Result]
ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = [
    xmlschema.XMLSchema(Path(__file__).resolve().parent / "junit" / name)
    for name in ("jenkins-junit.xsd", "junit-10.xsd")
]
# Searches of up to 20 ms: a few buyers race for sure (1 or 2 ms let a busy
# machine run them in turn: nothing raced, NOT PROVEN).
FAST = ["--search-delay", "20", "--write-delay", "1"]
# No search and a 40 ms write window: every unlocked buyer reads the same count.
OVERSELL = ["--lock", "none", "--search-delay", "0", "--write-delay", "40"]


def report_of(path: Path) -> ET.Element:
    """The file, valid under every schema, parsed; its counts add up."""
    for schema in SCHEMAS:
        schema.validate(str(path))
    root = ET.parse(path).getroot()
    for suite in root:
        cases = suite.findall("testcase")
        assert int(suite.get("tests", "")) == len(cases)
        for kind, attribute in (
            ("failure", "failures"),
            ("error", "errors"),
            ("skipped", "skipped"),
        ):
            assert int(suite.get(attribute, "")) == sum(c.find(kind) is not None for c in cases)
        assert suite.get("hostname") == socket.gethostname()
        assert datetime.fromisoformat(suite.get("timestamp", "")).tzinfo is not None
        assert float(suite.get("time", "")) >= 0
    assert int(root.get("tests", "")) == sum(int(s.get("tests", "")) for s in root)
    assert int(root.get("failures", "")) == sum(int(s.get("failures", "")) for s in root)
    return root


def props(suite: ET.Element) -> dict[str, str]:
    return {p.get("name", ""): p.get("value", "") for p in suite.iter("property")}


def case(suite: ET.Element, name: str) -> ET.Element:
    found = [c for c in suite.findall("testcase") if c.get("name") == name]
    assert len(found) == 1, name
    return found[0]


def outcome(case: ET.Element) -> str:
    """passed, failure, error or skipped."""
    kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
    assert len(kinds) <= 1
    return kinds[0] if kinds else "passed"


# -- buy -------------------------------------------------------------------------


@pytest.mark.timeout(90)
def test_a_passing_buy_is_green_case_for_case(invoke: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "reports" / "buy.xml"
    path.parent.mkdir()
    old = '<?xml version="1.0"?>\n<!-- made by tickets -->\n<testsuites name="an old report"/>\n'
    path.write_text(old)  # an earlier report of the tool's: replaced
    result = invoke("buy", "-n", "8", "-t", "3", *FAST, "--junit-xml", str(path), "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)  # stdout: the one JSON document, nothing else
    assert doc["passed"] is True and f"wrote {path}" in result.stderr
    root = report_of(path)
    assert [s.get("name") for s in root] == ["tickets buy (file)"]
    suite = root[0]
    assert suite.get("tests") == "9" and suite.get("failures") == suite.get("errors") == "0"
    names = [c.get("name") for c in suite.findall("testcase")]
    assert names == ["verdict", *(c["name"] for c in doc["checks"])]
    assert {c.get("classname") for c in suite.findall("testcase")} == {"tickets.buy.file"}
    assert all(outcome(c) == "passed" for c in suite.findall("testcase"))
    said = case(suite, "verdict").findtext("system-out", "")
    assert said.startswith("PASSED: 3 sold from a stock of 3, nothing oversold")
    assert f"contention: {doc['contention']['contended']} of 8 purchases" in said
    assert case(suite, "conservation").findtext("system-out") == doc["checks"][3]["detail"]
    expected = {"seed": "0", "store_kind": "json", "buyers": "8", "tickets": "3", "exit_code": "0"}
    assert expected.items() <= props(suite).items()
    assert props(suite)["history"] == doc["history"] and props(suite)["store"] == doc["store"]
    assert sorted(os.listdir(path.parent)) == ["buy.xml"]  # no temp file left beside it

    # tickets check of the history it saved says the same, check for check.
    again = tmp_path / "check.xml"
    assert invoke("check", doc["history"], "--junit-xml", str(again)).exit_code == 0
    checked = report_of(again)[0]
    assert checked.get("name") == doc["history"] and checked.get("failures") == "0"
    assert [c.get("name") for c in checked.findall("testcase")] == names
    assert {c.get("classname") for c in checked.findall("testcase")} == {"tickets.check.file"}
    assert props(checked)["history"] == doc["history"] and props(checked)["buyers"] == "8"


@pytest.mark.timeout(90)
def test_an_oversold_buy_fails_with_the_double_sold_seats(invoke: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "buy.xml"
    result = invoke("buy", "-n", "8", "-t", "2", *OVERSELL, "--junit-xml", str(path), "--json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    suite = report_of(path)[0]
    failed = [c["name"] for c in doc["checks"] if c["passed"] is False]
    assert {"no seat sold twice", "conservation"} <= set(failed)
    assert suite.get("failures") == str(1 + len(failed)) and suite.get("errors") == "0"
    failure = case(suite, "verdict").find("failure")
    assert failure is not None and failure.get("type") == "FAILED"
    assert failure.get("message") == (
        f"FAILED, as expected with --lock none (no exclusion): 2 tickets were sold "
        f"{doc['sold']} times, oversold by {doc['oversold']}"
    )
    body = failure.text or ""
    for seat in doc["double_sold_seats"]:
        sold = sum(1 for b in doc["buyers"] if b["seat"] == seat)
        assert f"seat {seat} sold {sold} times: buyers " in body
    twice = case(suite, "no seat sold twice").find("failure")
    assert twice is not None and twice.get("type") == "check failed"
    assert twice.get("message", "").startswith("no seat sold twice: ")
    assert {c.get("classname") for c in suite.iter("testcase")} == {"tickets.buy.none"}


@pytest.mark.timeout(60)
def test_one_buyer_is_not_proven_and_never_green(invoke: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "buy.xml"
    result = invoke("buy", "--buyers", "1", "-t", "3", "--junit-xml", str(path))
    assert result.exit_code == 5
    suite = report_of(path)[0]
    assert (suite.get("failures"), suite.get("skipped"), suite.get("errors")) == ("1", "0", "0")
    failure = case(suite, "verdict").find("failure")
    assert failure is not None and failure.get("type") == "NOT PROVEN"
    assert failure.get("message", "").startswith("NOT PROVEN: one purchase cannot race")
    assert "a sale that tested nothing proves nothing" in (failure.text or "")
    assert props(suite)["exit_code"] == "5"


@pytest.mark.timeout(60)
def test_xml_special_and_control_characters_stay_valid_xml(invoke: Invoke, tmp_path: Path) -> None:
    code = tmp_path / 'we<ird&"\x01.py'
    code.write_text("def take(store):\n    raise ValueError('<tag> & \"q\" ]]> \\x01\\x1b[31m')\n")
    path = tmp_path / "buy.xml"
    result = invoke("buy", "-n", "2", "-t", "2", "--buy", f"{code}:take", "--junit-xml", str(path))
    assert result.exit_code == 1  # every buyer ended on an error
    raw = path.read_bytes()
    assert b"\x01" not in raw and b"\x1b" not in raw
    suite = report_of(path)[0]
    assert props(suite)["buy"] == f'{tmp_path}/we<ird&".py:take'
    assert {c.get("classname") for c in suite.iter("testcase")} == {'tickets.buy.we<ird&"_py:take'}
    errors = case(suite, "no errors").find("failure")
    assert errors is not None and '<tag> & "q" ]]>' in errors.get("message", "")
    said = case(suite, "verdict").findtext("system-out", "")
    assert 'info: error: ValueError: <tag> & "q" ]]> [31m: 2' in said


def test_xml_text_leaves_out_what_xml_forbids() -> None:
    assert xml_text("a\x00b\x08c\td\ne\rf\udcff\ufffe\U0001f600<&>") == "abc\td\ne\rf\U0001f600<&>"


@pytest.mark.parametrize(
    "code, tag, kind",
    [(0, None, None), (1, "failure", "FAILED"), (5, "failure", "NOT PROVEN")]
    + [(3, "error", "ERROR"), (4, "error", "ABORTED"), (143, "error", "ABORTED")],
)
def test_the_verdict_case_says_what_the_exit_code_says(
    code: int, tag: str | None, kind: str | None
) -> None:
    """The verdict case never disagrees with the command's exit code."""
    checks = (Check("well-formed", True, "fine"), Check("conservation", code == 0, "lost"))
    report = Report(2, 0, 2, 0, 0, checks=checks)
    aborted = "terminated by SIGTERM" if code in (4, 143) else None
    made = verdict_case("tickets.buy.file", report, code, aborted=aborted, error="disk full")
    assert made.outcome == tag and (made.kind or None) == kind
    if code == 3:
        assert made.message == "ERROR: disk full"
    if aborted:
        assert made.message == f"ABORTED: {aborted}"


# -- race, queue ------------------------------------------------------------------


@pytest.mark.timeout(90)
def test_a_race_has_a_suite_per_side(invoke: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "race.xml"
    sides = ["--strategies", "none,file", "-n", "6", "-t", "2", "--search-delay", "0"]
    result = invoke("race", *sides, "--write-delay", "40", "--junit-xml", str(path))
    assert result.exit_code == 0, result.output
    root = report_of(path)
    top, unlocked, locked = root
    assert [s.get("name") for s in root] == [
        "tickets race",
        "tickets race (none)",
        "tickets race (file)",
    ]
    assert outcome(case(top, "verdict")) == "passed"
    assert {"strategies": "none, file", "trials": "1", "buyers": "6", "tickets": "2"}.items() <= (
        props(top).items()
    )
    # The unlocked side oversold, as it is there to: skipped, never red.
    verdict = case(unlocked, "verdict")
    assert (verdict.findtext("skipped") or "").startswith("expected failure (none does not")
    assert outcome(case(unlocked, "no seat sold twice")) == "skipped"
    assert unlocked.get("failures") == "0" and int(unlocked.get("skipped", "")) >= 2
    assert props(unlocked)["excludes"] == "false" and props(locked)["excludes"] == "true"
    assert locked.get("failures") == locked.get("skipped") == "0"
    assert locked.get("tests") == "9"
    assert {c.get("classname") for c in locked.iter("testcase")} == {"tickets.race.file"}
    assert (case(locked, "verdict").findtext("system-out") or "").startswith("with the file lock")


@pytest.mark.timeout(60)
def test_a_queue_with_one_clerk_is_not_proven(invoke: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "queue.xml"
    args = ["--producers", "2", "--orders", "3", "--clerks", "1", "-t", "4", "--no-delay"]
    result = invoke("queue", *args, "--junit-xml", str(path), "--json")
    assert result.exit_code == 5
    assert json.loads(result.stdout)["exit_code"] == 5
    suite = report_of(path)[0]
    assert suite.get("name") == "tickets queue (file)"
    failure = case(suite, "verdict").find("failure")
    assert failure is not None and failure.get("type") == "NOT PROVEN"
    assert "no two clerks' sales overlapped" in failure.get("message", "")
    expected = {"producers": "2", "orders": "3", "clerks": "1", "tickets": "4", "batch": "1"}
    assert expected.items() <= props(suite).items()
    assert {c.get("classname") for c in suite.iter("testcase")} == {"tickets.queue.file"}


# -- check ---------------------------------------------------------------------------


def test_check_has_a_suite_per_history(invoke: Invoke, tmp_path: Path) -> None:
    good = write(tmp_path / "good.jsonl", lines_of(2, 0, [Op("ok", 0, 1, 2), Op("ok", 0.5, 2, 1)]))
    forged = write(
        tmp_path / "forged.jsonl", lines_of(2, 1, [Op("ok", 0, 1, 2), Op("ok", 0, 1, 2)])
    )
    cut = [run_line(2, 2), *events_of([Op("ok", 0, 1, 2), Op("ok", 0.5, 2, 1)])]
    unfinished = write(tmp_path / "unfinished.jsonl", cut)
    path = tmp_path / "check.xml"
    paths = [str(good), str(forged), str(unfinished)]
    result = invoke("check", *paths, "--junit-xml", str(path), "--json")
    assert result.exit_code == 1 and json.loads(result.stdout)["passed"] is False
    root = report_of(path)
    assert [s.get("name") for s in root] == paths
    ok, bad, cut_short = root
    assert ok.get("failures") == "0"
    assert {"strategy": "process", "seed": "0", "tickets": "2", "history": paths[0]}.items() <= (
        props(ok).items()
    )
    assert {c.get("classname") for c in ok.iter("testcase")} == {"tickets.check.process"}
    twice = case(bad, "no seat sold twice").find("failure")
    assert twice is not None and "seat(s) sold more than once: 2" in twice.get("message", "")
    verdict = case(bad, "verdict").find("failure")
    assert verdict is not None and "seat 2 sold 2 times: buyers 0, 1" in (verdict.text or "")
    formed = case(cut_short, "well-formed").find("failure")
    assert formed is not None and "no end line" in (formed.text or "")


def test_check_one_sale_is_one_suite(invoke: Invoke, tmp_path: Path) -> None:
    first = [run_line(3, 1, run_id="a"), *events_of([Op("ok", 0, 1, 3)]), end_line(2)]
    later = run_line(3, 1, run_id="b", restocked=False, t=300.0)
    second = [later, *events_of([Op("ok", 0, 1, 3)], t0=300.0), end_line(1, t=400.0)]
    paths = [str(write(tmp_path / f"{n}.jsonl", h)) for n, h in (("a", first), ("b", second))]
    path = tmp_path / "sale.xml"
    result = invoke("check", *paths, "--one-sale", "--junit-xml", str(path))
    assert result.exit_code == 1  # seat 3 sold by both runs
    (suite,) = report_of(path)
    assert suite.get("name") == "one sale of 2 histories"
    assert [p.get("value") for p in suite.iter("property") if p.get("name") == "history"] == paths
    assert outcome(case(suite, "no seat sold twice")) == "failure"


# -- explore ---------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_explore_fails_with_the_schedule_and_passes_with_a_lock(
    invoke: Invoke, tmp_path: Path
) -> None:
    path = tmp_path / "explore.xml"
    result = invoke("explore", "--lock", "none", "-n", "2", "-t", "1", "--junit-xml", str(path))
    assert result.exit_code == 1
    (suite,) = report_of(path)
    found = case(suite, "2 buyers over 1 ticket")
    assert found.get("classname") == "tickets.explore.none"
    failure = found.find("failure")
    assert failure is not None and failure.get("type") == "FAILED"
    assert failure.get("message", "").startswith("FAILED: --lock none, 2 buyers over 1 ticket, ")
    body = (failure.text or "").splitlines()
    assert body[0].startswith("step  1  buyer ") and "seat 1 sold twice (buyers 0 and 1)" in body
    schedule = props(suite)["schedule"]
    assert Path(schedule).is_file() and Path(props(suite)["history"]).is_file()
    assert f"replay    tickets explore --replay {schedule}" in body

    replayed = tmp_path / "replay.xml"
    assert invoke("explore", "--replay", schedule, "--junit-xml", str(replayed)).exit_code == 1
    again = case(report_of(replayed)[0], f"replay of {schedule}").find("failure")
    assert again is not None and "seat 1 sold twice (buyers 0 and 1)" in (again.text or "")

    result = invoke("explore", "--lock", "file", "-n", "2", "-t", "1", "--junit-xml", str(path))
    assert result.exit_code == 0
    (suite,) = report_of(path)
    passed = case(suite, "2 buyers over 1 ticket")
    assert outcome(passed) == "passed" and passed.get("classname") == "tickets.explore.file"
    assert (passed.findtext("system-out") or "").startswith("PASSED: all ")


# -- where it goes ---------------------------------------------------------------------


def unwritable(tmp_path: Path, kind: str) -> tuple[Path, str]:
    """A path --junit-xml must refuse, and the one line that refuses it."""
    path = tmp_path / "report.xml"
    again = "give --junit-xml another path"
    if kind == "folder":
        path.mkdir()
        return path, f"Error: {path}: is a folder; tickets never writes into one; {again}"
    if kind == "fifo":
        os.mkfifo(path)
        return path, f"Error: {path}: is a FIFO; tickets never writes into one; {again}"
    if kind == "link":
        (tmp_path / "target.xml").write_text("kept\n")
        path.symlink_to(tmp_path / "target.xml")
        return path, f"Error: {path}: is a symbolic link; tickets never follows one; {again}"
    gone = tmp_path / "gone"
    path = gone / "report.xml"
    return (
        path,
        f"Error: {path}: cannot be written: folder {gone} does not exist; create it or {again}",
    )


@pytest.mark.parametrize("kind", ["folder", "fifo", "link", "missing folder"])
@pytest.mark.parametrize(
    "command", [["buy", "-n", "2"], ["race"], ["queue"], ["explore"], ["check", "h.jsonl"]]
)
def test_a_path_it_cannot_write_is_refused_before_anything_runs(
    invoke: Invoke, tmp_path: Path, kind: str, command: list[str]
) -> None:
    path, says = unwritable(tmp_path, kind)
    before = snapshot(tmp_path)
    result = invoke(*command, "--junit-xml", str(path), "--json")
    assert result.exit_code == 3  # as for --svg: an output file that cannot be used
    assert result.stderr.strip().splitlines() == [says]
    assert json.loads(result.stdout)["exit_code"] == 3  # one JSON document still
    assert snapshot(tmp_path) == before  # nothing ran: no store, no history, nothing written
    assert not (tmp_path / "history").exists() and not (tmp_path / "tickets.json").exists()


# -- a stopped run ---------------------------------------------------------------------


@pytest.mark.timeout(90)
def test_a_stopped_run_still_writes_its_report(tmp_path: Path) -> None:
    store, path = tmp_path / "tickets.json", tmp_path / "stopped.xml"
    slow = ["buy", "-n", "6", "-t", "50", "--search-delay", "0", "--write-delay", "400"]
    cmd = [sys.executable, "-m", "tickets", *slow, "--junit-xml", str(path), "--json"]
    env = {**os.environ, "TICKETS_DB": str(store)}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 30
        while not list((tmp_path / "history").glob("*.jsonl")) or not any(
            p.read_text().count("\n") >= 2 for p in (tmp_path / "history").glob("*.jsonl")
        ):  # the run line and an event: the sale is under way
            assert time.monotonic() < deadline, "the run never started"
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode == 143, err
    assert json.loads(out)["exit_code"] == 143
    suite = report_of(path)[0]
    error = case(suite, "verdict").find("error")
    assert error is not None and error.get("type") == "ABORTED"
    assert error.get("message") == "ABORTED: terminated by SIGTERM"
    assert suite.get("errors") == "1" and props(suite)["exit_code"] == "143"


def test_the_report_loads_neither_click_nor_rich() -> None:
    """The JUnit writers are core: a CI job that asks for a report pays for no terminal library."""
    code = (
        "import sys, tickets.render.junit, tickets.render.junit_explore; print(sorted(sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    loaded = out.stdout
    assert out.returncode == 0 and "'click'" not in loaded and "'rich'" not in loaded


@pytest.mark.parametrize("held", ["store", "history", "code", "lock", "pom"])
def test_a_report_never_replaces_a_file_that_is_not_one(
    invoke: Invoke, tmp_path: Path, held: str
) -> None:
    victim = tmp_path / "victim"
    text = {
        "store": '{"count": 7}\n',
        "history": '{"type": "run"}\n',
        "code": "def f(): pass\n",
        "lock": "",  # a store's lock or claim file: empty, never a report
        "pom": '<?xml version="1.0"?>\n<project/>\n',  # someone's own XML
    }
    victim.write_text(text[held])
    result = invoke("buy", "-n", "2", "-t", "1", "--junit-xml", str(victim))
    assert result.exit_code == 3 and "is not a report or a picture tickets wrote" in result.output
    assert victim.read_text() == text[held] and not Path("history").exists()


def test_a_report_path_the_run_writes_itself_is_a_usage_error(invoke: Invoke) -> None:
    for args in (
        ["--db", "s.json", "buy", "--junit-xml", "s.json"],
        ["buy", "--history", "h.jsonl", "--junit-xml", "h.jsonl"],
    ):
        result = invoke(*args, "-n", "2", "-t", "1")
        assert result.exit_code == 2 and "is a file this run writes" in result.output
        assert not Path(args[-1]).exists() and not Path("s.json").exists()


def test_a_refused_command_replaces_an_old_green_report_with_its_error(
    invoke: Invoke, tmp_path: Path
) -> None:
    """A reused workspace: yesterday's green report must not stand beside
    today's red job."""
    path = tmp_path / "tickets-buy.xml"
    done = invoke("buy", "-n", "4", "-t", "2", "--search-delay", "20", "--junit-xml", str(path))
    assert done.exit_code == 0, done.output
    assert outcome(case(report_of(path)[0], "verdict")) == "passed"
    result = invoke("buy", "--buy", "nope.py:take", "--junit-xml", str(path))
    assert result.exit_code == 2
    (suite,) = report_of(path)
    error = case(suite, "verdict").find("error")
    assert error is not None and error.get("message") == "ERROR: --buy nope.py: no such file"
    assert props(suite)["exit_code"] == "2"


def test_an_explored_buyer_s_replay_line_names_its_code(invoke: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "explore.xml"
    broken = f"{ROOT / 'examples' / 'booking.py'}:take_ticket_broken"
    done = invoke("explore", "--buy", broken, "-n", "2", "-t", "1", "--junit-xml", str(path))
    assert done.exit_code == 1, done.output
    failure = case(report_of(path)[0], "2 buyers over 1 ticket").find("failure")
    assert failure is not None
    [replay] = [x for x in (failure.text or "").splitlines() if x.startswith("replay")]
    assert replay.endswith(f"--buy {broken}")
