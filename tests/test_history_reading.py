"""Reading histories is bounded and safe: special files are refused at once,
no line is held whole past the limit, memory grows with the operations and
not the bytes, and text from a history never steers the terminal."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from histories import Op, end_line, lines_of, run_line, write

Invoke = Callable[..., Result]
ROOT = Path(__file__).resolve().parent.parent
#: Address space for a `tickets check` child: the interpreter and its imports
#: fit, a history held whole or a line read to its end does not.
ADDRESS_SPACE = 512 << 20


def tickets_limited(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))

    return subprocess.run(
        [sys.executable, "-m", "tickets", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=limit,
    )


@pytest.mark.timeout(60)
@pytest.mark.parametrize("command", ["check", "timeline"])
def test_special_files_are_refused_at_once(tmp_path: Path, command: str) -> None:
    fifo = tmp_path / "history.fifo"
    os.mkfifo(fifo)
    for path in (str(fifo), "/dev/zero", "/dev/null"):
        done = tickets_limited(command, path, timeout=20)
        assert done.returncode == 3, (path, done.stderr)
        assert "not a regular file" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.timeout(60)
def test_a_huge_line_is_refused_within_the_memory_limit(tmp_path: Path) -> None:
    """2 GiB without a newline (sparse: it costs no disk), checked under a
    512 MiB address space: refused at the line limit, with the line's number."""
    path = tmp_path / "huge.jsonl"
    with open(path, "wb") as f:
        f.write(json.dumps(run_line(1)).encode() + b"\n" + b'{"type": "invoke", "reason": "')
        f.truncate(2 << 30)
    done = tickets_limited("check", str(path))
    assert done.returncode == 3, done.stderr
    assert done.stderr.strip() == f"Error: {path}: line 2 is too long for a history"


