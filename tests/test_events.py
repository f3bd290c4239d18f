"""The children -> parent event pipe: framing, encoding, atomic sizes."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
from pathlib import Path

import pytest

from helpers import spec_of
from tickets.engine.child.buyer import warm_up
from tickets.engine.child.launcher import FdGate
from tickets.engine.child.pipe import MAX_EVENT_BYTES, MAX_REASON, EventWriter, encode, frame
from tickets.engine.child.plan import BuyerPlan, Delays
from tickets.engine.event_pipe import EventPipe
from tickets.locking.strategies import get
from tickets.stores import json_file as st

EVENTS = [
    {"type": "invoke", "buyer": 3, "pid": 77, "t": 12.345678901234, "t_start": 1e-7, "seen": None},
    {"type": "ok", "buyer": 0, "pid": 1, "seat": 10, "t": 3.0, "t_locked": 2.5, "seen": 10},
    {"type": "fail", "buyer": 9, "pid": 2, "reason": 'é "quoted"\n\ttab \u2603', "t": 1.0},
    {"type": "info", "buyer": 1, "pid": 3, "reason": "", "t": -0.0, "nested": {"a": [1, 2.5]}},
]


@pytest.mark.parametrize("event", EVENTS, ids=[e["type"] for e in EVENTS])
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
        EventWriter(-1).send_all([{"type": "fail", "reason": "z" * 290}] * 20)


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
        got: list[dict[str, object]] = []
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
