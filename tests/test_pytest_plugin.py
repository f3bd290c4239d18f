"""Gating the user's own purchase code from Python and pytest: ``tickets.sale``,
``tickets.explore`` and the ``tickets_sale`` / ``tickets_explore`` fixtures.

The fixtures are tested as a user meets them: example test files run by a
real, separate pytest (``runpytest_subprocess``) that loads the plugin
through its ``pytest11`` entry point, with and without pytest-xdist."""

from __future__ import annotations

import functools
import importlib.util
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import tickets
from tickets.gate.callables import buyer_spec

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "booking.py"


def test_the_plugin_and_the_gates_import_light() -> None:
    """pytest loads the plugin in every session: it (and the gates it
    offers) load neither the command line, the terminal library nor the engine."""
    code = "import sys, tickets.pytest_plugin, tickets; tickets.sale; tickets.explore; "
    code += "print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    loaded = set(out.stdout.split())
    assert "tickets.gate.sale_gate" in loaded and "tickets.gate.explore_gate" in loaded
    assert not {"click", "rich", "tickets.engine", "tickets.render"} & loaded


# -- a function as a buyer process imports it -----------------------------------


def test_a_function_is_named_as_a_fresh_interpreter_finds_it(tmp_path: Path) -> None:
    assert buyer_spec(buyer_spec) == "tickets.gate.callables:buyer_spec"
    assert buyer_spec("shop.py:buy") == "shop.py:buy"  # text is taken as written
    # A module this process holds under a name no fresh interpreter finds
    # (as pytest's importmode=importlib names a test file): named by its file.
    source = tmp_path / "shop_code.py"
    source.write_text("def buy(store):\n    return store.take()\n")
    found = importlib.util.spec_from_file_location("pytest_named_it_so", source)
    assert found is not None and found.loader is not None
    module = importlib.util.module_from_spec(found)
    sys.modules["pytest_named_it_so"] = module
    try:
        found.loader.exec_module(module)
        assert buyer_spec(module.buy) == f"{source}:buy"
    finally:
        del sys.modules["pytest_named_it_so"]


class Shop:
    def take(self, store: object) -> None:
        return None


def _made_in_main() -> Callable[[object], None]:
    scope: dict[str, Any] = {"__name__": "__main__"}
    exec("def buy(store):\n    return None\n", scope)
    return scope["buy"]  # type: ignore[no-any-return]


def _closure() -> Callable[[object], None]:
    def buy(store: object) -> None:
        return None

    return buy


REFUSED: dict[str, tuple[Callable[[], object], str]] = {
    "a lambda": (lambda: lambda store: None, "a lambda has no name a buyer process can import"),
    "a closure": (_closure, "buy is defined inside _closure() (a closure or nested function)"),
    "a bound method": (lambda: Shop().take, "Shop.take is a bound method"),
    "a class's function": (lambda: Shop.take, "Shop.take is defined in class Shop"),
    "a function of __main__": (_made_in_main, "buy is defined in __main__"),
    "a partial": (lambda: functools.partial(print), "buy must be a function or 'FILE.py:FUNC'"),
    "an empty text": (lambda: " ", "buy is empty"),
}


@pytest.mark.parametrize("what", sorted(REFUSED))
def test_what_a_buyer_process_cannot_import_is_refused_in_a_line(tmp_path: Path, what: str) -> None:
    """Buyers start in fresh interpreters: a function that cannot be found
    there by name is refused before anything is made, saying why."""
    make, words = REFUSED[what]
    for gate in (tickets.sale, tickets.explore):
        with pytest.raises(tickets.ConfigError, match=re.escape(words)) as refused:
            gate(make(), store=tmp_path / "t.json", history_dir=tmp_path / "h")
        assert "\n" not in str(refused.value) and refused.value.exit_code == 2
        if what != "an empty text":
            assert "fresh Python process" in str(refused.value)
    assert list(tmp_path.iterdir()) == []


# -- the library, in this (pytest-xdist) process ----------------------------------


@pytest.mark.timeout(60)
def test_the_library_passes_a_correct_buyer_on_a_real_store(
    real_store: str, tmp_path: Path
) -> None:
    """The store a user names is restocked for the sale and sold out by it."""
    outcome = tickets.sale(
        f"{EXAMPLE}:take_ticket",
        store=real_store,
        buyers=6,
        tickets=3,
        trials=2,
        write_delay=0.02,
        history_dir=tmp_path / "h",
    )
    outcome.assert_passed()
    assert outcome.passed and not outcome.unproven and outcome.report.sold == 3
    assert [p.parent for p in outcome.histories] == [tmp_path / "h"] * 2
    assert tickets.check_history(tickets.read_history(outcome.histories[1])).passed
    assert tickets.open_db(real_store).load() == 0