@pytest.mark.timeout(120)
def test_memory_grows_with_operations_not_bytes(tmp_path: Path) -> None:
    """A 100,000-order queue history (~33 MB) checked in a fresh process:
    under 200 bytes of peak memory per operation above an idle process."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from history_check import CHECK, IDLE, python, write_queue_history
    finally:
        sys.path.remove(str(ROOT / "bench"))
    path = tmp_path / "queue.jsonl"
    size = write_queue_history(path, 100_000)
    _, peak_kb = python(CHECK, str(path))
    (idle_kb,) = python(IDLE)
    per_op = (peak_kb - idle_kb) * 1024 / 100_000
    assert per_op < 200, f"{per_op:.0f} bytes per operation for a {size:,}-byte history"


HOSTILE = "\x1b]0;owned\x07\x1b[2J\u202eevil\ud800 [bold red]markup[/]"


def test_history_text_is_stripped_of_control_characters(tmp_path: Path, invoke: Invoke) -> None:
    lines = [
        run_line(2, 2, store="/s/\x1b[31mtickets.json"),
        {"type": "invoke", "buyer": 0, "t": 11},
        {"type": "fail", "buyer": 0, "reason": "error: " + HOSTILE, "t": 12},
        {"type": "invoke", "buyer": 1, "t": 11},
        {"type": "fail", "buyer": 1, "reason": HOSTILE, "t": 12},
        end_line(2, aborted=HOSTILE),
    ]
    path = write(tmp_path / "hostile.jsonl", lines)
    for args in (["check", str(path)], ["timeline", str(path), "--all"]):
        result = invoke(*args)
        assert "\x1b" not in result.output and "\u202e" not in result.output, args
        assert "\ud800" not in result.output and "\x07" not in result.output
    result = invoke("check", str(path))
    assert result.exit_code == 1  # an operation ended on an error
    assert "?]0;owned??[2J?evil? [bold red]markup[/]" in result.output.replace("\n", "")


@pytest.mark.parametrize("time", ["NaN", "Infinity", '"soon"', "true", "-1", "1e300"])
def test_timeline_refuses_times_it_cannot_draw(tmp_path: Path, invoke: Invoke, time: str) -> None:
    text = [
        json.dumps(run_line(1, 1)),
        f'{{"type": "invoke", "buyer": 0, "t_start": {time}, "t": 11}}',
        json.dumps(end_line(1)),
    ]
    path = write(tmp_path / "h.jsonl", text)
    result = invoke("timeline", str(path))
    assert result.exit_code == 3
    problem = (
        f"{time} is not a number"
        if time in ("NaN", "Infinity")
        else "invoke event of buyer 0 has a phase"
    )
    assert result.output.startswith(f"Error: {path}: line 2: {problem}")
    assert len(result.output.splitlines()) == 1


def test_a_live_history_reads_as_unfinished(tmp_path: Path, invoke: Invoke) -> None:
    lines = lines_of(3, 2, [Op("ok", 0, 1, 3), Op("pending", 2)])[:-1]
    path = write(tmp_path / "live.jsonl", lines)
    result = invoke("check", str(path), "--json")
    assert result.exit_code == 1
    checks = {c["name"]: c for c in json.loads(result.output)["checks"]}
    assert "unfinished" in checks["well-formed"]["detail"]
    assert checks["real-time order"]["passed"] and checks["no undersell"]["passed"]


def test_a_last_line_cut_off_mid_write_reads_as_unfinished(tmp_path: Path, invoke: Invoke) -> None:
    """A parent killed mid-write leaves a torn last line: the history is
    unfinished (exit 1, saying so), not unreadable; a torn line before the
    last is malformed."""
    text = "".join(
        json.dumps(x) + "\n" for x in lines_of(2, 1, [Op("ok", 0, 1, 2), Op("ok", 1, 2, 1)])[:-1]
    )
    cut = text[: text.rindex('"seat"') + 3]
    path = tmp_path / "torn.jsonl"
    path.write_text(cut)
    result = invoke("check", str(path), "--json")
    assert result.exit_code == 1
    checks = {c["name"]: c for c in json.loads(result.output)["checks"]}
    lines = cut.count("\n") + 1
    assert checks["well-formed"]["detail"] == (
        f"unfinished: the history's last line, {lines}, was cut off mid-write"
    )
    path.write_text(cut + "\n" + json.dumps(end_line(0)) + "\n")
    result = invoke("check", str(path))
    assert result.exit_code == 3 and f"line {lines}: not valid JSON" in result.output
    # Cut inside a character: still only unfinished.
    path.write_bytes(cut.encode() + "é".encode()[:1])
    assert invoke("check", str(path)).exit_code == 1


@pytest.mark.timeout(120)
def test_memory_follows_the_events_not_what_the_run_line_claims(tmp_path: Path) -> None:
    """Six 300-byte histories each claiming 10,000,000 buyers, judged as one
    sale: it took 2.5 GB (a table of ten million per history, and the merged
    one); now, under the 512 MiB address space, a table of six."""
    paths = []
    for n in range(6):
        lines = [
            run_line(1 if n == 0 else 0, 10_000_000, t=10.0 + n, run_id=f"r{n}", restocked=n == 0)
        ]
        if n == 0:
            lines += [
                {"type": "invoke", "buyer": 3, "t": 10.5},
                {"type": "invoke", "buyer": 4, "t": 10.55},
                {"type": "ok", "buyer": 3, "seat": 1, "t": 10.6},
                {"type": "fail", "buyer": 4, "reason": "sold out", "t": 10.65},
            ]
        lines.append(end_line(0, t=10.9 + n))
        paths.append(str(write(tmp_path / f"h{n}.jsonl", lines)))
    done = tickets_limited("check", *paths, "--one-sale", "--json", timeout=100)
    assert done.returncode == 0, done.stderr[-500:]
    doc = json.loads(done.stdout)
    assert doc["passed"] is True and doc["sold"] == 1
