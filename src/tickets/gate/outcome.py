"""What the gates' outcomes share: the verdict, and whether it was asserted.

A test that never asserted the verdict of a sale that did not pass must
not go green: the pytest fixture reads :attr:`GateOutcome.looked` after the
test (see :mod:`tickets.pytest_plugin`). Only an assertion counts:
``assert_passed()``, or ``assert_failed()`` where the failure is what the
test means. Reading ``passed`` or ``unproven`` does not (a log line, an
``assert not outcome.unproven`` of a FAILED sale would go green).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, repr=False)
class GateOutcome:
    """The base of :class:`SaleOutcome` and :class:`ExploreOutcome`."""

    #: whether the verdict was asserted (``assert_passed()``, ``assert_failed()``)
    looked: list[bool] = field(default_factory=lambda: [False], compare=False, kw_only=True)

    def verdict_passed(self) -> bool:
        raise NotImplementedError

    def message(self) -> str:
        raise NotImplementedError

    def verdict_failed(self) -> bool:
        """A check failed (FAILED), not merely nothing proven."""
        raise NotImplementedError

    @property
    def passed(self) -> bool:
        return self.verdict_passed()

    def __bool__(self) -> bool:
        """``assert outcome`` is ``assert outcome.passed`` (an object is
        otherwise always true: a FAILED sale would pass the assert)."""
        return self.passed

    def assert_passed(self) -> None:
        """Raise :class:`AssertionError` with :meth:`message` unless it PASSED."""
        __tracebackhide__ = True  # pytest: the test's line, then the verdict
        self.looked[0] = True
        if not self.passed:
            raise AssertionError(self.message())

    def assert_failed(self) -> None:
        """For a test whose point is that the code is caught: raise
        :class:`AssertionError` unless a check FAILED (a NOT PROVEN sale,
        or one that passed, proves no bug was found)."""
        __tracebackhide__ = True
        self.looked[0] = True
        if not self.verdict_failed():
            raise AssertionError("expected a failed check, got: " + self.message())