@pytest.mark.timeout(60)
def test_the_library_explores_in_a_fresh_interpreter(tmp_path: Path) -> None:
    outcome = tickets.explore(
        f"{EXAMPLE}:take_ticket_broken", store=tmp_path / "t.json", history_dir=tmp_path / "h"
    )
    assert not outcome.passed and not outcome.unproven and outcome.report is not None
    assert outcome.report.double_sold == {1: ["0", "1"]}
    assert outcome.history is not None and outcome.history.parent == tmp_path / "h"
    assert outcome.schedule is not None and outcome.schedule.exists()
    assert [kind for _, kind, _ in outcome.steps].count("write") == 2
    with pytest.raises(AssertionError) as failed:
        outcome.assert_passed()
    lines = str(failed.value).splitlines()
    assert lines[0].startswith("FAILED: --buy ") and "2 buyers over 1 ticket" in lines[0]
    assert any(re.fullmatch(r"│ +1 │ .*", line) for line in lines)  # the numbered steps
    assert "seat 1 sold twice (buyers 0 and 1)" in lines
    assert f"history   {outcome.history}" in lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h"]  # the scratch store is gone
    unproven = tickets.explore(f"{EXAMPLE}:take_ticket", buyers=1, store=tmp_path / "t.json")
    assert unproven.unproven and not unproven.passed
    with pytest.raises(AssertionError, match=r"^NOT PROVEN: .*one buyer cannot race"):
        unproven.assert_passed()


# -- the fixtures, in a pytest of their own ---------------------------------------

#: The user's test file: a correct buyer, a read-think-write one, an
#: exploration, a refusal and a sale that proves nothing.
USER_TESTS = '''
import tickets
import booking


def take_ticket_unlocked(store):
    """Read, think, write: two buyers sell the same seat."""
    count = store.read()
    if count == 0:
        return None
    store.wait()
    store.write(count - 1)
    return count


def test_booking_sells_exactly_the_stock(tickets_sale):
    outcome = tickets_sale(buy=booking.take_ticket, buyers=6, tickets=3, write_delay=0.02)
    outcome.assert_passed()
    assert outcome.report.sold == 3


def test_booking_on_sqlite(tickets_sale, tmp_path):
    url = f"sqlite:///{tmp_path}/shop.db"
    outcome = tickets_sale(
        buy=booking.take_ticket, store=url, buyers=6, tickets=3, write_delay=0.02
    )
    outcome.assert_passed()
    assert tickets.open_db(url).load() == 0


def test_read_think_write(tickets_sale):
    tickets_sale(
        buy=take_ticket_unlocked, buyers=6, tickets=3, lock="none", write_delay=0.06
    ).assert_passed()


def test_explore_the_broken_booking(tickets_explore):
    tickets_explore(buy=booking.take_ticket_broken).assert_passed()


def test_a_lambda(tickets_sale):
    tickets_sale(buy=lambda store: None)


def test_one_buyer(tickets_sale):
    tickets_sale(buy=booking.take_ticket, buyers=1, tickets=1).assert_passed()
'''


def _user_project(pytester: pytest.Pytester, ini: str = "") -> None:
    pytester.makepyfile(booking=EXAMPLE.read_text(), test_shop=USER_TESTS)
    pytester.makeini(f"[pytest]\nfilterwarnings = error\n{ini}")


