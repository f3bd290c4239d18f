"""The pytest plugin: ``tickets_sale`` and ``tickets_explore`` gate your purchase code in a test.

pytest loads this module through the ``pytest11`` entry point in every
session of an environment where ``tickets`` is installed, so it imports
nothing but pytest and the standard library, and does nothing until a test
asks for one of its fixtures (which load :mod:`tickets.gate`). Each fixture
is a factory with :func:`tickets.sale`'s or :func:`tickets.explore`'s
arguments, whose defaults put everything in the test's own ``tmp_path``:

- the store: a fresh JSON file per call in ``tmp_path/tickets/`` (give
  ``store="sqlite:///…"`` or ``"redis://…"`` for yours: it is restocked to
  ``tickets`` for the sale, and left as the sale left it);
- the histories (and an exploration's schedule file): in
  ``tmp_path/tickets/history/``, or, when the ini option
  ``tickets_history_dir`` names a folder, in a folder of this test's own
  under it (unique per test, so workers of pytest-xdist never share one).

After a test that passed, the fixture removes what it made (the stores and
the histories); after one that failed, it keeps all of it, and the
assertion message names the history, for a CI job to upload.

The buyers run in fresh interpreters, never in a fork of this process, so
the function must be importable there by name: see
:mod:`tickets.gate.callables` for what is refused, and why.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .gate.explore_gate import ExploreOutcome
    from .gate.sale_gate import SaleOutcome

#: The ini option naming where failing tests' histories are kept (relative to the rootdir).
HISTORY_DIR_OPTION = "tickets_history_dir"
#: Set on a test whose call failed: its histories are kept.
_CALL_FAILED = pytest.StashKey[bool]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        HISTORY_DIR_OPTION,
        "tickets: the folder (relative to the rootdir) that keeps the histories of the "
        "tests that failed, one folder per test; default: each test's tmp_path",
        default="",
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    made = yield  # pluggy's Result: the report, or what the hook raised
    try:
        report = made.get_result()
    except BaseException:  # pytest's own to deal with, not ours
        return
    if report.when == "call" and report.failed:
        item.stash[_CALL_FAILED] = True


class _Workbench:
    """One test's stores and histories: where they go, and their removal."""

    def __init__(self, request: pytest.FixtureRequest, tmp_path: Path) -> None:
        self.request = request
        self.root = tmp_path / "tickets"
        self.made = 0
        #: every outcome handed to the test
        self.outcomes: list[SaleOutcome | ExploreOutcome] = []
        kept = str(request.config.getini(HISTORY_DIR_OPTION) or "")
        if kept:
            nodeid = request.node.nodeid
            digest = hashlib.sha1(nodeid.encode()).hexdigest()[:8]
            name = re.sub(r"[^\w.-]+", "_", nodeid).strip("_")[-80:]
            self.histories = request.config.rootpath / kept / f"{name}-{digest}"
        else:
            self.histories = self.root / "history"

    def store(self, kind: str) -> Path:
        """A fresh JSON store's path (made by the sale; never shared)."""
        self.made += 1
        self.root.mkdir(parents=True, exist_ok=True)
        return self.root / f"{kind}-{self.made}.json"

    def clean(self) -> None:
        """Everything made, unless the test failed; and a test that passed
        though it never asserted the verdict of a sale that did not pass
        (no ``assert_passed()`` or ``assert_failed()``: reading ``passed``
        does not count) fails here, its history kept: a gate that forgot to
        assert is not a green."""
        if self.request.node.stash.get(_CALL_FAILED, False):
            return
        unasked = [o for o in self.outcomes if not o.looked[0] and not o.verdict_passed()]
        if unasked:
            first = unasked[0].message().splitlines()[0]
            pytest.fail(
                f"{self.request.node.name}: a sale that did not pass was never asserted "
                f"({first}); call .assert_passed() on what tickets_sale or tickets_explore "
                "returns, or .assert_failed() where the failure is the point (its history "
                "is kept)",
                pytrace=False,
            )
        shutil.rmtree(self.histories, ignore_errors=True)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def _tickets_workbench(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[_Workbench]:
    bench = _Workbench(request, tmp_path)
    yield bench
    bench.clean()


@pytest.fixture
def tickets_sale(_tickets_workbench: _Workbench) -> Callable[..., SaleOutcome]:
    """``tickets_sale(buy=shop.take_ticket, buyers=20, tickets=5, lock="file")``:
    :func:`tickets.sale` on a fresh JSON store in ``tmp_path`` (or ``store=``
    yours), its histories kept only if the test fails. Call
    ``.assert_passed()`` on what it returns."""

    def run(buy: object, **options: Any) -> SaleOutcome:
        from .gate.sale_gate import sale

        __tracebackhide__ = True
        options.setdefault("store", _tickets_workbench.store("sale"))
        options.setdefault("history_dir", _tickets_workbench.histories)
        outcome = sale(buy, **options)
        _tickets_workbench.outcomes.append(outcome)
        return outcome

    return run


@pytest.fixture
def tickets_explore(_tickets_workbench: _Workbench) -> Callable[..., ExploreOutcome]:
    """``tickets_explore(buy=shop.take_ticket, buyers=3, tickets=2)``:
    :func:`tickets.explore` beside a store in ``tmp_path`` (or ``store=``
    yours: only a scratch copy is used), a failing schedule's files kept
    only if the test fails. Call ``.assert_passed()`` on what it returns."""

    def run(buy: object, **options: Any) -> ExploreOutcome:
        from .gate.explore_gate import explore

        __tracebackhide__ = True
        options.setdefault("store", _tickets_workbench.store("explore"))
        options.setdefault("history_dir", _tickets_workbench.histories)
        outcome = explore(buy, **options)
        _tickets_workbench.outcomes.append(outcome)
        return outcome

    return run
