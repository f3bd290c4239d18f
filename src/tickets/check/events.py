"""The event vocabulary: every event of a sale, built here and nowhere else,
and how the checker reads each one.

An operation (a buyer's attempt, or an order) is an ``invoke``, then one
completion: ``ok`` (a seat, or a command buyer's ticket id), ``fail`` (no
effect on the store: sold out, turned away, an error before the critical
section) or ``info`` (unknown: it may or may not have taken a ticket). Its
reason decides how the checks count it, so the reasons are written once,
here, and producers build their events with the constructors below, never
by hand: a typo in a reason would silently change a verdict.

- **outcomes**, what an attempt ended as, before who and when are added:
  :func:`sold`, :func:`sold_ticket`, :func:`sold_out`, :func:`busy`,
  :func:`refused`, :func:`failed`, :func:`unknown`, :func:`unknown_error`,
  :func:`timed_out`, :func:`never_started`, :func:`no_outcome`,
  :func:`unsold`, :func:`abandoned`, :func:`killed_by_chaos`,
  :func:`queue_full`; and :func:`classify`, the one rule for an attempt
  that raised, which every kind of buyer and the clerk apply;
- **events**, an operation's lines: :func:`invoke`, :func:`invoked_by_parent`
  and :func:`completed` (an outcome, with who and when);
- **messages** that are no operation's: :func:`locked` (who holds the run's
  process lock), :func:`take` (the orders a clerk took), and the launcher's
  :func:`spawned`, :func:`launched`, :func:`exited`; the history's
  :func:`run_line` and :func:`end_line`;
- **reading** them: :func:`kind_of` (what the checker keeps of a completion),
  :func:`turned_away`, :func:`held_by_someone`, :func:`is_error`.

Buyers build these by the thousand and import this module (see
:mod:`tickets.engine.child`): plain functions returning plain dicts, and
nothing imported but what a buyer loads anyway. The types are for mypy
alone, under ``TYPE_CHECKING``: a ``TypedDict`` for each event, ``Literal``
for its kind, so every module that builds, sends, reads or writes one is
checked against the same shapes.
"""

from __future__ import annotations

from ..constants import TYPE_CHECKING
from ..locking.locks import LockTimeout
from ..stores.base import NoEffect

