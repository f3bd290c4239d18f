"""What every store is: the errors, and the interface buyers and clerks use.

A store holds one number, the tickets left. Every engine can read it and
write it (the lock strategies protect that read-modify-write from outside);
an engine may also have its own indivisible "take up to n if any are left"
(:meth:`Store.take`), which the ``atomic`` strategy uses. The parent
restocks and reads the final count through the same object.

Buyers run this module: it keeps the lean-import rule of
:mod:`tickets.child`.
"""

from __future__ import annotations

from ..constants import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..locks import BuyerLock
    from .spec import StoreSpec


class StoreError(Exception):
    """The store (or its lock) cannot be used. ``str()`` is the one-line message.

    ``path`` names the store: a file, or a URL with its password hidden.
    """

    def __init__(self, path: object, problem: str, fix: str = "") -> None:
        self.path = str(path)
        self.problem = problem
        self.fix = fix
        super().__init__(self.path, problem, fix)

    def __str__(self) -> str:
        text = f"{self.path}: {self.problem}"
        return f"{text}; {self.fix}" if self.fix else text

    # Crosses a process boundary intact (children report it to the parent).
    def __reduce__(self) -> tuple[type[StoreError], tuple[str, str, str]]:
        return (type(self), (self.path, self.problem, self.fix))


class NoEffect(Exception):
    """The store refused an operation as a whole, so it changed nothing: a
    transaction rolled back, a fenced write refused. The buyer's outcome is
    a known failure (``fail``), not an unknown one."""


class WriteUnknown(Exception):
    """A write that may or may not have landed: a commit that failed for a
    reason other than a lock. The buyer's outcome is unknown (``info``)."""


class Store:
    """One store, opened in the process that uses it (a connection or a file
    descriptor is never shared across a fork)."""

    #: "json", "sqlite" or "redis"
    kind = ""
    #: does :meth:`cleanup` have files to look at (a run's end then sweeps too)?
    sweeps = False

    def __init__(self, spec: StoreSpec) -> None:
        self.spec = spec
        self.fsync = False

    @property
    def label(self) -> str:
        """How messages name the store (a password never shows)."""
        return self.spec.label

    def exists(self) -> bool:
        """Is there a store to sell from (or must a run create one)?"""
        raise NotImplementedError

    def check_ready(self) -> None:
        """Fail early, before anything changes, when the run could not sell
        here: unreachable, read-only, not a store, a refused password."""
        raise NotImplementedError

    def load(self) -> int:
        """The count, read and checked strictly. Never changes anything."""
        raise NotImplementedError

    def save(self, count: int, before_write: Callable[[], None] | None = None) -> None:
        """Write the count; ``before_write`` runs just before it lands (chaos)."""
        raise NotImplementedError

    def restock(self, count: int) -> None:
        """Create the store if it is missing, and set the count."""
        self.save(count)

    def take(self, n: int, before_write: Callable[[], None] | None = None) -> int:
        """Indivisibly take up to ``n`` tickets if any are left; return the
        count before (seats ``count … count - min(n, count) + 1`` are sold)."""
        raise NotImplementedError(f"{self.kind} store has no native take")

    def native_lock(self, strategy: str, timeout: float, *, lease_ttl: float = 1.0,
                    fencing: bool = False) -> BuyerLock:  # fmt: skip
        """The engine's own lock for ``strategy`` (a transaction, a lease)."""
        raise NotImplementedError(f"{self.kind} store has no {strategy} lock")

    def take_optimistic(self, n: int, wait: Callable[[], None], timeout: float
                        ) -> tuple[int, int]:  # fmt: skip
        """Take up to ``n`` by an optimistic transaction, retried while
        another writer got in between; the count before, and the retries."""
        raise NotImplementedError(f"{self.kind} store has no optimistic take")

    def cleanup(self) -> int:
        """Remove what killed writers left behind (held under the store lock)."""
        return 0

    def close(self) -> None:  # noqa: B027 - a file store holds nothing open
        """Let go of connections."""
