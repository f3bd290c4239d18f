"""The switch points of an exploration: the store operations a buyer makes
through its handle, each a :class:`Step` the scheduler may let run next.

A step says what it touches (``obj``: the store, a lock, nothing) and
whether it changes it (``writes``), which is all the search needs to know
which steps are **independent**: two steps of different buyers that touch
different things, or only read the same thing, give the same result in
either order, so the search need not try both (see
tickets.engine.explore.search). Every step of one buyer depends on the
buyer's previous one (program order).
"""

from __future__ import annotations

from typing import NamedTuple

#: What a step touches: the store's count, or nothing (a local step).
STORE = "store"
#: A Redis lease: the scheduler may let it expire under its holder.
LEASE = "the lease"


class Step(NamedTuple):
    buyer: int
    #: search, read, write, take, lock, unlock, wait; a deferred
    #: transaction's begin and commit
    kind: str
    #: what it touches (STORE, a lock's name), or None: nothing shared
    obj: str | None
    #: does it change ``obj`` (a write, a take, a lock taken or let go)?
    writes: bool

    def conflicts(self, other: Step) -> bool:
        """Do the two steps' orders matter (dependent)?"""
        if self.buyer == other.buyer:
            return True
        if self.obj is None or self.obj != other.obj:
            return False
        return self.writes or other.writes

    @property
    def takes_lock(self) -> bool:
        return self.kind == "lock" and self.obj is not None


def search(buyer: int) -> Step:
    return Step(buyer, "search", STORE, False)


def read(buyer: int) -> Step:
    return Step(buyer, "read", STORE, False)


def write(buyer: int) -> Step:
    return Step(buyer, "write", STORE, True)


def take(buyer: int) -> Step:
    return Step(buyer, "take", STORE, True)


def wait(buyer: int) -> Step:
    return Step(buyer, "wait", None, False)


def lock(buyer: int, name: str | None) -> Step:
    return Step(buyer, "lock", name, True)


def unlock(buyer: int, name: str | None) -> Step:
    return Step(buyer, "unlock", name, True)


def expire(buyer: int) -> Step:
    """The server ends ``buyer``'s lease (its holder paused past its TTL):
    a choice of the scheduler's, written as the negative ``-(buyer + 1)``."""
    return Step(buyer, "expire", LEASE, True)


def who(choice: int) -> int:
    """The buyer a choice is about (an expiry is its holder's)."""
    return choice if choice >= 0 else -choice - 1


def commit(buyer: int) -> Step:
    """A transaction's end: what it wrote is seen from here on."""
    return Step(buyer, "commit", STORE, True)


def canonical(steps: list[Step]) -> tuple[tuple[int, int, str], ...]:
    """The schedule's class: equal for two schedules that differ only by
    swapping adjacent independent steps (its Foata normal form: each step
    at one more than the deepest earlier step it depends on, then by buyer)."""
    levels: list[int] = []
    for i, step in enumerate(steps):
        deepest = 0
        for j in range(i):
            if levels[j] >= deepest and steps[j].conflicts(step):
                deepest = levels[j]
        levels.append(deepest + 1)
    return tuple(sorted((levels[i], s.buyer, s.kind) for i, s in enumerate(steps)))
