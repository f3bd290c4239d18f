"""The events of a sale: the vocabulary every producer builds them with and
the checker reads them by (tickets.check.events), and the children ->
parent event pipe that carries them (framing, encoding, atomic sizes)."""

from __future__ import annotations

import ast
import json
import multiprocessing
import os
import signal
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from helpers import spec_of
from tickets.check import events
from tickets.check.operations import Operations
from tickets.engine.child.buyer import failure, outcome_of, warm_up
from tickets.engine.child.commands import judge
from tickets.engine.child.gate import FdGate
from tickets.engine.child.orders import sell_guarded
from tickets.engine.child.pipe import (
    MAX_EVENT_BYTES,
    MAX_REASON,
    EventWriter,
    FrameReader,
    encode,
    frame,
)
from tickets.engine.child.plan import BuyerPlan, CommandPlan, Delays
from tickets.engine.child.session import BuyerSession, WatchedLock
from tickets.engine.child.user_buyer import outcome as user_outcome
from tickets.engine.event_pipe import EventPipe
from tickets.locking.locks import LockTimeout
from tickets.locking.strategies import get
from tickets.stores import NoEffect, WriteUnknown
from tickets.stores import json_file as st

EVENTS: list[Any] = [
    {"type": "invoke", "buyer": 3, "pid": 77, "t": 12.345678901234, "t_start": 1e-7, "seen": None},
    {"type": "ok", "buyer": 0, "pid": 1, "seat": 10, "t": 3.0, "t_locked": 2.5, "seen": 10},
    {"type": "fail", "buyer": 9, "pid": 2, "reason": 'é "quoted"\n\ttab \u2603', "t": 1.0},
    {"type": "info", "buyer": 1, "pid": 3, "reason": "", "t": -0.0, "nested": {"a": [1, 2.5]}},
]


@pytest.mark.parametrize("event", EVENTS, ids=[str(e["type"]) for e in EVENTS])
def test_events_encode_as_compact_json(event: dict[str, object]) -> None:
    data = encode(event)
    assert json.loads(data) == event
    assert data == json.dumps(event, separators=(",", ":")).encode()


def test_long_reasons_are_cut_and_oversized_events_refused() -> None:
    event = {"type": "fail", "buyer": 1, "reason": "x" * 5000}
    assert len(json.loads(encode(event))["reason"]) == MAX_REASON
    with pytest.raises(ValueError, match="atomic"):
        encode({"type": "fail", "buyer": 1, "blob": "y" * MAX_EVENT_BYTES})
    with pytest.raises(ValueError, match="atomic"):
        EventWriter(-1).send_all([cast(Any, {"type": "fail", "reason": "z" * 290})] * 20)


@pytest.mark.timeout(30)
def test_a_child_writes_what_the_parent_reads() -> None:
    channel = EventPipe(multiprocessing.get_context("fork"))
    try:
        writer = EventWriter.over(channel.writer)  # as a spawned child gets it
        assert writer.fd == channel.writer.fileno()
        writer.send(EVENTS[0])
        EventWriter.over(channel.writer.fileno()).send_all(EVENTS[1:3])
        # Every message waiting comes back from one call, in order.
        assert channel.get(timeout=5) == EVENTS[:3]
        assert channel.get(timeout=0.01) == []
    finally:
        channel.close()


@pytest.mark.timeout(30)
def test_the_parent_reassembles_frames_split_across_reads() -> None:
    channel = EventPipe(multiprocessing.get_context("fork"))
    fd = channel.writer.fileno()
    try:
        many = [{"type": "invoke", "buyer": b, "pid": b, "t": b / 7} for b in range(3000)]
        data = b"".join(frame(encode(e)) for e in many)  # more than one read's worth
        one = frame(encode(EVENTS[1]))
        got: list[Any] = []
        for start in range(0, len(data), 50_000):
            os.write(fd, data[start : start + 50_000])
            got += channel.get(timeout=5)
        while len(got) < len(many):
            got += channel.get(timeout=5)
        assert got == many
        os.write(fd, one[:3])  # half a header, then half a payload
        assert channel.get(timeout=0.05) == []
        os.write(fd, one[3:10])
        assert channel.get(timeout=0.05) == []
        os.write(fd, one[10:])
        assert channel.get(timeout=5) == [EVENTS[1]]
        channel.writer.close()
        with pytest.raises(EOFError):
            channel.get(timeout=5)
        assert channel.drain() == []
    finally:
        channel.reader.close()


