"""Verdicts as JUnit XML (``--junit-xml PATH``), the file a CI system's test
report reads: GitLab's ``artifacts: reports: junit``, Jenkins' ``junit``
step, a report action on GitHub.

Every verdict has a ``verdict`` test case and one case per named check
(see :class:`tickets.check.verdict.Report`); a race has a suite for the
race and one per side, ``check`` one per history (or per sale), an
exploration one case for its search. The verdict case fails as the exit
code does: PASSED passes, FAILED is a ``<failure>``, NOT PROVEN is a
``<failure type="NOT PROVEN">`` (never ``<skipped>``: a skipped test is
green in the gates of most CI systems, and the command exits 5), an
ABORTED run, one that ended on an ERROR or was stopped by a signal is an
``<error>``. A check that could not run is ``<skipped>``; so is a check an
unlocked side of a race failed, as it is there to (pytest writes an
expected failure so too).

What the files hold validates against the schema Jenkins' JUnit format is
described by (``tests/junit/``): ``<skipped>`` carries its words as text,
not in attributes. Outside text (a user's file or function name, an
error a buyer raised) loses the characters XML 1.0 forbids; ElementTree
escapes the rest. No click or rich here; ``explore``'s cases are in
:mod:`tickets.render.junit_explore`.
"""

from __future__ import annotations

import re
import socket
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from ..constants import EXIT_ABORTED, EXIT_CHECK_FAILED, EXIT_STORE, EXIT_UNPROVEN
from .words import blamed_strategy, failed_line, passed_line

if TYPE_CHECKING:
    from ..check.verdict import Report
    from ..engine.ledger import RunResult
    from ..engine.race import RaceResult, RaceRun, SideStats
    from ..locking.strategies import Strategy

#: Every character XML 1.0 forbids (its ``Char`` production): control
#: characters but tab, newline and carriage return; lone surrogates (a
#: file name's undecodable bytes); U+FFFE and U+FFFF.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
#: A case's outcomes (None: it passed).
FAILURE, ERROR, SKIPPED = "failure", "error", "skipped"
#: The ``type`` of a failed check's ``<failure>``.
CHECK_FAILED = "check failed"
#: The most double-sold seats (buyers of each, outcomes) a verdict's words name.
MAX_LISTED = 20


def xml_text(text: object) -> str:
    """``text`` as XML 1.0 may hold it: forbidden characters left out."""
    return _NOT_XML.sub("", str(text))


@dataclass
class Case:
    """One ``<testcase>``."""

    name: str
    classname: str
    #: None (passed), FAILURE, ERROR or SKIPPED
    outcome: str | None = None
    #: the failure's or error's ``type``: the verdict's word, or CHECK_FAILED
    kind: str = ""
    #: the one-line reason (a skipped case's is its text)
    message: str = ""
    #: the detail lines under it
    body: str = ""
    #: what the case said, passed or not (``<system-out>``)
    out: str = ""
    time: float = 0.0


@dataclass
class Suite:
    """One ``<testsuite>``: a sale's verdict (a race side's, a history's)."""

    name: str
    cases: list[Case]
    properties: list[tuple[str, object]] = field(default_factory=list)
    time: float = 0.0
    #: seconds before now that it began
    ago: float = 0.0


@dataclass(frozen=True)
class Checked:
    """What ``tickets check`` judged: one history, or one sale of several."""

    name: str
    report: Report
    #: the run line of each history
    runs: Sequence[Mapping[str, object]]
    paths: Sequence[str]
    seconds: float = 0.0


def is_error(code: int) -> bool:
    """An exit code a report shows as an error: the store or a file (3),
    a stopped run (4), a signal (128 + n)."""
    return code in (EXIT_STORE, EXIT_ABORTED) or code >= 128


def who(strategy: str, buy: str | None = None, command: str | None = None) -> str:
    """The last part of a case's classname: the strategy, or the user's
    buyer (``booking_py:take_ticket``: a dot would split it in a report)."""
    if command is not None:
        return "exec"
    if buy is None:
        return strategy.replace(".", "_")
    where, _, function = buy.rpartition(":")
    return f"{where.rsplit('/', 1)[-1]}:{function}".replace(".", "_")


def plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


# -- words --------------------------------------------------------------------


def seat_lines(report: Report) -> list[str]:
    """``seat 10 sold 3 times: buyers 0, 4, 7``, the first MAX_LISTED."""
    lines = []
    for seat in report.double_sold_seats[:MAX_LISTED]:
        buyers = report.double_sold[seat]
        named = ", ".join(str(b) for b in buyers[:MAX_LISTED])
        more = " …" if len(buyers) > MAX_LISTED else ""
        lines.append(f"seat {seat} sold {len(buyers)} times: buyers {named}{more}")
    if len(report.double_sold) > MAX_LISTED:
        lines.append(f"… and {len(report.double_sold) - MAX_LISTED} more double-sold seats")
    return lines


def verdict_words(report: Report, strategy: Strategy | None = None) -> tuple[str, list[str]]:
    """The verdict's one line and its detail lines, in the table's words
    (tickets.render.words; ``strategy`` None for the user's own buyer)."""
    if report.passed:
        return passed_line(report), [f"{c.name}: {c.detail}" for c in report.not_run()]
    if report.unproven:
        return unproven_words(report)
    lines = seat_lines(report)
    return failed_line(report, strategy), lines + [
        f"{c.name}: {c.detail}" for c in report.failures()
    ]


def unproven_words(report: Report) -> tuple[str, list[str]]:
    """Why a sale in which no check failed proves nothing."""
    because = "no check failed, but a sale that tested nothing proves nothing"
    if report.aborted:
        head = f"NOT PROVEN: the run was aborted ({report.aborted})"
        because = "no check failed on what it recorded, but a sale cut short proves nothing"
    elif report.untested:
        head = f"NOT PROVEN: {report.untested}"
    else:
        head = f"NOT PROVEN: {report.sold} sold from a stock nobody read"
        because = "no check failed, but these could not run: " + ", ".join(
            c.name for c in report.not_run()
        )
    return head, [because, *(f"{c.name}: {c.detail}" for c in report.not_run())]


def verdict_case(
    classname: str,
    report: Report,
    code: int,
    *,
    strategy: Strategy | None = None,
    aborted: str | None = None,
    error: str | None = None,
    out: Sequence[str] = (),
) -> Case:
    """The ``verdict`` case: as the exit code ``code`` says it."""
    head, lines = verdict_words(report, strategy)
    said = [head, *lines] if code == 0 else []  # else the failure's or error's words
    case = Case("verdict", classname, out="\n".join([*said, *out]))
    if is_error(code):
        case.outcome = ERROR
        if aborted:
            case.kind, case.message = "ABORTED", f"ABORTED: {aborted}"
        else:
            case.kind, case.message = "ERROR", f"ERROR: {error or f'exit {code}'}"
        case.body = "\n".join([head, *lines])
    elif code:
        case.outcome = FAILURE
        case.kind = "NOT PROVEN" if code == EXIT_UNPROVEN else "FAILED"
        case.message, case.body = head, "\n".join(lines)
    return case


def check_cases(
    report: Report, classname: str, prefix: str = "", expected: str | None = None
) -> list[Case]:
    """A case per named check; ``expected``: why a failure is expected
    (an unlocked side of a race), and skipped."""
    cases = []
    for check in report.checks:
        case = Case(prefix + check.name, classname, out=check.detail)
        first = check.detail.split("\n", 1)[0]
        if check.passed is None:
            case.outcome, case.message = SKIPPED, f"not run: {check.detail}"
        elif check.passed is False and expected is not None:
            case.outcome, case.message = SKIPPED, f"expected failure ({expected}): {check.detail}"
        elif check.passed is False:
            case.outcome, case.kind = FAILURE, CHECK_FAILED
            case.message, case.body = f"{check.name}: {first}", check.detail
        cases.append(case)
    return cases


# -- one run: buy, queue --------------------------------------------------------


