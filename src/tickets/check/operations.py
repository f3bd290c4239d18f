"""One sale's operations, compact, and the rules their events obey.

An operation is one buyer's attempt (or one order in the queue mode): one
``invoke``, then at most one completion, ``ok`` (with its seat), ``fail``
(with its reason) or ``info`` (outcome unknown). :class:`Operations` folds
events into a table of about 21 bytes per operation (a kind, two times and
a seat), so that checking a history of a million operations costs memory
in proportion to the operations and never to the bytes read; the parent's
ledger folds the events it writes into the same table, so a run's verdict
and ``tickets check`` of its history are one computation.

Every event is validated as it is folded in, and so are the run and end
lines (:mod:`tickets.check.history_lines`); the first that
breaks a rule raises :class:`Malformed`, saying what is wrong in words.
"""

from __future__ import annotations

import unicodedata
from array import array
from bisect import bisect_right
from typing import TYPE_CHECKING, TypeGuard

from ..constants import (
    MAX_BATCH,
    MAX_CLERKS,
    MAX_COUNT,
    MAX_WORKER_PRODUCERS,
)
from ..engine.child.pipe import MAX_REASON

# The kinds the table keeps, defined with the vocabulary that classifies events.
from .events import ABSENT as ABSENT
from .events import NO_EFFECT as NO_EFFECT
from .events import OK as OK
from .events import PENDING as PENDING
from .events import SOLD_OUT as SOLD_OUT
from .events import UNKNOWN as UNKNOWN
from .events import held_by_someone, is_error, kind_of, raced_for_stock, turned_away

if TYPE_CHECKING:
    from .events import Completion, Ok, OperationEvent, OperationKind, Take

#: 2: the run line says whether the sale's tickets are ids (``ticket_ids``);
#: a history of version 1 is read as one whose tickets are seats.
#: 3: the PostgreSQL store (``store_kind`` ``postgres``, its strategies) and,
#: under them, ``retries`` on the run line (allowed) and on outcomes (made).
FORMAT_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
#: the store kinds a history of an older version may name
KINDS_BEFORE_3 = ("json", "sqlite", "redis")
#: a race run is a buy sale, recorded as such
MODES = ("buy", "race", "queue")

#: The longest ticket id an ``ok`` may carry.
MAX_TICKET = 200
#: Times are ``time.monotonic()`` seconds: finite, and below this.
MAX_TIME = 1e12
INF = float("inf")
#: Unicode categories that are not shown as themselves: controls, format
#: characters (bidirectional overrides), surrogates, private use, unassigned,
#: line and paragraph separators.
_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


class Malformed(ValueError):
    """An event that breaks the history's rules; ``str()`` says which and why."""


def printable(text: str) -> str:
    """``text`` with every control, format, surrogate or unassigned character
    replaced by ``?``: what came from a history may not steer a terminal
    (escape sequences, bidirectional overrides) or fail to encode."""
    if text.isprintable():
        return text
    return "".join("?" if unicodedata.category(ch) in _HIDDEN else ch for ch in text)


def is_time(value: object, low: float = 0.0) -> TypeGuard[float]:
    """A finite time, not before ``low`` (a bool is not a number)."""
    return (type(value) is float or type(value) is int) and low <= value < MAX_TIME


def _time_or_none(value: object, low: float) -> bool:
    return value is None or is_time(value, low)


