"""What the user's buyer code can damage, and what it cannot: its bytes on
the tool's descriptors are noticed and skipped (the run ends with exit 3
naming the code, never a traceback or exit 1), and what its module writes
while it is imported never reaches stdout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tickets.engine.child.pipe import MARKER, FrameReader, encode, frame

#: Writes junk to every descriptor it may have inherited, then buys as it should.
JUNK_WRITER = """
import os

def buy(h):
    for fd in range(3, 64):
        try:
            os.write(fd, b'{"type": "ok"}' + b"\\x00\\xff" + b"junk " * 300)
        except OSError:
            pass
    with h.lock:
        count = h.read()
        if count > 0:
            h.write(count - 1)
            return count
    return None
"""

#: Writes to descriptors 1 and 2 as it is imported, by itself and through a child.
NOISY_IMPORT = """
import os, subprocess, sys
subprocess.run(["echo", "hi from a child"])
os.write(1, b"raw on fd 1\\n")
os.write(2, b"raw on fd 2\\n")
print("printed")
print("printed to stderr", file=sys.stderr)

def buy(h):
    with h.lock:
        count = h.read()
        if count > 0:
            h.write(count - 1)
            return count
    return None
"""


def tickets(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TICKETS_DB": str(folder / "tickets.json")}
    return subprocess.run(
        [sys.executable, "-m", "tickets", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "extra",
    [[], pytest.param(["--start-method", "spawn"], marks=pytest.mark.stress), ["--workers", "2"]],
    ids=["fork", "spawn", "workers"],
)
def test_junk_on_the_event_pipe_ends_the_run_with_exit_3_naming_the_code(
    tmp_path: Path, extra: list[str]
) -> None:
    (tmp_path / "junk.py").write_text(JUNK_WRITER)
    done = tickets(tmp_path, "buy", "--buy", "junk.py:buy", "-n", "12", "-t", "6", *extra, "--json")
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
    doc = json.loads(done.stdout)
    assert doc["passed"] is False and doc["exit_code"] == 3
    assert doc["run_error"].startswith("the buyer code (junk.py:buy) wrote ")
    if extra == ["--workers", "2"]:
        return  # its threads share the process: the junk may land in their store writes
    # The sale itself is still judged from what was recorded, and sound.
    assert doc["sold"] + doc["unknown"] >= 6 - doc["remaining"] and doc["oversold"] == 0
    assert doc["remaining"] == 0


@pytest.mark.timeout(60)
def test_what_a_buyer_module_writes_as_it_is_imported_never_reaches_stdout(
    tmp_path: Path,
) -> None:
    (tmp_path / "noisy.py").write_text(NOISY_IMPORT)
    done = tickets(tmp_path, "buy", "--buy", "noisy.py:buy", "-n", "4", "-t", "4", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["sold"] == 4  # stdout is the one document
    assert "raw on fd" not in done.stderr and "printed" not in done.stderr


def test_the_reader_skips_what_is_not_a_message_of_ours() -> None:
    ours = [frame(encode({"type": "invoke", "buyer": n, "t": 1.0})) for n in range(3)]
    fake_header = MARKER + (60000).to_bytes(2, "big") + b"\0\0\0\0"  # a size too big
    bad_sum = MARKER + (9).to_bytes(2, "big") + b"\0\0\0\0" + b'{"type":1}'  # wrong CRC
    reader = FrameReader()
    stream = b"hi\n" + ours[0] + fake_header + ours[1] + bad_sum + b"\xfe" + ours[2] + b"tail"
    events: list[Any] = []
    for i in range(0, len(stream), 7):  # in pieces, as reads come
        events += reader.feed(stream[i : i + 7])
    events += reader.split(final=True)
    assert [e["buyer"] for e in events] == [0, 1, 2]
    assert reader.junk == len(stream) - sum(len(f) for f in ours)


def test_a_junk_header_that_claims_more_than_follows_hides_no_message() -> None:
    """A marker and a plausible size, then our messages: once it cannot be
    whole (or nothing more comes), the reader looks past it."""
    ours = frame(encode({"type": "invoke", "buyer": 7, "t": 1.0}))
    reader = FrameReader()
    assert reader.feed(MARKER + (3000).to_bytes(2, "big") + b"\1\2\3\4" + ours) == []
    split: list[Any] = reader.split(final=True)
    assert [e["buyer"] for e in split] == [7]


#: A module that, as it is imported, leaves a daemon (setsid, double fork)
#: that would write the store later, and a thread that prints later.
IMPORT_ESCAPER = """
import os, sys, threading, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        with open(f"daemon.{os.getpid()}", "w"):
            pass
        time.sleep(3)
        with open("tickets.json", "w") as f:
            f.write('{"count": 999}')
        os._exit(0)
    os._exit(0)
threading.Thread(target=lambda: (time.sleep(0.2), print("metrics: flushed")), daemon=True).start()

def buy(h):
    with h.lock:
        count = h.read()
        if count > 0:
            h.write(count - 1)
            return count
    return None
"""


@pytest.mark.timeout(120)
def test_a_buyer_module_is_never_imported_into_the_tickets_process(tmp_path: Path) -> None:
    """The check of --buy imported the module into the parent: its daemon
    outlived the run and wrote the store, its thread printed into --json."""
    (tmp_path / "esc.py").write_text(IMPORT_ESCAPER)
    # eight buyers, to overlap (the sale contend) even on a busy machine
    done = tickets(tmp_path, "buy", "--buy", "esc.py:buy", "-n", "8", "-t", "10", "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["remaining"] == 2, done.stdout
    pids = [int(p.name.split(".")[1]) for p in tmp_path.glob("daemon.*")]
    assert pids  # the check's import and the launcher's each left one
    assert [p for p in pids if os.path.exists(f"/proc/{p}")] == []
    assert json.loads((tmp_path / "tickets.json").read_text()) == {"count": 2}


@pytest.mark.timeout(60)
def test_a_buyer_module_whose_import_hangs_is_refused_in_time(tmp_path: Path) -> None:
    from tickets.engine.buyer_check import check
    from tickets.engine.child.user_buyer import BuyerCodeError

    (tmp_path / "hangs.py").write_text("import time\ntime.sleep(3600)\ndef buy(h):\n    pass\n")
    with pytest.raises(BuyerCodeError, match="its import did not finish within 1s; stopped"):
        check("hangs.py:buy", timeout=1.0)


@pytest.mark.timeout(60)
def test_a_buyer_that_forks_and_reports_twice_is_exit_3_and_check_agrees(tmp_path: Path) -> None:
    """Both processes of a forked buyer returned the seat: the second
    report was dropped without a word, and the sale passed."""
    (tmp_path / "forky.py").write_text(
        "import os\n"
        "def take(h):\n"
        "    with h.lock:\n"
        "        count = h.read()\n"
        "        if count > 0:\n"
        "            h.write(count - 1)\n"
        "            os.fork()\n"
        "            return count\n"
    )
    done = tickets(
        tmp_path,
        "buy",
        "--buy",
        "forky.py:take",
        "-n",
        "3",
        "-t",
        "6",
        "--history",
        "h.jsonl",
        "--json",
    )
    doc = json.loads(done.stdout)
    assert done.returncode == 3 and "reported two outcomes" in doc["run_error"]
    check = tickets(tmp_path, "check", "h.jsonl", "--json")
    said = json.loads(check.stdout)["run_error"]
    assert check.returncode == 5 and "reported two outcomes" in said
