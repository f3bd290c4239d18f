"""The library API (``import tickets``) and the one error base: every public
name imports, a sale run and checked through it alone, and every error
carries its exit code across a process boundary."""

from __future__ import annotations

import multiprocessing
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import tickets
from helpers import kept, spec_of
from tickets import errors


def test_every_public_name_imports() -> None:
    assert sorted(tickets.__all__) == sorted(tickets._EXPORTS)
    for name in tickets.__all__:
        assert getattr(tickets, name) is not None, name
    assert set(tickets.__all__) <= set(dir(tickets))
    with pytest.raises(AttributeError):
        _ = tickets.nothing_here


def test_import_tickets_loads_no_cli_and_no_terminal_library() -> None:
    code = "import sys, tickets; tickets.run_buy; tickets.check_history; tickets.open_db; "
    code += "print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    loaded = set(out.stdout.split())
    assert out.returncode == 0 and "tickets.engine.buy" in loaded, out.stderr
    assert not {"click", "rich"} & loaded


@pytest.mark.timeout(60)
def test_a_sale_run_and_checked_through_the_library(tmp_path: Path) -> None:
    store = tmp_path / "tickets.json"
    config = tickets.BuyConfig(
        store=spec_of(store),
        buyers=6,
        tickets=4,
        strategy=tickets.STRATEGIES["flock"],
        delays=tickets.Delays(0.001, 0.001),
    )
    result = tickets.run_buy(config)
    assert isinstance(result, tickets.RunResult) and result.passed
    history = tickets.read_history(kept(result))
    report = tickets.check_history(history)
    assert isinstance(report, tickets.Report) and report.passed
    assert report.sold == 4 and tickets.open_db(str(store)).load() == 0
    assert tickets.check_histories([history]).passed


def test_library_errors_carry_the_command_lines_exit_codes(tmp_path: Path) -> None:
    with pytest.raises(tickets.UsageProblem) as bad_url:
        tickets.open_db("redis://host:notaport")
    assert bad_url.value.exit_code == 2
    with pytest.raises(tickets.ConfigError) as bad_config:
        tickets.BuyConfig(store=spec_of(tmp_path / "t.json"), buyers=0)
    assert bad_config.value.exit_code == 2 and isinstance(bad_config.value, ValueError)
    (tmp_path / "h.jsonl").write_text("not a history\n")
    with pytest.raises(tickets.HistoryError) as bad_history:
        tickets.read_history(tmp_path / "h.jsonl")
    assert bad_history.value.exit_code == 3 and str(tmp_path / "h.jsonl") in str(bad_history.value)


def every_error_class() -> list[type[errors.TicketsError]]:
    import tickets.cli  # noqa: F401  (loads every module that defines one)
    import tickets.render.files  # noqa: F401

    found: list[type[errors.TicketsError]] = []
    todo: list[type[errors.TicketsError]] = [errors.TicketsError]
    while todo:
        kind = todo.pop()
        found.append(kind)
        todo += kind.__subclasses__()
    return found


def example(kind: type[errors.TicketsError]) -> errors.TicketsError:
    """One instance of ``kind``, made the way its code makes it."""
    from tickets.locking.locks import LockTimeout
    from tickets.stores.base import DiskTrouble, StoreError

    if issubclass(kind, DiskTrouble):
        return kind("/s/t.json", "no space left", "free some", kind="read-only file system")
    if issubclass(kind, StoreError):
        return kind("/s/t.json", "locked", "try again")
    if issubclass(kind, LockTimeout):
        return kind("the store's lock", 2.5)
    if kind.__name__ == "HistoryError":
        return kind("/h.jsonl", "line 3: not JSON")
    return kind("the words", "the hint")


def test_every_error_has_one_exit_code_and_survives_pickling() -> None:
    kinds = every_error_class()
    assert len(kinds) >= 10, [k.__name__ for k in kinds]
    for kind in kinds:
        error = example(kind)
        assert error.exit_code in (2, 3), kind
        again = pickle.loads(pickle.dumps(error))
        assert type(again) is kind and str(again) == str(error) and vars(again) == vars(error)


def _raise_in_child(conn: object) -> None:
    from tickets.locking.locks import LockTimeout

    conn.send(LockTimeout("flock on /s/t.json.lock", 0.5))  # type: ignore[attr-defined]


@pytest.mark.timeout(60)
def test_an_error_crosses_a_process_boundary_intact() -> None:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    process = ctx.Process(target=_raise_in_child, args=(child,))
    process.start()
    try:
        assert parent.poll(30)
        error = parent.recv()
    finally:
        process.join(30)
    assert str(error) == "flock on /s/t.json.lock was not acquired within 0.5s"
    assert error.exit_code == 3 and error.timeout == 0.5


