"""What the gates' outcomes share: the verdict asked for, and whether it was.

A test that never asks a sale that did not pass for its verdict must not go
green: the pytest fixture reads :attr:`Outcome.looked` after the test (see
:mod:`tickets.pytest_plugin`). ``assert outcome`` asks too.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, repr=False)
class Outcome:
    """The base of :class:`SaleOutcome` and :class:`ExploreOutcome`."""

    #: whether anyone asked for the verdict (``passed``, ``unproven``,
    #: ``assert_passed()``, ``bool()``)
    looked: list[bool] = field(default_factory=lambda: [False], compare=False, kw_only=True)

    def verdict_passed(self) -> bool:
        """``passed``, without counting as having asked."""
        raise NotImplementedError

    @property
    def passed(self) -> bool:
        self.looked[0] = True
        return self.verdict_passed()

    def __bool__(self) -> bool:
        """``assert outcome`` is ``assert outcome.passed`` (an object is
        otherwise always true: a FAILED sale would pass the assert)."""
        return self.passed