if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Final, Literal, NotRequired, Required, TypedDict, TypeGuard, Unpack

    from typing_extensions import TypeIs

    #: The kinds of an operation's events.
    OperationKind = Literal["invoke", "ok", "fail", "info"]

    class Phases(TypedDict, total=False):
        """What an operation's event may carry beside its kind, number and time."""

        pid: int | None  #: the process that made the attempt (a worker's buyers: none)
        t_start: float  #: it began (before the search's network delay)
        t_search: float  #: it looked at the stock (an order: its clerk took it)
        t_locked: float  #: it entered the critical section
        seen: int | None  #: the count its search saw (None: unreadable)
        retries: int  #: an optimistic transaction's tries again
        paused: float  #: a chaos pause, holding the lock
        producer: int  #: the order's producer
        clerk: int  #: the clerk that sold the order

    class Who(TypedDict):
        """Whose event it is: the operation's number (a buyer's, or an
        order's), and the process that made the attempt, if known."""

        buyer: int
        pid: NotRequired[int | None]

    class OkOutcome(TypedDict):
        type: Literal["ok"]
        seat: NotRequired[int]  #: the count it took
        ticket: NotRequired[str]  #: a command buyer's ticket that is no seat
        reason: NotRequired[str]  #: a sale made, with a note (its lock's release failed)

    class FailOutcome(TypedDict):
        type: Literal["fail"]
        reason: str

    class InfoOutcome(TypedDict):
        type: Literal["info"]
        reason: str

    #: How an attempt ended, before who and when are added.
    Outcome = OkOutcome | FailOutcome | InfoOutcome

    class Invoke(Phases):
        type: Literal["invoke"]
        buyer: int
        t: float

    class ParentInvoke(Invoke):
        """The parent's invoke, for an outcome that came alone."""

        by: Literal["parent"]

    class Ok(OkOutcome, Phases):
        buyer: int
        t: float

    class Fail(FailOutcome, Phases):
        buyer: int
        t: float

    class Info(InfoOutcome, Phases):
        buyer: int
        t: float

    Completion = Ok | Fail | Info
    OperationEvent = Invoke | Completion

    class Locked(TypedDict):
        """The run's process lock is now held by ``pid`` (a worker's: by its ``buyer``)."""

        type: Literal["locked"]
        pid: int
        buyer: NotRequired[int]

    class Take(TypedDict):
        """A clerk took these orders off the queue (said before it sells them)."""

        type: Literal["take"]
        clerk: int
        pid: int
        orders: list[int]
        t: float

    class Spawned(TypedDict, total=False):
        """The launcher started a buyer (or a worker) as ``pid``."""

        type: Required[Literal["spawned"]]
        pid: Required[int]
        buyer: int
        worker: int

    class Launched(TypedDict):
        """The launcher started every buyer."""

        type: Literal["launched"]

    class Exited(TypedDict, total=False):
        """A buyer's (or a worker's) exit code, as the launcher reaped it."""

        type: Required[Literal["exit"]]
        code: Required[int]
        t: Required[float]
        buyer: int
        worker: int

    LauncherMessage = Spawned | Launched | Exited
    #: What a child may send over the event pipe.
    Message = OperationEvent | Locked | Take | LauncherMessage

    class ModeFields(TypedDict, total=False):
        """What a run line says of its way of selling (see tickets.engine.harness)."""

        # a buy sale's
        buyers: int
        buyer: str  #: --buy
        exec: str  #: --exec
        explore: bool  #: one schedule of tickets explore (times: its logical clock)
        concurrency: int | None
        # buyers on workers, or producers on workers
        workers: int | None
        # a queue's
        producers: int
        orders: int
        clerks: int
        queue_size: int
        shutdown: str
        batch: int
        put_timeout: float | None
        get_timeout: float | None

    class LeaseFields(TypedDict, total=False):
        """A lease strategy's run line: its time to live, and fencing."""

        lease_ttl: float
        fencing: bool
        #: PostgreSQL's isolation strategies: runs again of a refused transaction
        retries: int

    class SaleFields(TypedDict, total=False):
        """A named sale's run line: the sale, this host, and its clock."""

        sale: str
        host: str
        hosts: int
        clock: dict[str, float]

    class RunFields(ModeFields, LeaseFields, SaleFields, total=False):
        """What a run line says (see tickets.check.history_lines)."""

        version: Required[int]
        run_id: Required[str]
        mode: Required[str]
        store: Required[str]
        store_kind: str
        stock: str
        strategy: Required[str]
        initial: int | None
        restocked: Required[bool]
        ticket_ids: bool
        seed: int | None
        delays: dict[str, float]
        start_method: str
        pid: int
        wall: str
        t: Required[float]

    class RunLine(RunFields):
        type: Literal["run"]

    class ChaosReport(TypedDict):
        """What a chaos run did to the run's processes (the end line's ``chaos``)."""

        kill_rate: float
        pause_rate: float
        seed: int
        kills_planned: int
        killed: int
        paused: int
        #: how long a paused child held the lock (None: SIGSTOP/SIGCONT)
        pause_length_s: float | None

    class EndFields(TypedDict, total=False):
        """What an end line says (the tool writes every field; a history
        read back may leave out all but the time)."""

        remaining: int | None
        store_error: str | None
        aborted: str | None
        run_error: str | None
        notes: list[str]
        chaos: ChaosReport | None
        duration_s: float
        t: Required[float]

    class EndLine(EndFields):
        type: Literal["end"]

    HistoryLine = RunLine | OperationEvent | Take | EndLine


# -- what the checker keeps of an operation (tickets.check.operations) -----

ABSENT: Final = 0  #: no event of this number
PENDING: Final = 1  #: invoked, never completed: its outcome is unknown
OK: Final = 2  #: sold a seat
SOLD_OUT: Final = 3  #: fail: sold out (saw the count at zero)
NO_EFFECT: Final = 4  #: any other fail: busy, never started, an error before the store
UNKNOWN: Final = 5  #: info: may or may not have taken a ticket

OUTCOMES: Final = ("ok", "fail", "info")
OPERATION_KINDS: Final = ("invoke", "ok", "fail", "info")
#: Kinds of message only the launcher sends; the parent keeps them out of the history.
LAUNCHER_KINDS: Final = ("spawned", "launched", "exit")

# -- reasons ----------------------------------------------------------------

