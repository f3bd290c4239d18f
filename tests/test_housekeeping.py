"""`tickets history` removes only this store's histories (issue #22, 9): never
a file it cannot read as one, never another store's from a shared folder,
never a running one; and it takes the ``<history>.log`` beside each."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from click.testing import Result

from histories import end_line, run_line, write
from tickets.check.housekeeping import entries, prune, to_prune

Invoke = Callable[..., Result]


def sell(invoke: Invoke, db: Path) -> Path:
    """A real sale on ``db``; its history."""
    # The default search delay (up to 20 ms): the buyers race for sure (a
    # 1 ms one let a busy machine run three in turn: NOT PROVEN).
    args = ["--db", str(db), "buy", "-n", "3", "--write-delay", "0"]
    doc = json.loads(invoke(*args, "--json").stdout)
    assert doc["exit_code"] == 0, doc
    return Path(doc["history"])


def listing(invoke: Invoke, db: Path, *args: str) -> dict[str, str]:
    doc = json.loads(invoke("--db", str(db), "history", *args, "--json").stdout)
    assert doc["exit_code"] == 0, doc
    return {Path(h["path"]).name: h["verdict"] for h in doc["histories"]}


def test_keep_0_removes_only_this_store_s_histories(invoke: Invoke, tmp_path: Path) -> None:
    """Two stores side by side share history/; the user's own files live there too."""
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a_history, b_history = sell(invoke, a), sell(invoke, b)
    assert a_history.parent == b_history.parent == tmp_path / "history"
    folder = a_history.parent
    mine = {"mydata.jsonl": "my,own,data\n", "notes.jsonl": '{"count": 3}\n', "empty.jsonl": ""}
    for name, text in mine.items():
        (folder / name).write_text(text)
    listed = listing(invoke, a)
    assert listed[a_history.name] == "passed" and listed[b_history.name] == "other store"
    assert {listed[name] for name in mine} == {"unreadable"}
    removed = json.loads(invoke("--db", str(a), "history", "--keep", "0", "--json").stdout)
    assert removed["removed"] == [str(a_history)]
    assert sorted(p.name for p in folder.iterdir()) == sorted([b_history.name, *mine])
    assert invoke("--db", str(b), "history", "--keep", "0").exit_code == 0
    assert sorted(p.name for p in folder.iterdir()) == sorted(mine)
    for name, text in mine.items():  # byte for byte
        assert (folder / name).read_text() == text
        (folder / name).unlink()  # (the tests' check of every history/ file)


def test_a_removed_history_takes_its_log_and_only_its_log(invoke: Invoke, tmp_path: Path) -> None:
    store = tmp_path / "tickets.json"
    old, new = sell(invoke, store), sell(invoke, store)
    os.utime(old, (1, 1))
    for history in (old, new):
        Path(f"{history}.log").write_text("buyer 0: exit 1\n")
    fifo_history = sell(invoke, store)
    os.utime(fifo_history, (0, 0))
    os.mkfifo(f"{fifo_history}.log")  # not a log tickets wrote: left alone
    assert invoke("history", "--keep", "1").exit_code == 0
    assert sorted(p.name for p in old.parent.iterdir()) == sorted(
        [new.name, f"{new.name}.log", f"{fifo_history.name}.log"]
    )
    os.unlink(f"{fifo_history}.log")


def test_a_history_of_no_store_or_of_another_path_is_not_ours(tmp_path: Path) -> None:
    """An --exec sale that read no stock names no store; a history whose run
    line names this store's path with a control character in place of a
    '?' shows alike, but is another store's."""
    store = tmp_path / "a?b.json"
    folder = tmp_path / "history"
    folder.mkdir()
    cases = {
        "exec.jsonl": "unknown (no --stock-cmd)",
        "alike.jsonl": str(tmp_path / "a\x01b.json"),
        "ours.jsonl": str(store),
    }
    sale = [
        {"type": "invoke", "buyer": 0, "t": 11},
        {"type": "invoke", "buyer": 1, "t": 11.5},
        {"type": "ok", "buyer": 0, "seat": 1, "t": 12},
        {"type": "fail", "buyer": 1, "reason": "sold out", "t": 12.5},
    ]
    for name, named in cases.items():
        write(folder / name, [run_line(1, 2, store=named), *sale, end_line(0)])
    stopped = [run_line(1, 2, store=str(store)), *sale, end_line(0, aborted="interrupted")]
    os.utime(write(folder / "stopped.jsonl", stopped), (1, 1))
    listed = entries(folder, str(store))
    assert {e.path.name: e.verdict for e in listed} == {
        "exec.jsonl": "other store",
        "alike.jsonl": "other store",
        "ours.jsonl": "passed",
        "stopped.jsonl": "not proven",
    }
    assert [e.path.name for e in prune(to_prune(listed, 1, None, 0.0))] == ["stopped.jsonl"]
    assert [e.path.name for e in prune(to_prune(listed, 0, None, 0.0))] == ["ours.jsonl"]
    assert sorted(p.name for p in folder.iterdir()) == ["alike.jsonl", "exec.jsonl"]
    for name in ("alike.jsonl", "exec.jsonl"):
        (folder / name).unlink()


def test_a_file_put_in_a_history_s_place_since_it_was_read_stays(tmp_path: Path) -> None:
    store = tmp_path / "tickets.json"
    folder = tmp_path / "history"
    folder.mkdir()
    history = write(folder / "h.jsonl", [run_line(1, 1, store=str(store)), end_line(1)])
    listed = entries(folder, str(store))
    replacement = tmp_path / "theirs"
    replacement.write_text("the user's\n")
    os.replace(replacement, history)
    assert prune(to_prune(listed, 0, None, 0.0)) == []
    assert history.read_text() == "the user's\n"
    history.unlink()