@pytest.mark.timeout(60)
def test_the_library_page_runs_as_written(tmp_path: Path) -> None:
    """docs/library.md's example, run as it stands (in a fresh folder)."""
    page = (Path(__file__).resolve().parent.parent / "docs" / "library.md").read_text()
    code = page.split("```python\n", 1)[1].split("```", 1)[0]
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "0" and "True 5" in done.stdout


@pytest.mark.parametrize(
    "given, words",
    [
        ({"buyers": "3"}, "buyers must be a whole number"),
        ({"buyers": True}, "buyers must be a whole number"),
        ({"tickets": 2.5}, "tickets must be a whole number"),
        ({"seed": "a"}, "seed must be a whole number"),
        ({"lock_timeout": "1"}, "lock timeout must be a number of seconds"),
        ({"lock_timeout": float("nan")}, "lock timeout must be more than 0"),
        ({"delays": "fast"}, "delays must be a Delays"),
        ({"fsync": "yes"}, "fsync must be True or False"),
        ({"history": 5}, "history must be a path"),
        ({"buy": print}, "buy must be text, FILE.py:FUNC"),
        ({"command": ["ls"]}, "command must be text, a shell command"),
        ({"strategy": "bogus"}, "unknown strategy 'bogus'"),
        ({"strategy": "atomic"}, "does not apply to a json store"),
    ],
)
def test_a_library_callers_wrong_kinds_are_refused_in_words(
    tmp_path: Path, given: dict[str, object], words: str
) -> None:
    """What the command line's options never let through, a script can hand
    in: each is a ConfigError (exit 2) naming the field, never a TypeError
    from deep inside a run."""
    fields: dict[str, object] = {"store": tmp_path / "t.json", "buyers": 3, **given}
    with pytest.raises(tickets.ConfigError, match=words):
        tickets.BuyConfig(**fields)  # type: ignore[arg-type]
    assert not (tmp_path / "t.json").exists()  # nothing changed


def _calls(folder: Path) -> dict[str, tuple[type[errors.TicketsError], object]]:
    """Wrong things handed to the library, each with the error it must raise
    (``wrong``: typed Any, as a script's values are)."""
    store: Any = str(folder / "t.json")
    wrong: Any = None
    text: Any = "a"
    a_buy_config: Any = tickets.BuyConfig(store=tickets.parse_db(store), buyers=3)
    return {
        "a store of None": (tickets.ConfigError, lambda: tickets.BuyConfig(store=wrong, buyers=3)),
        "a negative delay": (
            tickets.ConfigError,
            lambda: tickets.BuyConfig(store=store, buyers=3, delays=tickets.Delays(-1, 0)),
        ),
        "a delay of NaN": (
            tickets.ConfigError,
            lambda: tickets.BuyConfig(
                store=store, buyers=3, delays=tickets.Delays(0, float("nan"))
            ),
        ),
        "producers as text": (
            tickets.ConfigError,
            lambda: tickets.QueueConfig(
                store=store, producers=text, orders=1, clerks=1, queue_size=1
            ),
        ),
        "run_buy(None)": (tickets.ConfigError, lambda: tickets.run_buy(wrong)),
        "run_queue(a BuyConfig)": (
            tickets.ConfigError,
            lambda: tickets.run_queue(a_buy_config),
        ),
        "check_history(None)": (tickets.UsageProblem, lambda: tickets.check_history(wrong)),
        "check_histories([])": (tickets.UsageProblem, lambda: tickets.check_histories([])),
        "check_histories(['x'])": (
            tickets.UsageProblem,
            lambda: tickets.check_histories([text]),
        ),
        "read_history('')": (tickets.HistoryError, lambda: tickets.read_history("")),
        "read_history(None)": (tickets.HistoryError, lambda: tickets.read_history(wrong)),
        "parse_db(None)": (tickets.UsageProblem, lambda: tickets.parse_db(wrong)),
        "parse_db with a NUL": (tickets.UsageProblem, lambda: tickets.parse_db("a\0b.json")),
    }


@pytest.mark.parametrize("name", sorted(_calls(Path("/nonexistent"))))
def test_wrong_things_handed_to_the_library_are_its_errors(tmp_path: Path, name: str) -> None:
    """Never a TypeError or AttributeError from deep inside: one of the
    package's errors, with an exit code and one line, and nothing created."""
    kind, call = _calls(tmp_path)[name]
    with pytest.raises(kind) as raised:
        call()  # type: ignore[operator]
    assert raised.value.exit_code in (2, 3) and "\n" not in str(raised.value)
    assert list(tmp_path.iterdir()) == []


def test_the_library_takes_paths_and_specs_alike(tmp_path: Path) -> None:
    tickets.open_db(str(tmp_path / "t.json"))  # a store opens lazily: nothing made yet
    spec = tickets.parse_db(tmp_path / "t.json")
    assert tickets.parse_db(str(tmp_path / "t.json")) == spec
    assert tickets.open_db(spec).spec == spec