def run_properties(result: RunResult, code: int) -> list[tuple[str, object]]:
    """What the run was: as ``--json`` names it (the store without a password)."""
    cfg = result.config
    props: list[tuple[str, object]] = [
        ("command", f"tickets {cfg.mode}"),
        ("strategy", cfg.strategy.name),
        ("store", cfg.store.label),
        ("store_kind", cfg.store.kind),
        ("seed", cfg.seed),
        ("tickets", "unknown" if result.initial is None else result.initial),
        ("stock", result.stock),
    ]
    for name in ("buyers", "buy", "exec", "producers", "orders", "clerks", "batch"):
        value = getattr(cfg, "command" if name == "exec" else name, None)
        if value is not None:
            props.append((name, value))
    history = "not kept (--history none)" if result.history is None else str(result.history)
    return [*props, ("history", history), ("exit_code", code)]


def run_outline(result: RunResult) -> list[str]:
    """The summary lines a verdict case says besides its verdict."""
    report = result.report
    lines = [
        f"stock: {result.stock}",
        f"sold {report.sold}, remaining {report.remaining}, oversold {report.oversold}, "
        f"unknown {report.unknown}",
        f"contention: {report.contention.words()}",
    ]
    outcomes = list((result.outcomes or {}).items())
    lines += [f"{what}: {n}" for what, n in outcomes[:MAX_LISTED]]
    if len(outcomes) > MAX_LISTED:
        lines.append(f"… and {len(outcomes) - MAX_LISTED} more outcomes")
    lines += list(result.notes)
    return lines + [f"history: {result.history}" if result.history else "history: not kept"]


def run_suite(result: RunResult, code: int, classname: str) -> Suite:
    """One run's suite: its verdict, then its checks."""
    strategy = blamed_strategy(result)
    verdict = verdict_case(
        classname,
        result.report,
        code,
        strategy=strategy,
        aborted=result.aborted,
        error=result.store_error or result.run_error,
        out=run_outline(result),
    )
    verdict.time = result.duration_s
    cases = [verdict, *check_cases(result.report, classname)]
    props = run_properties(result, code)
    return Suite(
        f"tickets {result.config.mode}", cases, props, result.duration_s, result.duration_s
    )


def run_xml(result: RunResult, code: int) -> bytes:
    """``buy`` or ``queue``: one suite, classname ``tickets.buy.<strategy>``."""
    cfg = result.config
    side = who(cfg.strategy.name, getattr(cfg, "buy", None), getattr(cfg, "command", None))
    suite = run_suite(result, code, f"tickets.{cfg.mode}.{side}")
    suite.name = f"tickets {cfg.mode} ({side})"
    return document(f"tickets {cfg.mode}", [suite])


# -- a race ---------------------------------------------------------------------


def race_xml(race: RaceResult, code: int) -> bytes:
    """A suite for the race's verdict, then one per side: its verdict over
    its trials, and every trial's checks."""
    from ..engine.race import in_words

    seconds = sum(r.result.duration_s for r in race.runs)
    words = [in_words(side) for side in race.sides]
    passed = ["PASSED: every side that excludes passed every check in every trial"]
    said = passed if race.verdict.passed else list(race.verdict.reasons)
    case = Case("verdict", "tickets.race", out="\n".join([*said, *words]))
    case.time = seconds
    aborted = next((r.result.aborted for r in race.runs if r.result.aborted), None)
    if is_error(code):
        case.outcome, case.kind = ERROR, "ABORTED"
        case.message = f"ABORTED: {aborted or '; '.join(race.verdict.reasons) or f'exit {code}'}"
    elif code:
        case.outcome, case.kind = FAILURE, "NOT PROVEN" if race.verdict.unproven else "FAILED"
        case.message = f"{case.kind}: " + "; ".join(race.verdict.reasons)
        case.body = "\n".join(words)
    top = Suite("tickets race", [case], race_properties(race, code), seconds, seconds)
    suites = [top] + [side_suite(race, side, seconds) for side in race.sides]
    return document("tickets race", suites)


def race_properties(race: RaceResult, code: int) -> list[tuple[str, object]]:
    props: list[tuple[str, object]] = [
        ("command", "tickets race"),
        ("strategies", ", ".join(side.strategy for side in race.sides)),
        ("trials", max((side.trials for side in race.sides), default=0)),
    ]
    if race.runs:
        cfg = race.runs[0].result.config
        props += [
            ("store", cfg.store.label),
            ("store_kind", cfg.store.kind),
            ("seed", cfg.seed),
            ("buyers", getattr(cfg, "buyers", 0)),
            ("tickets", race.runs[0].result.initial),
        ]
    return [*props, ("exit_code", code)]


