"""What a command writes, as a hostile user meets it (issue #22): output
files (--svg, --html) are regular files written whole and never through a
link, a FIFO or a device; a signal stops a command whose answer is stuck in
a pipe nobody reads; text from outside never steers the terminal."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from helpers import read_json_lines, snapshot
from tickets.cli import cli
from tickets.engine.ledger import RunResult

Invoke = Callable[..., Result]
#: What a terminal would obey: ESC (CSI, OSC), BEL.
STEERING = ("\x1b", "\x07")


# -- output files ------------------------------------------------------------


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A file a link may point at (think /etc/passwd): never written to."""
    target = tmp_path / "elsewhere" / "passwd"
    target.parent.mkdir()
    target.write_text("root:x:0:0\n")
    return target


@pytest.fixture
def unix_socket(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "sock.svg"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        yield path


def unusable(kind: str, tmp_path: Path, secret: Path, request: pytest.FixtureRequest) -> str:
    """A path --svg must refuse, of the given kind."""
    path = tmp_path / f"{kind}.svg"
    if kind == "symlink":
        path.symlink_to(secret)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    elif kind == "socket":
        path = request.getfixturevalue("unix_socket")
    elif kind == "device":
        return os.devnull
    elif kind == "no folder":
        path = tmp_path / "missing" / "t.svg"
    return str(path)


KINDS = ["symlink", "fifo", "folder", "socket", "device", "no folder"]
WORDS = {
    "symlink": "symbolic link",
    "fifo": "FIFO",
    "folder": "folder",
    "socket": "socket",
    "device": "device",
    "no folder": "does not exist",
}


@pytest.mark.timeout(60)  # a FIFO opened for writing waits for a reader: forever
@pytest.mark.parametrize("flag", ["--svg", "--html"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_race_refuses_an_output_it_cannot_write_before_it_sells(
    invoke: Invoke,
    tmp_path: Path,
    secret: Path,
    request: pytest.FixtureRequest,
    kind: str,
    flag: str,
) -> None:
    path = unusable(kind, tmp_path, secret, request)
    before = snapshot(tmp_path)
    result = invoke("race", "--buyers", "4", "--tickets", "2", "--no-delay", flag, path)
    assert result.exit_code == 3, result.output
    line = result.stderr.strip()
    assert "\n" not in line and path in line and WORDS[kind] in line and flag in line
    assert "Traceback" not in result.output
    # No sale ran: no store, no history, nothing changed; the link's target is intact.
    assert snapshot(tmp_path) == before and not (tmp_path / "history").exists()
    assert secret.read_text() == "root:x:0:0\n"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", KINDS)
def test_a_timeline_refuses_an_output_it_cannot_write(
    invoke: Invoke,
    sold: Path,
    tmp_path: Path,
    secret: Path,
    request: pytest.FixtureRequest,
    kind: str,
) -> None:
    path = unusable(kind, tmp_path, secret, request)
    before = snapshot(tmp_path)
    result = invoke("timeline", str(sold), "--html", path)
    assert result.exit_code == 3 and WORDS[kind] in result.stderr and "--html" in result.stderr
    assert snapshot(tmp_path) == before and secret.read_text() == "root:x:0:0\n"


@pytest.fixture
def sold(sale: Callable[..., RunResult]) -> Path:
    """The history of a small real sale."""
    history = sale(buyers=4, tickets=2).history
    assert history is not None
    return Path(history)


def test_an_output_replaces_the_file_whole_and_leaves_no_temp(
    invoke: Invoke, sold: Path, tmp_path: Path
) -> None:
    """Written beside and renamed over, not truncated in place: a second
    name of the old file keeps the old bytes (an open reader too)."""
    out = tmp_path / "t.svg"
    out.write_text("<svg>\n<!-- made by tickets -->old picture</svg>\n")
    os.link(out, tmp_path / "kept.svg")
    result = invoke("timeline", str(sold), "--svg", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("<svg") and not out.samefile(tmp_path / "kept.svg")
    assert (
        tmp_path / "kept.svg"
    ).read_text() == "<svg>\n<!-- made by tickets -->old picture</svg>\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    assert f"wrote {out}" in result.stderr


def test_a_link_planted_after_the_check_is_replaced_not_followed(
    invoke: Invoke, sold: Path, tmp_path: Path, secret: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race the checks cannot close: a link that appears at the path
    after they ran. The picture takes the link's place; its target is not
    touched."""
    import tickets.render.files as files

    monkeypatch.setattr(files, "check_output_path", lambda path, flag: None)
    link = tmp_path / "planted.svg"
    link.symlink_to(secret)
    result = invoke("timeline", str(sold), "--svg", str(link))
    assert result.exit_code == 0, result.output
    assert secret.read_text() == "root:x:0:0\n"
    assert not link.is_symlink() and link.read_text().startswith("<svg")


# -- a signal while the answer is stuck --------------------------------------


def start_stuck(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[bytes], int]:
    """``tickets ARGS`` with stdout into a one-page pipe nobody reads; returns
    once its answer has filled the pipe (the command is then writing it)."""
    env = {**os.environ, "TICKETS_DB": str(tmp_path / "tickets.json")}
    env.pop("COLUMNS", None)
    read_end, write_end = os.pipe()
    capacity = fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tickets", *args], stdout=write_end, stderr=subprocess.PIPE, env=env
    )
    os.close(write_end)
    deadline = time.monotonic() + 90
    while queued(read_end) < capacity:  # the run prints nothing before its answer
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "the answer never filled the pipe"
        time.sleep(0.02)
    return proc, read_end


def queued(fd: int) -> int:
    """Bytes waiting in the pipe."""
    return int.from_bytes(fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"), sys.byteorder)


def drain(fd: int) -> bytes:
    data = b""
    while chunk := os.read(fd, 65536):
        data += chunk
    os.close(fd)
    return data


BIG_TABLE = ["buy", "--buyers", "120", "--tickets", "120", "--no-delay", "--all"]  # ~10 KB


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "sig",
    [
        signal.SIGTERM,
        pytest.param(signal.SIGINT, marks=pytest.mark.stress),
        pytest.param(signal.SIGHUP, marks=pytest.mark.stress),
    ],
)
def test_a_signal_stops_a_command_whose_answer_nobody_reads(tmp_path: Path, sig: int) -> None:
    """`tickets buy --all | sleep 40`: the table fills the pipe and the write
    blocks. A signal used to wait for the write, for ever; now the answer
    is cut within the grace and the command exits 128 + the signal."""
    proc, read_end = start_stuck(tmp_path, *BIG_TABLE)
    sent = time.monotonic()
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("the command went on waiting for its reader")
    assert time.monotonic() - sent < 10
    assert proc.returncode == 128 + sig, err
    assert b"the output is cut short" in err and b"Traceback" not in err
    assert not drain(read_end).rstrip().endswith(b"nothing oversold")  # cut, and said so
    history = next((tmp_path / "history").glob("*.jsonl"))
    assert read_json_lines(history)[-1]["type"] == "end"  # the run was finished before


@pytest.mark.timeout(120)
def test_a_signal_stops_a_timeline_nobody_reads(
    sale: Callable[..., RunResult], tmp_path: Path
) -> None:
    """The same for a saved history's picture (Ctrl-C used to end it as
    'Aborted!', exit 1)."""
    history = sale(buyers=120, tickets=120).history
    assert history is not None
    proc, read_end = start_stuck(tmp_path, "timeline", str(history), "--all")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=15)
    drain(read_end)
    assert proc.returncode == 130 and b"the output is cut short" in err, err


@pytest.mark.timeout(120)
def test_a_signal_lets_an_answer_that_can_go_out_go_out_whole(tmp_path: Path) -> None:
    """A signal while a reader is still reading: the document is whole and
    the exit code is the one it states (what CI gates on agree)."""
    proc, read_end = start_stuck(
        tmp_path, "buy", "--buyers", "60", "--tickets", "60", "--search-delay", "20", "--json"
    )
    proc.send_signal(signal.SIGTERM)
    out = drain(read_end)
    _, err = proc.communicate(timeout=30)
    doc = json.loads(out)
    assert doc["exit_code"] == proc.returncode == 0 and doc["passed"] is True, err


# -- text from outside -------------------------------------------------------

ESCAPED = "x\x1b[31m[red]y"


def shown_plain(result: Result) -> str:
    text = result.output
    assert not any(c in text for c in STEERING), repr(text)
    return text


def invoke_coloured(*args: str) -> Result:
    """As on a terminal: click keeps the ANSI codes it would strip for a pipe."""
    return CliRunner().invoke(cli, list(args), color=True, catch_exceptions=False)


def test_check_shows_file_names_without_their_escape_codes(sold: Path, tmp_path: Path) -> None:
    odd = tmp_path / f"{ESCAPED}.jsonl"
    shutil.copy(sold, odd)
    out = shown_plain(invoke_coloured("check", str(odd)))
    assert "x?[31m[red]y.jsonl" in out  # the name, defused, and no markup read in it
    out = shown_plain(invoke_coloured("check", str(odd), str(sold)))
    assert "x?[31m[red]y.jsonl" in out
    broken = tmp_path / f"{ESCAPED}-broken.jsonl"
    broken.write_text("not json\n")
    result = invoke_coloured("check", str(broken))
    assert result.exit_code == 3 and "x?[31m[red]y-broken.jsonl" in shown_plain(result)
    out = shown_plain(invoke_coloured("timeline", str(odd)))
    assert "x?[31m[red]y.jsonl" in out


@pytest.mark.timeout(120)
def test_a_user_buyers_exception_is_shown_defused(tmp_path: Path) -> None:
    (tmp_path / "evil.py").write_text(
        'def buy(store):\n    raise Exception("\\x1b]0;pwned\\x07 [bold]loud")\n'
    )
    invoke_coloured("init", "--tickets", "3")
    for more in ([], ["--all"]):
        result = invoke_coloured("buy", "--buy", "evil.py:buy", "--buyers", "3", *more)
        out = shown_plain(result)
        assert "?]0;pwned?" in out and "[bold]loud" in out, out


@pytest.mark.timeout(120)
def test_a_store_path_is_echoed_defused(tmp_path: Path) -> None:
    folder = tmp_path / ESCAPED
    folder.mkdir()
    db = str(folder / "s.json")
    assert "x?[31m[red]y" in shown_plain(invoke_coloured("--db", db, "init", "--tickets", "2"))
    assert "x?[31m[red]y" in shown_plain(invoke_coloured("--db", db, "status"))
    out = shown_plain(invoke_coloured("--db", db, "buy", "--buyers", "2", "--no-delay"))
    assert "x?[31m[red]y" in out  # the history beside the store
    assert "x?[31m[red]y" in shown_plain(invoke_coloured("--db", db, "history"))
    missing = invoke_coloured("--db", db + ".gone", "status")
    assert missing.exit_code == 3 and "x?[31m[red]y" in shown_plain(missing)


@pytest.mark.timeout(120)
def test_markup_in_a_path_is_shown_as_written(tmp_path: Path) -> None:
    invoke_coloured("init", "--tickets", "2")
    result = invoke_coloured("buy", "--buyers", "2", "--no-delay", "--history", "[bold]h.jsonl")
    assert "[bold]h.jsonl" in shown_plain(result)


def test_a_refused_value_is_quoted_defused(tmp_path: Path) -> None:
    """click's own errors quote what was given (a --buy file, a strategy)."""
    result = invoke_coloured("race", "--strategies", f"none,{ESCAPED}.py:buy")
    assert result.exit_code == 2 and "x?[31m[red]y.py" in shown_plain(result)


def test_a_huge_columns_is_capped(tmp_path: Path) -> None:
    """COLUMNS=1000000 drew a 5-buyer timeline for half a minute (8 MB)."""
    env = {**os.environ, "TICKETS_DB": str(tmp_path / "t.json"), "COLUMNS": "1000000"}
    run = subprocess.run(
        [sys.executable, "-m", "tickets", "buy", "-n", "3", "-t", "3", "--history", "h.jsonl"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    drawn = subprocess.run(
        [sys.executable, "-m", "tickets", "timeline", "h.jsonl"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert drawn.returncode == 0 and max(map(len, drawn.stdout.decode().splitlines())) <= 1000