@pytest.mark.timeout(120)
def test_the_fixtures_gate_a_users_code_under_xdist(pytester: pytest.Pytester) -> None:
    _user_project(pytester, "tickets_history_dir = ci-histories\n")
    run = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider", timeout=100)
    run.assert_outcomes(passed=2, failed=4)
    out = run.stdout.str()
    run.stdout.fnmatch_lines(
        [
            "*AssertionError: FAILED: oversold by *",
            "E       double-sold seats: *",
            "E       no seat sold twice: * seat(s) sold more than once: *",
            "E       history   */ci-histories/test_shop.py_test_read_think_write-*/*.jsonl",
            "E       sale      --buy test_shop:take_ticket_unlocked --lock none, 6 buyers *",
        ],
        consecutive=False,
    )
    run.stdout.fnmatch_lines(
        [
            "*AssertionError: FAILED: --buy booking:take_ticket_broken --lock file, "
            "2 buyers over 1 ticket*",
            "*step*buyer 0*buyer 1*",
            "*1 │ locks *",
            "E       seat 1 sold twice (buyers 0 and 1)",
            "E       schedule  */ci-histories/test_shop.py_test_explore_the_broken_booking-*",
        ]
    )
    run.stdout.fnmatch_lines(["*ConfigError: buy: a lambda has no name a buyer process*"])
    run.stdout.fnmatch_lines(["*AssertionError: NOT PROVEN: one purchase cannot race*"])
    # A failing test's histories stay where its message says; a passing test's go.
    # (set: with $CI set, pytest's summary repeats each failure's whole message)
    named = sorted(set(re.findall(r"history   (\S+)", out)))
    assert len(named) == 3 and all(Path(path).is_file() for path in named)
    kept = sorted(p.name.split("-")[0] for p in (pytester.path / "ci-histories").iterdir())
    assert kept == [  # (the refused lambda wrote nothing)
        "test_shop.py_test_explore_the_broken_booking",
        "test_shop.py_test_one_buyer",
        "test_shop.py_test_read_think_write",
    ]
    made = {
        p.parent.parent.name
        for p in pytester.path.rglob("popen-gw*/*/tickets/*.json")
        if not p.parent.parent.is_symlink()  # (pytest's ...current links)
    }
    assert made == {"test_read_think_write0", "test_one_buyer0"}  # the failing sales' stores


@pytest.mark.timeout(60)
def test_without_an_ini_option_histories_stay_in_the_failing_tests_tmp_path(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        booking=EXAMPLE.read_text(),
        test_two="""
import booking

def test_good(tickets_sale):
    tickets_sale(buy=booking.take_ticket, buyers=4, tickets=2, write_delay=0.02).assert_passed()

def test_bad(tickets_sale):
    tickets_sale(buy=booking.take_ticket, buyers=4, tickets=0).assert_passed()

def test_forgot_to_assert(tickets_sale):
    outcome = tickets_sale(buy=booking.take_ticket_broken, lock="none", buyers=4, tickets=2,
                           write_delay=0.05)
    assert outcome.report.sold >= 2  # never asks for the verdict: not a green

def test_asks_and_expects_the_failure(tickets_sale):
    outcome = tickets_sale(buy=booking.take_ticket_broken, lock="none", buyers=4, tickets=2,
                           write_delay=0.05)
    outcome.assert_failed()

def test_only_reads_the_verdict(tickets_sale):
    outcome = tickets_sale(buy=booking.take_ticket_broken, lock="none", buyers=4, tickets=2,
                           write_delay=0.05)
    print("passed:", outcome.passed)
    assert not outcome.unproven  # a FAILED sale is not unproven: still no green
""",
    )
    pytester.makeini("[pytest]\nfilterwarnings = error\n")
    run = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=50)
    run.assert_outcomes(passed=4, failed=1, errors=2)
    run.stdout.fnmatch_lines(["*AssertionError: NOT PROVEN: *no tickets*"])
    run.stdout.fnmatch_lines(
        ["*test_forgot_to_assert: a sale that did not pass was never asserted (FAILED: *"]
    )
    run.stdout.fnmatch_lines(
        ["*test_only_reads_the_verdict: a sale that did not pass was never asserted (FAILED: *"]
    )
    history = Path(re.findall(r"history   (\S+)", run.stdout.str())[0])  # test_bad's
    assert history.is_file() and history.parent.parent.parent.name == "test_bad0"
    assert not list(pytester.path.rglob("test_good0/tickets"))


def test_a_module_the_buyers_would_find_elsewhere_is_named_by_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pythonpath = ["src"]: the test imports src/shop.py; a buyer searches
    the test's path before its current folder, so it finds the same file
    by its name (./shop.py comes after). A module only a test's path finds
    is named by its file for a replay from a shell."""
    from tickets.gate.callables import buyer_spec, replayable_spec

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "shop.py").write_text("def buy(store):\n    return None\n")
    (tmp_path / "shop.py").write_text("def buy(store):\n    return 1\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    monkeypatch.delitem(sys.modules, "shop", raising=False)
    import shop  # type: ignore[import-not-found]

    assert buyer_spec(shop.buy) == "shop:buy"
    assert replayable_spec(shop.buy) == f"{tmp_path / 'src' / 'shop.py'}:buy"
    (tmp_path / "src" / "shop.py").rename(tmp_path / "shop.py")
    monkeypatch.delitem(sys.modules, "shop")
    monkeypatch.syspath_prepend(str(tmp_path))
    import shop  # now the current folder's

    assert buyer_spec(shop.buy) == replayable_spec(shop.buy) == "shop:buy"
