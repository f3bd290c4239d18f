"""A green must be earned: a sale that nobody could take part in, or that had
no stock, is never PASSED. Exit 3 when a lock or the store stayed held by
someone else past --lock-timeout (whatever the store or strategy), NOT
PROVEN (5) otherwise; a sale where some bought and others were turned away
is judged as any, and says how many were."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from histories import end_line, run_line, write


def tickets(*args: str, cwd: Path | None = None) -> tuple[int, dict[str, Any], str]:
    done = subprocess.run(
        [sys.executable, "-m", "tickets", *args, "--json"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, json.loads(done.stdout), done.stderr


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "lock", ["atomic", pytest.param("transaction", marks=pytest.mark.stress), "file"]
)
def test_a_sqlite_store_held_by_another_connection_is_exit_3(tmp_path: Path, lock: str) -> None:
    """Every buyer was refused ("database is locked") or busy: it used to be
    "0 sold ... nothing oversold", exit 0."""
    db = f"sqlite:{tmp_path / 'q.db'}"
    assert tickets("--db", db, "init", "-t", "10")[0] == 0
    holder = sqlite3.connect(tmp_path / "q.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        code, doc, err = tickets(
            "--db", db, "buy", "-n", "4", "--lock", lock, "--lock-timeout", "0.3"
        )
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert code == 3 and doc["exit_code"] == 3 and doc["passed"] is False, err
    assert doc["run_error"].startswith(
        "no buyer could take part: a lock or the store stayed held past --lock-timeout 0.3s"
    )
    assert doc["nothing_tested"].startswith("no buyer completed an attempt against the store")
    assert doc["sold"] == 0 and doc["turned_away"] == 4


@pytest.mark.timeout(120)
def test_a_redis_lease_held_by_another_client_is_exit_3(redis_server: Any, redis_url: str) -> None:
    assert tickets("--db", redis_url, "init", "-t", "10")[0] == 0
    redis_server.client().set("t:lease", "someone else", px=60_000)
    code, doc, err = tickets(
        "--db", redis_url, "buy", "-n", "3", "--lock", "lease", "--lock-timeout", "0.3"
    )
    assert code == 3, err
    assert "busy: lease t:lease was not acquired within 0.3s" in doc["run_error"]


@pytest.mark.timeout(120)
def test_buyers_that_all_hang_prove_nothing(tmp_path: Path) -> None:
    (tmp_path / "hangs.py").write_text("import time\ndef buy(h):\n    time.sleep(60)\n")
    code, doc, _ = tickets(
        "buy", "-n", "3", "-t", "5", "--buy", "hangs.py:buy", "--buyer-timeout", "1", cwd=tmp_path
    )
    assert code == 5 and doc["unproven"] and not doc["passed"]
    assert doc["nothing_tested"] == (
        "no buyer completed an attempt against the store: 3 of unknown outcome"
    )


@pytest.mark.timeout(120)
def test_some_bought_and_the_rest_were_turned_away_is_judged_and_said(tmp_path: Path) -> None:
    """Every buyer holds the lock 2 s between its read and its write; the
    others wait 0.3 s: one sells, two are busy. The busy ones never reached
    the stock, so one purchase raced nobody: NOT PROVEN, and the verdict
    says how many were turned away."""
    env = {**os.environ, "TICKETS_DB": str(tmp_path / "tickets.json")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tickets",
            "buy",
            "-n",
            "3",
            "-t",
            "5",
            "--no-delay",
            "--lock-timeout",
            "0.3",
            "--chaos",
            "--kill-rate",
            "0",
            "--pause-rate",
            "1",
            "--pause-length",
            "2000",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # One sold; the two turned away never reached the stock: nothing raced
    assert done.returncode == 5, done.stdout
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("NOT PROVEN: one purchase cannot race") or last.startswith(
        "NOT PROVEN: no two purchases overlapped"
    ), last
    assert "; 2 turned away (busy or refused) raced nobody for it" in last


def test_check_of_a_sale_nobody_took_part_in_is_not_proven(tmp_path: Path, invoke: Any) -> None:
    busy = {
        "type": "fail",
        "buyer": 0,
        "reason": "busy: lock x.lock was not acquired within 1s",
        "t": 12,
    }
    path = write(
        tmp_path / "h.jsonl",
        [run_line(3), {"type": "invoke", "buyer": 0, "t": 11}, busy, end_line(3)],
    )
    result = invoke("check", str(path), "--json")
    doc = json.loads(result.output)
    assert result.exit_code == 5 and doc["passed"] is False and doc["unproven"] is True
    assert doc["nothing_tested"] == (
        "no buyer completed an attempt against the store: 1 busy "
        "(a lock or the store held past --lock-timeout)"
    )
    empty = write(tmp_path / "e.jsonl", [run_line(0), end_line(0)])
    result = invoke("check", str(empty))
    assert result.exit_code == 5 and "NOT PROVEN: the store had no tickets" in result.output


@pytest.mark.timeout(120)
def test_a_command_that_prints_an_id_among_seats_is_an_unknown_outcome(tmp_path: Path) -> None:
    """Buyer 2 prints ``05`` (an id: not a seat) where the others print
    seats: whichever kind came second is that buyer's unknown outcome, with
    a note; the history reads back whole, its seats all checked."""
    command = (
        "if [ $TICKETS_BUYER = 2 ]; then echo 05; else echo $((TICKETS_BUYERS - TICKETS_BUYER)); fi"
    )
    code, doc, err = tickets(
        "buy",
        "-n",
        "4",
        "--exec",
        command,
        "--stock-cmd",
        "echo 4",
        "--history",
        "h.jsonl",
        cwd=tmp_path,
    )
    assert code == 1, err  # "no errors" fails: the malformed report is the command's bug
    odd = [b for b in doc["buyers"] if b["result"] == "info"]
    assert odd and all("report was malformed" in b["reason"] for b in odd)
    assert any(n.startswith("a malformed report is an unknown outcome") for n in doc["notes"])
    check = subprocess.run(
        [sys.executable, "-m", "tickets", "check", "h.jsonl", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 1 and json.loads(check.stdout)["unknown"] == len(odd)


def test_only_a_held_lock_or_store_counts_as_held() -> None:
    """A full order queue turned the order away, but nobody held anything:
    a sale of only those is not proven, never the exit 3 of a held lock."""
    from tickets.check.operations import Operations

    ops = Operations(3, 10.0)
    reasons = [
        "busy: the order queue stayed full, try again",
        "busy: lock x.lock was not acquired within 1s",
        "refused: database is locked",
    ]
    for n, reason in enumerate(reasons):
        ops.add({"type": "invoke", "buyer": n, "t": 11.0})
        ops.add({"type": "fail", "buyer": n, "reason": reason, "t": 12.0})
    assert (ops.refused, ops.held) == (3, 2)
    assert ops.first_held == "busy: lock x.lock was not acquired within 1s"