#: The one fail that says the stock was gone: the checks hold it to the count.
SOLD_OUT_REASON: Final = "sold out"
#: A fail that says the buyer was turned away: a lock or the store stayed
#: busy past --lock-timeout (or the order queue stayed full), or the store
#: refused and rolled back. It took no part in the sale.
BUSY_PREFIX: Final = "busy"
REFUSED_PREFIX: Final = "refused: "
#: Words of a turned-away reason that say someone held a lock or the store:
#: a LockTimeout's, and SQLite's "database is locked" (a full order queue
#: was held by nobody).
HELD_WORDS: Final = ("was not acquired within", "locked")
#: An outcome that ended on an error: a fail before the critical section, an
#: info (unknown) inside it.
ERROR_PREFIX: Final = "error: "
#: An attempt stopped at its deadline (--buyer-timeout, a command's timeout).
TIMEOUT_PREFIX: Final = "timeout: "
#: A buyer the gate never let through: it changed nothing.
NEVER_STARTED: Final = "never started"
#: An operation the parent never heard the end of (the reason says why, in brackets).
NO_OUTCOME: Final = "no outcome reported"
QUEUE_FULL: Final = f"{BUSY_PREFIX}: the order queue stayed full, try again"
UNSOLD: Final = "unsold: left in the queue when the clerks stopped"
#: The outcome of those who waited for a lock only the dead could hold.
ABANDONED: Final = "stopped: the lock was left held by a dead process, so this one never got it"
KILLED_BY_CHAOS: Final = "chaos: its command was killed with SIGKILL"
LOCK_RELEASE_FAILED: Final = "lock release failed: "


# -- outcomes -----------------------------------------------------------------


def sold(seat: int) -> OkOutcome:
    """A sale: the seat is the count it took."""
    return {"type": "ok", "seat": seat}


def sold_ticket(ticket: str) -> OkOutcome:
    """A command buyer's sale of a ticket that is no seat (an id)."""
    return {"type": "ok", "ticket": ticket}


def sold_out() -> FailOutcome:
    return {"type": "fail", "reason": SOLD_OUT_REASON}


def busy(detail: str) -> FailOutcome:
    """Turned away: a lock or the store stayed held past its timeout."""
    return {"type": "fail", "reason": f"{BUSY_PREFIX}: {detail}"}


def queue_full() -> FailOutcome:
    """An order its producer could not submit: the queue stayed full."""
    return {"type": "fail", "reason": QUEUE_FULL}


def refused(detail: str) -> FailOutcome:
    """Turned away: the store refused and rolled back; it is as it was."""
    return {"type": "fail", "reason": REFUSED_PREFIX + detail}


def failed(detail: str) -> FailOutcome:
    """An error before the critical section: nothing was written."""
    return {"type": "fail", "reason": ERROR_PREFIX + detail}


def never_started(why: str | None = None) -> FailOutcome:
    """A buyer that was never let through the gate (or never begun by its worker)."""
    return {"type": "fail", "reason": NEVER_STARTED if why is None else f"{NEVER_STARTED} ({why})"}


def unsold() -> FailOutcome:
    """An order left in the queue when every clerk had stopped."""
    return {"type": "fail", "reason": UNSOLD}


def abandoned() -> FailOutcome:
    """An operation that waited for a lock only a dead process could hold: no write."""
    return {"type": "fail", "reason": ABANDONED}


def unknown(reason: str) -> InfoOutcome:
    """An outcome nobody knows: it may or may not have taken a ticket."""
    return {"type": "info", "reason": reason}


def unknown_error(detail: str) -> InfoOutcome:
    """An error inside the critical section (or in code the tool cannot see
    into): the write may have landed."""
    return {"type": "info", "reason": ERROR_PREFIX + detail}


def timed_out(detail: str) -> InfoOutcome:
    """Stopped at its deadline, maybe after it wrote."""
    return {"type": "info", "reason": TIMEOUT_PREFIX + detail}


def killed_by_chaos() -> InfoOutcome:
    """A command buyer a chaos run killed mid-command."""
    return {"type": "info", "reason": KILLED_BY_CHAOS}


def no_outcome(why: str) -> InfoOutcome:
    """An operation the parent never heard the end of, and why."""
    return {"type": "info", "reason": f"{NO_OUTCOME} ({why})"}


def classify(
    exc: BaseException, in_critical_section: bool, detail: str | None = None, *, ours: bool = True
) -> Outcome:
    """How an attempt that raised ``exc`` ended: the one rule for every
    kind of buyer and the clerk.

    - a lock, or the store, held past its timeout (:class:`LockTimeout`):
      busy, a fail: it took no part in the sale;
    - the store refused and rolled back (:class:`NoEffect`): refused, a fail;
    - any other error: before the critical section, a fail (nothing was
      written); inside it, unknown (info): the write may have landed.

    ``ours`` False: raised by the user's own buyer code, which the tool cannot
    see into: whatever it was, it may have written first, so it is unknown.
    ``detail``: the error in words (``str(exc)`` if not given).
    """
    words = str(exc) if detail is None else detail
    if not ours:
        return unknown_error(words)
    if isinstance(exc, LockTimeout):
        return busy(words)
    if isinstance(exc, NoEffect):
        return refused(words)
    return unknown_error(words) if in_critical_section else failed(words)