def side_suite(race: RaceResult, side: SideStats, ago: float) -> Suite:
    """One side: its verdict over its trials, then each trial's checks (an
    unlocked side's failed checks skipped: expected)."""
    from ..engine.race import is_user_code

    runs = [r for r in race.runs if r.strategy == side.strategy]
    buy = side.strategy if is_user_code(side.strategy) else None
    classname = f"tickets.race.{who(side.strategy, buy)}"
    expected = None if side.excludes else f"{side.strategy} does not exclude"
    cases = [side_verdict(race, side, runs, classname)]
    props: list[tuple[str, object]] = [("strategy", side.strategy), ("excludes", side.excludes)]
    for run in runs:
        prefix = "" if side.trials == 1 else f"trial {run.trial + 1}: "
        cases += check_cases(run.result.report, classname, prefix, expected)
        props += [(prefix + "seed", run.result.config.seed)]
        props += [(prefix + "history", run.result.history or "not kept (--history none)")]
    seconds = sum(r.result.duration_s for r in runs)
    return Suite(f"tickets race ({side.strategy})", cases, props, seconds, ago)


def side_verdict(
    race: RaceResult, side: SideStats, runs: Sequence[RaceRun], classname: str
) -> Case:
    """A side's verdict: an error if a trial was stopped, a failure if the
    race's verdict names it or it proved nothing, skipped if it failed as
    an unlocked side is there to."""
    from ..engine.race import in_words

    trials = [f"trial {r.trial + 1}: " + trial_words(r) for r in runs]
    case = Case("verdict", classname, out="\n".join([in_words(side), *trials]))
    case.time = sum(r.result.duration_s for r in runs)
    named = [  # the reasons a race failed (an unproven race's name what proved nothing)
        why
        for why in race.verdict.reasons
        if why.startswith(side.strategy + " ") and not race.verdict.unproven
    ]
    stopped = next((r.result.aborted for r in runs if r.result.aborted), None)
    if stopped is not None:
        case.outcome, case.kind, case.message = ERROR, "ABORTED", f"ABORTED: {stopped}"
    elif named:
        case.outcome, case.kind, case.message = FAILURE, "FAILED", "FAILED: " + "; ".join(named)
    elif side.unproven_trials:
        case.outcome, case.kind = FAILURE, "NOT PROVEN"
        case.message = (
            f"NOT PROVEN: {side.strategy} proved nothing in {side.unproven_trials} of "
            f"{side.trials} trial(s) ({side.unproven_why})"
        )
    elif not side.excludes and side.failed_check_trials:
        case.outcome = SKIPPED
        case.message = f"expected failure ({side.strategy} does not exclude): {in_words(side)}"
    case.body = "\n".join(trials) if case.outcome in (ERROR, FAILURE) else ""
    return case


def trial_words(run: RaceRun) -> str:
    """A trial's verdict, and its detail lines indented under it."""
    from ..engine.race import is_user_code

    strategy = None if is_user_code(run.strategy) else run.result.config.strategy
    head, lines = verdict_words(run.result.report, strategy)
    return "\n  ".join([head, *lines])


# -- tickets check ----------------------------------------------------------------


def check_xml(checked: Sequence[Checked], code: int) -> bytes:
    """A suite per history (or per sale of several): its verdict and checks."""
    suites = []
    for item in checked:
        report = item.report
        sides = {who(str(r.get("strategy", "?")), own_buyer(r)) for r in item.runs}
        classname = f"tickets.check.{sides.pop() if len(sides) == 1 else 'mixed'}"
        own = 0 if report.passed else EXIT_UNPROVEN if report.unproven else EXIT_CHECK_FAILED
        cases = [verdict_case(classname, report, own), *check_cases(report, classname)]
        cases[0].time = item.seconds
        suites.append(Suite(item.name, cases, check_properties(item, own), item.seconds))
    return document("tickets check", suites)


def own_buyer(run: Mapping[str, object]) -> str | None:
    """The user's buyer a history's run line names (``--buy``), if any."""
    buyer = run.get("buyer")
    return None if buyer is None else str(buyer)