def test_warming_up_a_buyer_changes_nothing(store: Path) -> None:
    st.save(store, 4)
    before = store.read_bytes()
    lock_file = st.lock_path(store)
    handler = signal.getsignal(signal.SIGALRM)
    fds = set(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    read_end, write_end = os.pipe()
    sink = os.open(os.devnull, os.O_RDWR)
    try:
        for strategy in map(get, ("none", "per-buyer", "process", "file", "flock")):
            plan = BuyerPlan(
                store=spec_of(store), strategy=strategy, seed=1, delays=Delays(), lock_timeout=1
            )
            warm_up(plan, EventWriter(write_end), FdGate(sink))
        os.close(write_end)
        sent = os.read(read_end, 1 << 20)
    finally:
        os.close(read_end)
        os.close(sink)
    assert sent, "the warm-up sends its events where it is told"
    assert store.read_bytes() == before
    assert signal.getsignal(signal.SIGALRM) == handler
    if fds is not None:
        assert set(os.listdir("/proc/self/fd")) == fds
    # The lock was built but never taken: a non-blocking try gets it at once.
    import fcntl

    fd = os.open(lock_file, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)


@pytest.mark.parametrize("pipe_buf", [512, 4096])
def test_a_long_reason_is_cut_to_fit_one_atomic_write(
    pipe_buf: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PIPE_BUF is 512 on macOS: an event with a reason of 300 four-byte
    characters (1,200 bytes) still goes out whole, its reason cut."""
    from tickets.engine.child import pipe

    limit = min(4000, pipe_buf - pipe.HEADER_BYTES)
    monkeypatch.setattr(pipe, "MAX_EVENT_BYTES", limit)
    event = {"type": "info", "buyer": 7, "reason": "error: " + "🎫" * 400, "t": 1.5}
    data = pipe.encode(event)
    assert len(data) <= limit
    sent = json.loads(data)
    assert (
        sent["buyer"] == 7 and sent["reason"].startswith("error: 🎫") and sent["reason"][-1] == "…"
    )
    assert len(sent["reason"]) <= MAX_REASON


# -- the vocabulary: one rule for how an attempt ended, one set of words ----

BUSY = LockTimeout("the lock on s.json", 0.5)
REFUSED = NoEffect("the transaction was rolled back")


@pytest.mark.parametrize(
    ("exc", "in_critical_section", "kind", "reason"),
    [
        (BUSY, False, "fail", "busy: the lock on s.json was not acquired within 0.5s"),
        (BUSY, True, "fail", "busy: the lock on s.json was not acquired within 0.5s"),
        (REFUSED, False, "fail", "refused: the transaction was rolled back"),
        (REFUSED, True, "fail", "refused: the transaction was rolled back"),
        (ValueError("bad count"), False, "fail", "error: bad count"),
        (ValueError("bad count"), True, "info", "error: bad count"),
        (WriteUnknown("the commit failed"), True, "info", "error: the commit failed"),
        (OSError(28, "No space left on device"), True, "info", "error: [Errno 28] No space"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_classify_says_how_an_attempt_that_raised_ended(
    exc: Exception, in_critical_section: bool, kind: str, reason: str
) -> None:
    outcome = events.classify(exc, in_critical_section)
    assert outcome["type"] == kind
    assert outcome["reason"].startswith(reason)
    expected = events.UNKNOWN if kind == "info" else events.NO_EFFECT
    assert events.kind_of(events.completed(outcome, {"buyer": 0}, 1.0)) == expected


@pytest.mark.parametrize("exc", [BUSY, REFUSED, ValueError("x"), SystemExit(3)])
def test_what_the_users_code_raised_is_unknown_whatever_it_was(exc: BaseException) -> None:
    """It may have written before it raised: never a known failure."""
    for in_critical_section in (False, True):
        outcome = events.classify(exc, in_critical_section, "its words", ours=False)
        assert outcome == {"type": "info", "reason": "error: its words"}


#: Every outcome constructor, and what the checker keeps of it.
OUTCOMES = [
    (events.sold(7), events.OK, False),
    (events.sold_ticket("A-17"), events.OK, False),
    (events.sold_out(), events.SOLD_OUT, False),
    (events.busy("the lock was not acquired within 1s"), events.NO_EFFECT, True),
    (events.queue_full(), events.NO_EFFECT, True),
    (events.refused("rolled back"), events.NO_EFFECT, True),
    (events.failed("could not open the store"), events.NO_EFFECT, False),
    (events.never_started(), events.NO_EFFECT, False),
    (events.never_started("the run ended first"), events.NO_EFFECT, False),
    (events.unsold(), events.NO_EFFECT, False),
    (events.abandoned(), events.NO_EFFECT, False),
    (events.unknown("its worker died"), events.UNKNOWN, False),
    (events.unknown_error("the write may have landed"), events.UNKNOWN, False),
    (events.timed_out("still buying after 1s; stopped"), events.UNKNOWN, False),
    (events.killed_by_chaos(), events.UNKNOWN, False),
    (events.no_outcome("exit 1"), events.UNKNOWN, False),
]


@pytest.mark.parametrize(("outcome", "kept", "turned_away"), OUTCOMES, ids=lambda v: str(v))
def test_each_outcome_is_read_back_as_it_was_meant(
    outcome: Any, kept: int, turned_away: bool
) -> None:
    """The checker folds the constructors' events into the kinds they name,
    and counts as turned away only a busy or a refused fail."""
    ops = Operations(1, 0.0)
    ops.add(events.invoke({"buyer": 0, "pid": 9}, 1.0, {"t_start": 0.5, "seen": 3}))
    ops.add(events.completed(outcome, {"buyer": 0, "pid": 9}, 2.0, {"t_locked": 1.5}))
    assert ops.kinds[0] == kept
    assert ops.refused == int(turned_away)
    assert ops.errors == int(outcome.get("reason", "").startswith(events.ERROR_PREFIX))


def test_constructed_events_cross_the_pipe_whole() -> None:
    sent = [
        events.invoke({"buyer": 2, "pid": 5}, 1.0, {"t_start": 0.5, "seen": 4}),
        events.completed(events.sold(4), {"buyer": 2, "pid": 5}, 2.0, {"t_locked": 1.5}),
        events.locked(5),
        events.locked(5, buyer=2),
        events.take(1, 5, [2, 3], 2.5),
        events.spawned(5, buyer=2),
        events.spawned(6, worker=0),
        events.launched(),
        events.exited(0, 3.0, buyer=2),
        events.exited(-9, 3.0, worker=0),
    ]
    reader = FrameReader()
    assert reader.feed(b"".join(frame(encode(e)) for e in sent)) == sent
    assert [e["type"] for e in sent[-4:]] == list(events.LAUNCHER_KINDS) + ["exit"]


def test_outcomes_are_fresh_dicts() -> None:
    """A producer may add to the outcome it got (a release error's note):
    no constructor hands out a shared dict."""
    first = events.sold_out()
    first["reason"] += "!"
    assert events.sold_out()["reason"] == events.SOLD_OUT_REASON
    assert events.NO_FIELDS == {}


# -- every producer's outcome goes through the vocabulary -------------------


def _plan(store: Path, strategy: str = "flock") -> BuyerPlan:
    st.save(store, 3)
    return BuyerPlan(
        store=spec_of(store), strategy=get(strategy), seed=1, delays=Delays(), lock_timeout=1
    )


def _raising(where: str, exc: Exception) -> Callable[[BuyerSession, Any], int | None]:
    def buy(session: BuyerSession, lock: Any) -> int | None:
        session.search()
        if where == "before":
            raise exc
        with lock:
            session.read()
            raise exc

    return buy


@pytest.mark.parametrize(
    ("where", "exc", "kind", "reason"),
    [
        ("before", ValueError("no"), "fail", "error: no"),
        ("inside", ValueError("no"), "info", "error: no"),
        ("before", BUSY, "fail", "busy: "),
        ("inside", REFUSED, "fail", "refused: "),
    ],
)
def test_the_buyer_classifies_by_where_it_failed(
    store: Path, where: str, exc: Exception, kind: str, reason: str
) -> None:
    plan = _plan(store)
    read_end, write_end = os.pipe()
    try:
        session = BuyerSession(plan, 4, EventWriter(write_end), (0.0, 0.0))
        lock = WatchedLock(plan, session.store, None)
        outcome = outcome_of(_raising(where, exc), session, lock)
        session.report(outcome, lock.t_locked)
        lock.close()
        session.store.close()
        got: list[Any] = FrameReader().feed(os.read(read_end, 1 << 16))
    finally:
        os.close(read_end)
        os.close(write_end)
    assert [e["type"] for e in got] == ["invoke", kind]
    assert got[1]["reason"].startswith(reason) and got[1]["buyer"] == 4
    assert ("t_locked" in got[1]) == (where == "inside")
    assert st.load(store) == 3


def test_a_buyer_stopped_outside_its_purchase_is_classified_alike() -> None:
    assert failure(None, 3, ValueError("x"))["type"] == "fail"
    began: Any = SimpleNamespace(changing=True, t_taken=None)
    event = failure(began, 3, ValueError("x"))
    assert (event["type"], event["reason"], event["buyer"]) == ("info", "error: x", 3)


def test_the_users_buyer_is_classified_by_the_same_rule(store: Path) -> None:
    plan = _plan(store)
    sink = os.open(os.devnull, os.O_WRONLY)
    try:
        session = BuyerSession(plan, 0, EventWriter(sink), (0.0, 0.0))
        lock = WatchedLock(plan, session.store, None)

        def busy(handle: Any) -> None:
            raise BUSY

        said = [
            user_outcome(f, session, lock, None)
            for f in (busy, lambda h: None, lambda h: 3, lambda h: "3")
        ]
        session.store.close()
    finally:
        os.close(sink)
    assert said[0] == {"type": "info", "reason": f"error: LockTimeout: {BUSY}"}
    assert said[1] == events.sold_out()
    assert said[2] == events.sold(3)
    assert said[3]["type"] == "info" and said[3]["reason"].startswith(events.ERROR_PREFIX)


class _Lock:
    def __init__(self, release: Exception | None = None) -> None:
        self.released = self.aborted = False
        self.release_error = release

    def acquire(self) -> None:
        pass

    def release(self) -> None:
        self.released = True
        if self.release_error is not None:
            raise self.release_error

    def abort(self) -> None:
        self.aborted = True


class _Store:
    def __init__(self, count: int | Exception) -> None:
        self.count = count

    def load(self) -> int:
        if isinstance(self.count, Exception):
            raise self.count
        return self.count

    def save(self, count: int) -> None:
        self.count = count


def _clerk(count: int | Exception, lock: _Lock) -> Any:
    sale = SimpleNamespace(strategy=get("flock"), delays=Delays(0, 0), lock_timeout=1)
    return SimpleNamespace(
        takes=False, store=_Store(count), lock=lock, sale=sale, retries=0, wait=lambda: None
    )


@pytest.mark.parametrize(
    ("count", "release", "said"),
    [
        (1, None, [events.sold(1), events.sold_out()]),
        (ValueError("unreadable"), None, [events.unknown_error("unreadable")] * 2),
        (BUSY, None, [events.busy(str(BUSY))] * 2),
        (2, REFUSED, [events.refused(str(REFUSED))] * 2),
        (2, WriteUnknown("lost"), [events.unknown_error("lost")] * 2),
        (2, RuntimeError("not let go"), [events.sold(2), events.sold(1)]),
    ],
    ids=["sold", "error", "busy", "refused", "commit unknown", "release failed"],
)
def test_the_clerk_classifies_by_the_same_rule(
    count: int | Exception, release: Exception | None, said: list[Any]
) -> None:
    lock = _Lock(release)
    assert sell_guarded(_clerk(count, lock), [10, 11], None) == said
    assert lock.aborted == isinstance(count, Exception)


def test_the_command_buyer_judges_an_exit_in_the_same_words() -> None:
    command = CommandPlan("buy.sh", 22, 5.0, False, {})
    plan: Any = SimpleNamespace(command=command)

    def run(
        out: bytes = b"", err: bytes = b"", killed: bool = False, timed_out: bool = False
    ) -> Any:
        return SimpleNamespace(out=out, err=err, killed=killed, timed_out=timed_out)

    assert judge(run(b"7\n"), 0, plan) == events.sold(7)
    assert judge(run(b"A-7\n"), 0, plan) == events.sold_ticket("A-7")
    assert judge(run(), 22, plan) == events.sold_out()
    assert judge(run(err=b"boom\n"), 3, plan) == events.unknown_error("exit 3: boom")
    assert judge(run(), 0, plan)["reason"].startswith(events.ERROR_PREFIX)
    assert judge(run(killed=True), 0, plan) == events.killed_by_chaos()
    timed_out = judge(run(timed_out=True), 0, plan)
    assert timed_out["reason"].startswith(events.TIMEOUT_PREFIX)


# -- nobody else writes the vocabulary by hand ------------------------------

SRC = Path(events.__file__).resolve().parent.parent
#: Every kind of line or message (the ``type`` field).
EVENT_KINDS = {*events.OPERATION_KINDS, *events.LAUNCHER_KINDS, "locked", "take", "run", "end"}
#: The words that open a reason the checks read.
REASON_WORDS = (
    events.SOLD_OUT_REASON,
    f"{events.BUSY_PREFIX}: ",
    events.REFUSED_PREFIX,
    events.ERROR_PREFIX,
    events.TIMEOUT_PREFIX,
    events.NEVER_STARTED,
    events.NO_OUTCOME,
    events.UNSOLD,
    events.ABANDONED,
    events.KILLED_BY_CHAOS,
    events.LOCK_RELEASE_FAILED,
)
#: Text that reads like a reason but is none: (module, text).
NOT_REASONS = {
    # a Redis server's refusal, in a StoreError's words (an exception, not an outcome)
    ("stores/redis.py", "refused: "),
}


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _hand_written(source: str, where: str) -> list[str]:
    """Events and reasons that ``source`` (the module ``where``) writes by hand."""
    tree = ast.parse(source)
    docs = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if (
                    isinstance(key, ast.Constant)
                    and key.value == "type"
                    and isinstance(value, ast.Constant)
                    and value.value in EVENT_KINDS
                ):
                    found.append(f"{where}:{node.lineno}: an event built by hand")
        elif isinstance(node, ast.Call):
            if (
                any(k.arg == "type" for k in node.keywords)
                and getattr(node.func, "id", "") == "dict"
            ):
                found.append(f"{where}:{node.lineno}: an event built by hand")
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docs
            and node.value.startswith(REASON_WORDS)
            and (where, node.value) not in NOT_REASONS
        ):
            found.append(f"{where}:{node.lineno}: the reason {node.value!r} written by hand")
    return sorted(found)


def test_no_module_but_the_vocabulary_writes_an_event_or_a_reason_by_hand() -> None:
    vocabulary = Path(events.__file__).resolve()
    modules = [p for p in sorted(SRC.rglob("*.py")) if p != vocabulary]
    assert len(modules) > 50
    found = [
        line for p in modules for line in _hand_written(p.read_text(), str(p.relative_to(SRC)))
    ]
    assert found == []


def test_the_hand_written_check_sees_what_it_looks_for() -> None:
    source = (
        "def f(exc):\n"
        '    """sold out: a docstring may say so."""\n'
        '    return {"type": "fail", "reason": f"busy: {exc}"}\n'
        'SOLD = "sold out"\n'
        'LOCKED = dict(type="locked", pid=1)\n'
    )
    assert [line.split(": ", 1)[1] for line in _hand_written(source, "m.py")] == [
        "an event built by hand",
        "the reason 'busy: ' written by hand",
        "the reason 'sold out' written by hand",
        "an event built by hand",
    ]