class Operations:
    """The operations of a sale, numbered ``0 .. size-1``, in flat arrays.

    ``invoked[i]`` and ``completed[i]`` are monotonic seconds (``completed``
    is infinite for an operation whose outcome is unknown: it may take effect
    at any time after its invoke); ``seats[i]`` is the seat of an ``ok``.

    ``size`` slots are held from the start (a run's ledger sees them all);
    ``claimed`` (default ``size``) is how many the run line says there are,
    the bound every number is held to. A table read from a history starts
    empty and grows to the highest number invoked (see :meth:`fit`): what a
    run line claims costs nothing until its events are there.
    """

    def __init__(
        self,
        size: int,
        t_run: float = 0.0,
        noun: str = "buyer",
        *,
        claimed: int | None = None,
        ids: bool = False,
    ) -> None:
        self.size = size
        self.claimed = size if claimed is None else claimed
        self.noun = noun
        #: no operation may have happened before its run began
        self.t_run = t_run
        self.kinds = bytearray(size)
        self.invoked = array("d", bytes(8 * size))
        self.completed = array("d", bytes(8 * size))
        #: when each operation began contending (see tickets.check.contention):
        #: a buyer's ``t_start``, a clerk's sale's start; infinite for an
        #: order still in the queue
        self.started = array("d", bytes(8 * size))
        self.seats = array("i", bytes(4 * size))
        #: when an operation of unknown outcome was last in flight (its
        #: ``info``): operation -> time
        self.unknown_at: dict[int, float] = {}
        #: the ticket ids of sales that got an id, not a seat (a command
        #: buyer's): operation -> id
        self.tickets: dict[int, str] = {}
        #: the run said its tickets are ids (--ticket-ids): a seat beside
        #: them is allowed; otherwise a sale's tickets are all one kind
        self.ids = ids
        #: sales that got a seat (not an id)
        self.numeric = 0
        #: fails that turned the buyer away (busy or refused), and those of
        #: them that waited out a lock or the store held (busy, "locked")
        self.refused = 0
        self.held = 0
        self.first_held: str | None = None
        self.errors = 0
        self.first_error: str | None = None
        #: transactions run again: Redis WATCH, PostgreSQL serialization failures
        self.retries = 0
        #: the latest time any event carried (the end line may not be earlier)
        self.latest = t_run
        #: a merged sale's runs: (first operation, how its operations are
        #: named), see :meth:`merge`
        self.parts: list[tuple[int, str]] = [(0, noun)]

    # -- folding events in -------------------------------------------------

    def add(self, ev: OperationEvent) -> None:
        """Fold one ``invoke``/``ok``/``fail``/``info`` event in, or raise Malformed.

        The type says what a well-formed event holds; what a history file
        holds is checked here, field by field, before it is believed."""
        kind = ev["type"]
        number = ev.get("buyer")
        if type(number) is not int or not 0 <= number < self.claimed:
            raise Malformed(
                f"{kind} event with {self.noun} number {number!r}, not one of 0..{self.claimed - 1}"
            )
        t = ev.get("t")
        if not ((type(t) is float or type(t) is int) and self.t_run <= t < MAX_TIME):
            raise Malformed(
                f"{kind} event of {self.noun} {number} has time {t!r}, not a time during its run"
            )
        self._check_fields(ev, kind, t)
        if t > self.latest:
            self.latest = t
        try:  # free when it does not raise: the ledger's table holds every number
            state = self.kinds[number]
        except IndexError:  # beyond what a read table holds yet: never seen
            state = ABSENT
            if kind == "invoke":
                self._grow(number)
        if ev["type"] == "invoke":
            if state != ABSENT:
                raise Malformed(f"a second invoke of {self.noun} {number}")
            self.kinds[number] = PENDING
            self.invoked[number] = t
            self.completed[number] = INF
            if "producer" in ev:  # an order: it reaches the store when a clerk sells it
                self.started[number] = INF
            else:
                start = ev.get("t_start")
                self.started[number] = t if start is None else start
            return
        if state != PENDING:
            what = "before its invoke" if state == ABSENT else "after its completion"
            raise Malformed(f"{kind} of {self.noun} {number} {what}")
        if t < self.invoked[number]:
            raise Malformed(
                f"{kind} of {self.noun} {number} at {t!r}, "
                f"before its invoke at {self.invoked[number]!r}"
            )
        reason = self._reason(ev, kind, number)
        if ev["type"] == "ok":
            self._sold(ev, number)
        elif ev["type"] == "fail" and reason is None:
            raise Malformed(f"fail of {self.noun} {number} without a reason")
        outcome = self.kinds[number] = kind_of(ev)
        if outcome != UNKNOWN:  # an info may take effect at any time after its invoke
            self.completed[number] = t
        else:  # but it was in flight until then only (see tickets.check.contention)
            self.unknown_at[number] = t
        if "clerk" in ev and (began := ev.get("t_search")) is not None:
            self.started[number] = began  # the clerk's sale of it began
        if outcome == NO_EFFECT and reason is not None and turned_away(reason):
            self._turned_away(reason)
        if outcome == NO_EFFECT and not (reason is not None and raced_for_stock(reason)):
            # Busy at a lock, never started, stopped: it never reached the
            # stock, so it raced nobody for it (a sale of one attempt and
            # five busy buyers tested nothing; see tickets.check.contention).
            self.started[number] = INF

    def _turned_away(self, reason: str) -> None:
        self.refused += 1
        # Someone held a lock or the store; not a full order queue, which
        # nobody else held.
        if held_by_someone(reason):
            self.held += 1
            if self.first_held is None:
                self.first_held = printable(reason)

    def _grow(self, number: int) -> None:
        """Room for operation ``number``: half as much again as is held, so
        growing costs O(1) per operation, and never past the claimed total.
        The new slots are ABSENT, as every number not yet seen."""
        size = min(self.claimed, max(number + 1, self.size + (self.size >> 1), 1024))
        extra = size - self.size
        self.kinds += bytes(extra)
        for table in (self.invoked, self.completed, self.started, self.seats):
            table.frombytes(bytes(table.itemsize * extra))
        self.size = size

    def fit(self) -> None:
        """Let go of the slots past the highest operation seen: a table that
        grew in steps ends at ``size`` = that number + 1."""
        top = len(self.kinds.rstrip(bytes((ABSENT,))))
        if top < self.size:
            for table in (self.kinds, self.invoked, self.completed, self.started, self.seats):
                del table[top:]
            self.size = top

    def _sold(self, ev: Ok, number: int) -> None:
        """An ``ok``'s seat (a count it took), or its ticket id (text: a
        command buyer's ticket that is not a whole number)."""
        seat, ticket = ev.get("seat"), ev.get("ticket")
        if ticket is not None and seat is None:
            if type(ticket) is not str or not 0 < len(ticket) <= MAX_TICKET:
                raise Malformed(
                    f"ok of {self.noun} {number} has ticket {ticket!r:.60}, "
                    f"not a ticket id (text of 1 to {MAX_TICKET} characters)"
                )
            if self.numeric and not self.ids:
                raise Malformed(
                    f"ok of {self.noun} {number} has ticket {printable(ticket)!r:.60}, not a "
                    "seat (a whole number from 1) as the sale's other tickets: a sale's "
                    "tickets are all seats, or all ids with --ticket-ids"
                )
            self.tickets[number] = ticket
            return
        if type(seat) is not int or not -MAX_COUNT <= seat <= MAX_COUNT:
            raise Malformed(f"ok of {self.noun} {number} has seat {seat!r}, not a ticket number")
        if self.tickets and not self.ids:
            raise Malformed(
                f"ok of {self.noun} {number} has seat {seat}, where the sale's other tickets "
                "are ids: a sale's tickets are all seats, or all ids with --ticket-ids"
            )
        self.numeric += 1
        self.seats[number] = seat

    def _reason(self, ev: Completion, kind: OperationKind, number: int) -> str | None:
        """An outcome's reason, if any; one starting "error: " is counted."""
        reason = ev.get("reason")
        if reason is not None:
            if type(reason) is not str or len(reason) > MAX_REASON:
                raise Malformed(f"{kind} of {self.noun} {number} has reason {reason!r:.60}")
            if is_error(reason):
                self.errors += 1
                if self.first_error is None:
                    self.first_error = printable(reason)
        return reason

    def _check_fields(self, ev: OperationEvent, kind: OperationKind, t: float) -> None:
        """The optional fields: their types, ranges, and phases in time order;
        an outcome's retries (how often its transaction ran again) are summed."""
        retries = ev.get("retries", 0)
        if type(retries) is not int or not 0 <= retries <= MAX_COUNT:
            raise Malformed(f"{kind} of {self.noun} {ev['buyer']} has retries {retries!r:.40}")
        self.retries += retries
        low = self.t_run
        t_start, t_search, t_locked = ev.get("t_start"), ev.get("t_search"), ev.get("t_locked")
        if not (
            _time_or_none(t_start, low)
            and _time_or_none(t_search, low)
            and _time_or_none(t_locked, low)
        ):
            raise Malformed(
                f"{kind} event of {self.noun} {ev['buyer']} has a phase time "
                "that is not a time during its run"
            )
        last = low
        for phase in (t_start, t_search, t_locked, t):
            if phase is not None:
                if phase < last:
                    raise Malformed(
                        f"{kind} event of {self.noun} {ev['buyer']} has its phases "
                        "out of order (start, search, locked, t)"
                    )
                last = phase
        pid, seen = ev.get("pid"), ev.get("seen")
        if pid is not None and not (type(pid) is int and pid >= 0):
            raise Malformed(f"{kind} event of {self.noun} {ev['buyer']} has pid {pid!r}")
        if seen is not None and not (type(seen) is int and -MAX_COUNT <= seen <= MAX_COUNT):
            raise Malformed(f"{kind} event of {self.noun} {ev['buyer']} has seen {seen!r}")
        for key, value, bound in (
            ("producer", ev.get("producer"), MAX_WORKER_PRODUCERS),
            ("clerk", ev.get("clerk"), MAX_CLERKS),
        ):
            if value is not None and not (type(value) is int and 0 <= value < bound):
                raise Malformed(f"{kind} event of {self.noun} {ev['buyer']} has {key} {value!r}")

    def add_take(self, ev: Take) -> None:
        """Check a clerk's ``take`` (the orders it took off the queue); nothing is kept."""
        clerk, orders, t = ev.get("clerk"), ev.get("orders"), ev.get("t")
        if not (type(clerk) is int and 0 <= clerk < MAX_CLERKS):
            raise Malformed(f"take event with clerk {clerk!r}")
        if not is_time(t, self.t_run):
            raise Malformed(f"take event of clerk {clerk} has time {t!r}")
        if (
            type(orders) is not list
            or not 0 < len(orders) <= MAX_BATCH
            or not all(type(o) is int and 0 <= o < self.claimed for o in orders)
        ):
            raise Malformed(f"take event of clerk {clerk} without a list of order numbers")
        self.latest = max(self.latest, t)

    # -- reading it back ---------------------------------------------------

    def label(self, i: int) -> str:
        """``buyer 12``, or ``run 2 buyer 12`` in a merged sale."""
        start, name = self.parts[self.part_of(i)]
        return f"{name} {i - start}"

    def key(self, i: int) -> str:
        """``12``, or ``2:12`` in a merged sale (the keys of double-sold seats)."""
        part = self.part_of(i)
        number = i - self.parts[part][0]
        return f"{part + 1}:{number}" if len(self.parts) > 1 else str(number)

    def part_of(self, i: int) -> int:
        """Which run of a merged sale operation ``i`` is of."""
        return bisect_right(self.parts, i, key=lambda part: part[0]) - 1

    def count(self, kind: int) -> int:
        return self.kinds.count(kind)

    @classmethod
    def merge(cls, tables: list[Operations]) -> Operations:
        """One table for a sale of several runs (times are comparable: one machine's clock)."""
        if len(tables) == 1:
            return tables[0]
        merged = cls(0, min(t.t_run for t in tables), tables[0].noun)
        merged.ids = all(t.ids for t in tables)
        merged.parts = []
        for n, table in enumerate(tables):
            offset = merged.size
            merged.parts.append((merged.size, f"run {n + 1} {table.noun}"))
            merged.size += table.size
            merged.claimed = merged.size
            merged.kinds += table.kinds
            merged.invoked += table.invoked
            merged.completed += table.completed
            merged.started += table.started
            merged.seats += table.seats
            merged.tickets.update({i + offset: t for i, t in table.tickets.items()})
            merged.unknown_at.update({i + offset: t for i, t in table.unknown_at.items()})
            merged.numeric += table.numeric
            merged.refused += table.refused
            merged.retries += table.retries
            merged.held += table.held
            merged.first_held = merged.first_held or table.first_held
            merged.errors += table.errors
            merged.first_error = merged.first_error or table.first_error
            merged.latest = max(merged.latest, table.latest)
        return merged