# -- an operation's events --------------------------------------------------
#
# Who and the other fields come as dicts, not keyword arguments: a buyer has
# them at hand, and a keyword call costs a buyer's (or a clerk's) hot path
# twice the time of building the event itself.

#: No more fields (never changed).
NO_FIELDS: Phases = {}


def invoke(who: Who, t: float, fields: Phases = NO_FIELDS) -> Invoke:
    """An attempt begins (``t``: when it searched, or was submitted)."""
    return {"type": "invoke", **who, **fields, "t": t}


def invoked_by_parent(buyer: int, t: float) -> ParentInvoke:
    """The invoke of an operation whose outcome came alone: dated at the
    run's start, as it may have begun at any time since."""
    return {"type": "invoke", "buyer": buyer, "by": "parent", "t": t}


def completed(outcome: Outcome, who: Who, t: float, fields: Phases = NO_FIELDS) -> Completion:
    """The line of an operation's outcome: how it went, whose, and when."""
    if outcome["type"] == "ok":
        return {**outcome, **who, **fields, "t": t}
    if outcome["type"] == "fail":
        return {**outcome, **who, **fields, "t": t}
    return {**outcome, **who, **fields, "t": t}


# -- messages of no operation -------------------------------------------------


def locked(pid: int, buyer: int | None = None) -> Locked:
    """The run's process lock is held by ``pid`` now (a worker's buyer: ``buyer``)."""
    if buyer is None:
        return {"type": "locked", "pid": pid}
    return {"type": "locked", "pid": pid, "buyer": buyer}


def take(clerk: int, pid: int, orders: list[int], t: float) -> Take:
    return {"type": "take", "clerk": clerk, "pid": pid, "orders": orders, "t": t}


def spawned(pid: int, *, buyer: int | None = None, worker: int | None = None) -> Spawned:
    if worker is not None:
        return {"type": "spawned", "worker": worker, "pid": pid}
    assert buyer is not None
    return {"type": "spawned", "buyer": buyer, "pid": pid}


def launched() -> Launched:
    return {"type": "launched"}


def exited(code: int, t: float, *, buyer: int | None = None, worker: int | None = None) -> Exited:
    if worker is not None:
        return {"type": "exit", "worker": worker, "code": code, "t": t}
    assert buyer is not None
    return {"type": "exit", "buyer": buyer, "code": code, "t": t}


def run_line(**fields: Unpack[RunFields]) -> RunLine:
    """The line that opens a history."""
    return {"type": "run", **fields}


def end_line(**fields: Unpack[EndFields]) -> EndLine:
    """The line that closes a history."""
    return {"type": "end", **fields}


# -- reading them -------------------------------------------------------------


def kind_of(event: Completion) -> int:
    """What the checker keeps of a completion: OK, SOLD_OUT, NO_EFFECT or UNKNOWN."""
    kind = event["type"]
    if kind == "ok":
        return OK
    if kind == "fail":
        return SOLD_OUT if event["reason"] == SOLD_OUT_REASON else NO_EFFECT
    return UNKNOWN


def turned_away(reason: str) -> bool:
    """A fail that took no part in the sale: busy, or refused."""
    return reason.startswith(BUSY_PREFIX) or reason.startswith(REFUSED_PREFIX)


def raced_for_stock(reason: str) -> bool:
    """A fail that turned the buyer away after it had read the stock: the
    store refused its write (``refused: …``), or an optimistic transaction
    found the count changed on every try (``… an unchanged …``). Any other
    fail (busy at a lock, never started, stopped) raced nobody for it."""
    return reason.startswith(REFUSED_PREFIX) or "an unchanged " in reason


def held_by_someone(reason: str) -> bool:
    """A turned-away reason that says someone held a lock or the store."""
    return any(words in reason for words in HELD_WORDS)


def is_operation_event(line: Mapping[str, object]) -> TypeIs[OperationEvent]:
    """A line of one of an operation's kinds: read as one, and checked field
    by field as it is folded in (see tickets.check.operations.Operations.add)."""
    return line.get("type") in OPERATION_KINDS


def is_take(line: Mapping[str, object]) -> TypeIs[Take]:
    """A clerk's take line (checked as it is folded in)."""
    return line.get("type") == "take"


def is_run_line(line: Mapping[str, object]) -> TypeIs[RunLine]:
    """A run line (checked by tickets.check.history_lines.check_run_line)."""
    return line.get("type") == "run"


def is_end_line(line: Mapping[str, object]) -> TypeIs[EndLine]:
    """An end line (checked by tickets.check.history_lines.check_end_line)."""
    return line.get("type") == "end"


def is_error(reason: object) -> TypeGuard[str]:
    """A reason that says the outcome ended on an error."""
    return isinstance(reason, str) and reason.startswith(ERROR_PREFIX)
