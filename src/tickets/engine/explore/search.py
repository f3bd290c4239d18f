"""Which schedules to run: every distinct one, depth first, or a sample.

**Exhaustive** (the default): a depth-first search over who goes next,
each schedule run again from the start (stateless model checking, as
CHESS and Loom do). Sleep sets (Godefroid) prune the redundant ones: after
trying buyer A at a point, a sibling that runs B first keeps A asleep for
as long as only steps independent of A's run, since waking it there would
give a schedule equal to one already run up to swapping independent steps.
So every schedule completed is of a class not run before; the search also
counts the classes (each schedule's Foata normal form) as a check on it.
``preemptions`` bounds how often a buyer that could go on is switched away
from (CHESS: most concurrency bugs need one or two).

**Random** (PCT, Burckhardt et al., ASPLOS 2010): each schedule gives the
buyers random priorities and lowers the running buyer's priority at
``depth - 1`` random steps; the highest enabled buyer always runs. A bug
that needs ``depth`` ordering constraints is found by one schedule with
probability at least ``1 / (n * k ** (depth - 1))`` (n buyers, k steps).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .sale import ExploredSale, Nondeterministic, Schedule
from .steps import canonical

if TYPE_CHECKING:
    from .steps import Step


@dataclass
class Node:
    """A point of the search tree: who could go, what each would do."""

    enabled: list[int]
    pending: dict[int, Step]
    last: int | None
    preemptions: int
    sleep: set[int]
    done: set[int] = field(default_factory=set)
    chosen: int = -1
    #: what the chosen step did, in words, the first time it ran (the values
    #: it read and wrote: a replay of the prefix must see the same)
    said: str | None = None

    def candidates(self, bound: int | None) -> list[int]:
        """Who may go here: awake, and within the preemption bound; the
        buyer that went last first (no switch), then by number."""
        out = [b for b in self.enabled if b not in self.sleep]
        if bound is not None and self.preemptions >= bound and self.last in self.enabled:
            out = [b for b in out if b == self.last]
        out.sort(key=lambda b: (b != self.last, b < 0, abs(b)))  # a lease's expiry last
        return out

    def child_sleep(self, reduction: bool) -> set[int]:
        """The sleep set after ``chosen``: those asleep or tried before here
        whose next step does not depend on the chosen one."""
        if not reduction:
            return set()
        step = self.pending[self.chosen]
        return {
            b
            for b in self.sleep | self.done
            if b != self.chosen and b in self.pending and not self.pending[b].conflicts(step)
        }

    def preemptions_after(self) -> int:
        switched = self.last is not None and self.chosen != self.last and self.last in self.enabled
        return self.preemptions + (1 if switched else 0)


@dataclass
class Budget:
    schedules: int
    seconds: float
    started: float = field(default_factory=time.monotonic)

    def spent(self, ran: int) -> str | None:
        """Why the search must stop, if it must: one schedule more than the
        budget was found (the search goes on through dropped runs until then:
        one that completes within the budget is not cut short), or time is up."""
        if ran > self.schedules:
            return f"more schedules than the budget ({self.schedules:,})"
        if time.monotonic() - self.started >= self.seconds:
            return f"the time budget ({self.seconds:g}s) was reached"
        return None


@dataclass
class Outcome:
    """What a search saw."""

    schedules: int = 0
    #: classes of schedules (equal up to swapping adjacent independent steps)
    distinct: int = 0
    #: schedules dropped before completing: redundant or over the bound
    pruned: int = 0
    #: schedules in which two buyers' purchases overlapped (see tickets.check.contention)
    contended: int = 0
    failure: Schedule | None = None
    deadlock: Schedule | None = None
    uncontrolled: set[int] = field(default_factory=set)
    #: buyers that ended without a store operation through their handle
    unseen: set[int] = field(default_factory=set)
    #: why it stopped before covering everything, if it did
    budget: str | None = None
    complete: bool = False
    seconds: float = 0.0


def exhaustive(
    sale: ExploredSale,
    bound: int | None,
    budget: Budget,
    *,
    reduction: bool = True,
    stop_at_failure: bool = True,
) -> Outcome:
    """Every distinct schedule (up to ``bound`` preemptions), depth first."""
    out = Outcome()
    classes: set[tuple[tuple[int, int, str], ...]] = set()
    nodes: list[Node] = []
    prefix: list[int] = []
    started = time.monotonic()
    while True:
        schedule = sale.run(_chooser(nodes, prefix, bound, reduction))
        _tally(out, schedule, classes)
        if (out.failure is not None and stop_at_failure) or out.deadlock is not None:
            break
        prefix = _backtrack(nodes, bound)
        if not prefix and not nodes:
            out.complete = True
            break
        if (why := budget.spent(out.schedules)) is not None:
            out.budget = why
            break
    out.distinct = len(classes)
    out.seconds = time.monotonic() - started
    return out


def _tally(
    out: Outcome, schedule: Schedule, classes: set[tuple[tuple[int, int, str], ...]]
) -> None:
    out.uncontrolled |= schedule.uncontrolled
    if schedule.deadlock is not None:
        out.deadlock = schedule
        out.schedules += 1
        return
    if schedule.report is None:
        out.pruned += 1
        return
    out.schedules += 1
    if schedule.report.contention.contended:
        out.contended += 1
    classes.add(canonical([e.step for e in schedule.ran]))
    out.unseen |= schedule.unseen
    # A schedule one of whose buyers sold (or gave up) without touching the
    # store judged a stock it never used: its failure is not a finding.
    if schedule.failed and out.failure is None and not schedule.unseen:
        out.failure = schedule


def _chooser(nodes: list[Node], prefix: list[int], bound: int | None, reduction: bool):  # type: ignore[no-untyped-def]
    """Who goes next: the prefix's choices (checked against what the last
    run saw there), then new nodes, each taking its first candidate."""

    def choose(
        depth: int, enabled: list[int], pending: dict[int, Step], last: int | None, said: str
    ) -> int | None:
        if 0 < depth <= len(nodes):  # what the step before did, against the first time
            before = nodes[depth - 1]
            if before.said is None:
                before.said = said
            elif before.said != said:
                raise Nondeterministic(
                    f"step {depth} did other than the first time ({said!r}, not "
                    f"{before.said!r}): the buyer code depends on something besides the "
                    "store (time, randomness, its own state)"
                )
        if depth < len(prefix):
            node = nodes[depth]
            if node.enabled != enabled or node.pending != pending:
                raise Nondeterministic(
                    f"the same first {depth} step(s) led to other next steps "
                    f"({_said(node.pending)} before, {_said(pending)} now): the buyer code "
                    "depends on something besides the store (time, randomness, its own state)"
                )
            return prefix[depth]
        if nodes:
            parent = nodes[-1]
            sleep, preemptions = parent.child_sleep(reduction), parent.preemptions_after()
        else:
            sleep, preemptions = set(), 0
        node = Node(enabled, dict(pending), last, preemptions, sleep)
        candidates = node.candidates(bound)
        nodes.append(node)
        if not candidates:
            nodes.pop()
            return None
        node.chosen = candidates[0]
        node.done.add(node.chosen)
        return node.chosen

    return choose


def _said(pending: dict[int, Step]) -> str:
    return ", ".join(f"buyer {b}: {s.kind}" for b, s in sorted(pending.items()))


def _backtrack(nodes: list[Node], bound: int | None) -> list[int]:
    """The next schedule's prefix: at the deepest node with a candidate not
    tried yet, that candidate. Empty (and no nodes) when none is left."""
    while nodes:
        node = nodes[-1]
        untried = [b for b in node.candidates(bound) if b not in node.done]
        if untried:
            node.chosen = untried[0]
            node.done.add(node.chosen)
            node.said = None  # another step goes here now
            return [n.chosen for n in nodes]
        nodes.pop()
    return []


def sampled(sale: ExploredSale, count: int, seed: int, depth: int, budget: Budget) -> Outcome:
    """``count`` schedules chosen by PCT with ``depth``; stops at the first failure."""
    out = Outcome()
    classes: set[tuple[tuple[int, int, str], ...]] = set()
    rng = random.Random(seed)
    started = time.monotonic()
    steps = 0
    for _ in range(count):
        buyers = sale.setup.buyers
        priority = list(range(depth, depth + buyers))
        rng.shuffle(priority)
        k = max(steps, 8 * buyers)
        points = rng.sample(range(k), min(depth - 1, k))  # a depth past the steps: every one
        changes = {step: level for level, step in enumerate(points)}

        schedule = sale.run(_pct(priority, changes))
        steps = max(steps, len(schedule.choices))
        _tally(out, schedule, classes)
        if out.failure is not None or out.deadlock is not None:
            break
        if (why := budget.spent(out.schedules)) is not None:
            out.budget = why
            break
    out.distinct = len(classes)
    out.seconds = time.monotonic() - started
    return out


def _pct(priority: list[int], changes: dict[int, int]):  # type: ignore[no-untyped-def]
    """PCT's choice: the highest-priority enabled buyer; at a change point
    the one about to run drops to that point's low priority first."""

    def choose(
        d: int, enabled: list[int], pending: dict[int, Step], last: int | None, said: str
    ) -> int:
        best = max(enabled, key=lambda b: priority[b])
        if d in changes:
            priority[best] = changes[d]
            best = max(enabled, key=lambda b: priority[b])
        return best

    return choose


def replayed(sale: ExploredSale, choices: list[int]) -> Schedule:
    """One schedule, step for step as ``choices`` say (a saved counterexample)."""

    def choose(
        d: int, enabled: list[int], pending: dict[int, Step], last: int | None, said: str
    ) -> int:
        if d >= len(choices):
            raise Nondeterministic(
                f"the schedule ends after {len(choices)} steps, the sale did not"
            )
        who = choices[d]
        if who not in enabled:
            raise Nondeterministic(
                f"step {d + 1}: buyer {who} cannot go there (only {enabled} can): the "
                "schedule does not fit this buyer code or strategy"
            )
        return who

    schedule = sale.run(choose)
    if len(schedule.choices) != len(choices):
        raise Nondeterministic(
            f"the sale ended after {len(schedule.choices)} of the schedule's {len(choices)} steps"
        )
    return schedule