def check_properties(item: Checked, code: int) -> list[tuple[str, object]]:
    """What the histories' run lines say of their sales (a forged one's
    words are its own), and the histories."""
    props: list[tuple[str, object]] = [("command", "tickets check")]
    for key in ("mode", "strategy", "buyer", "store", "store_kind", "seed", "buyers"):
        values = sorted({str(run[key]) for run in item.runs if run.get(key) is not None})
        if values:
            props.append((key, ", ".join(values)))
    tickets = sorted({str(run.get("initial")) for run in item.runs})
    props += [("tickets", ", ".join(tickets))] if tickets else []
    return [*props, *(("history", path) for path in item.paths), ("exit_code", code)]


# -- the document ---------------------------------------------------------------------


def refused_xml(command: str, message: str, code: int | None) -> bytes:
    """The report of a command refused before it had a verdict (a usage
    error, a store it could not use, a stop before any result): one error
    case saying why, in place of any report an earlier run left at the
    path, which would otherwise show green beside a red job."""
    name = f"tickets {command}".strip()
    case = Case("verdict", f"tickets.{command or 'command'}", ERROR, "ERROR")
    case.message = xml_text(f"ERROR: {message}")[:2000]
    props: list[tuple[str, object]] = [] if code is None else [("exit_code", code)]
    return document(name, [Suite(name, [case], props)])


def document(name: str, suites: Sequence[Suite]) -> bytes:
    """``<testsuites>`` of ``suites``, as UTF-8 bytes with the XML declaration."""
    root = ET.Element("testsuites", name=xml_text(name))
    now = datetime.now().astimezone()
    host = xml_text(socket.gethostname())
    totals = {"tests": 0, "failures": 0, "errors": 0}
    for suite in suites:
        counts = {
            "tests": len(suite.cases),
            "failures": sum(c.outcome == FAILURE for c in suite.cases),
            "errors": sum(c.outcome == ERROR for c in suite.cases),
            "skipped": sum(c.outcome == SKIPPED for c in suite.cases),
        }
        for key in totals:
            totals[key] += counts[key]
        began = (now - timedelta(seconds=suite.ago)).isoformat(timespec="seconds")
        attributes = {"name": xml_text(suite.name), **{k: str(n) for k, n in counts.items()}}
        attributes |= {"time": seconds(suite.time), "timestamp": began, "hostname": host}
        element = ET.SubElement(root, "testsuite", attributes)
        properties = ET.SubElement(element, "properties")
        for key, value in suite.properties:
            if value is not None:
                ET.SubElement(properties, "property", name=key, value=property_text(value))
        for case in suite.cases:
            case_element(element, case)
    for key, n in totals.items():
        root.set(key, str(n))
    root.set("time", seconds(sum(s.time for s in suites)))
    ET.indent(root)
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=False)
    from .files import OUTPUT_MARK

    head = f'<?xml version="1.0" encoding="UTF-8"?>\n<!-- {OUTPUT_MARK} -->\n'.encode()
    return head + data + b"\n"


def case_element(parent: ET.Element, case: Case) -> None:
    """One ``<testcase>``: its outcome first, then what it said (the order
    the Jenkins schema asks for)."""
    element = ET.SubElement(
        parent,
        "testcase",
        name=xml_text(case.name),
        classname=xml_text(case.classname),
        time=seconds(case.time),
    )
    if case.outcome == SKIPPED:  # the schema gives <skipped> no attributes: its text says why
        ET.SubElement(element, SKIPPED).text = xml_text(case.message)
    elif case.outcome is not None:
        outcome = ET.SubElement(
            element, case.outcome, type=xml_text(case.kind), message=xml_text(case.message)
        )
        outcome.text = xml_text(case.body) or None
    if case.out:
        ET.SubElement(element, "system-out").text = xml_text(case.out)


def property_text(value: object) -> str:
    """A property's value as ``--json`` would say it: ``true``, ``3``, a path."""
    return ("true" if value else "false") if isinstance(value, bool) else xml_text(value)


def seconds(value: float) -> str:
    """A time as surefire writes it: ``0.052``."""
    return f"{max(0.0, value):.3f}"
