"""Buyers forked by a lean helper process, the launcher.

Forking costs in proportion to the memory of the process that forks, and a
forked child pays again for every page it touches. The command-line parent
holds click, the history writer and the run's bookkeeping; a buyer needs
none of them. So for the fork start method the parent starts one launcher,
a fresh interpreter that imports only the buyer's own modules, and the
launcher forks the buyers. Measured on a 2-core machine: 1,000 forks take
0.4 s from the launcher against 0.85 s from the parent, and a buyer costs
~1.9 ms of CPU against ~4 ms.

The launcher tells the parent each buyer's pid (``spawned``), that all are
started (``launched``), and each buyer's exit code once it has reaped it
(``exit``), over the run's event pipe. It runs in a session of its own, so
the parent can kill it and every buyer left with one ``killpg``. Under the
``process`` strategy the run's lock lives here, so the launcher also tries
the lock now and then and says when it found it free (``lockfree``), which
is how the parent tells a lock left held by a dead buyer from a busy one.

Run as ``python -m tickets.launcher`` with the plan as JSON on stdin.
"""

from __future__ import annotations

import json
import os
import select
import signal
import struct
import sys
import time

from .buyer import BuyerPlan, Delays, run_buyer, warm_up
from .channel import Batcher
from .strategies import install_alarm

# What this process imports, every buyer's fork and exit pays for: no
# typing, dataclasses or pathlib here or in the modules above (a test
# keeps it so; see tickets.record).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: Kinds of message only the launcher sends; the parent keeps them out of the history.
LAUNCHER_KINDS = ("spawned", "launched", "exit", "lockfree")
#: How often the launcher reaps, flushes and (process strategy) tries the lock.
TICK = 0.005
LOCKFREE_EVERY = 0.1


class FdWriter:
    """The child end of the event pipe as a raw descriptor.

    Frames messages the way ``multiprocessing.connection.Connection`` does
    (a 4-byte big-endian length), in one ``write`` each: messages stay under
    ``PIPE_BUF``, which makes every write atomic.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def send_bytes(self, data: bytes) -> None:
        os.write(self.fd, struct.pack("!i", len(data)) + data)


class FdGate:
    """The start gate's read end: readable (EOF) once the parent closes the write end."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def poll(self, timeout: float) -> bool:
        return bool(select.select([self.fd], [], [], timeout)[0])


def _tokens(strategy: str) -> Any:
    if strategy not in ("process", "per-buyer"):
        while True:
            yield None
    import multiprocessing  # only these two strategies need it here

    ctx = multiprocessing.get_context("fork")
    if strategy == "process":
        shared = ctx.Lock()
        while True:
            yield shared
    while True:
        yield ctx.Lock()  # the tutorial's bug: a lock per buyer


def main() -> None:
    doc = json.loads(sys.stdin.buffer.read())
    sys.stdin.close()
    events = FdWriter(doc["events_fd"])
    gate = FdGate(doc["gate_fd"])
    plan = BuyerPlan(
        store=doc["store"],  # a plain string: no pathlib in the launcher
        strategy=doc["strategy"],
        seed=doc["seed"],
        delays=Delays(*doc["delays"]),
        lock_timeout=doc["lock_timeout"],
        fsync=doc["fsync"],
        gate_timeout=doc["gate_timeout"],
        kill_at=tuple((b, p) for b, p in doc["kill_at"]),
    )
    out = Batcher(events)
    if plan.strategy == "file":
        install_alarm()  # every buyer inherits its lock timer's handler
    sink = os.open(os.devnull, os.O_RDWR)
    warm_up(plan, FdWriter(sink), FdGate(sink))  # see buyer.warm_up
    os.close(sink)
    tokens = _tokens(plan.strategy)
    shared = next(tokens)
    children: dict[int, int] = {}
    for buyer in range(doc["buyers"]):
        token = shared if buyer == 0 else next(tokens)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the buyer
            code = 1
            try:
                run_buyer(plan, buyer, token, events, gate, silence=False)
                code = 0
            finally:
                os._exit(code)
        children[pid] = buyer
        out.add({"type": "spawned", "buyer": buyer, "pid": pid})
    out.add({"type": "launched"})
    out.flush()
    last_free = 0.0
    while children:
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid:
            if pid in children:
                buyer = children.pop(pid)
                code = os.waitstatus_to_exitcode(status)
                out.add({"type": "exit", "buyer": buyer, "code": code, "t": time.monotonic()})
            continue
        out.flush()
        now = time.monotonic()
        if (
            plan.strategy == "process"
            and now - last_free > LOCKFREE_EVERY
            and shared.acquire(False)
        ):
            shared.release()
            last_free = now
            out.add({"type": "lockfree", "t": now})
        time.sleep(TICK)
    out.flush()


class Launcher:
    """The parent's side: start the launcher, follow its reports, stop it."""

    def __init__(self, plan: BuyerPlan, buyers: int, events_fd: int, gate_fd: int) -> None:
        import subprocess  # the parent's side only: it imports threading (see buyer.py)

        self.pids: dict[int, int] = {}
        self.codes: dict[int, int | None] = {}
        self.launched = False
        self.lock_free_at = 0.0
        doc = {
            "events_fd": events_fd,
            "gate_fd": gate_fd,
            "buyers": buyers,
            "store": str(plan.store),
            "strategy": plan.strategy,
            "seed": plan.seed,
            "delays": [plan.delays.search, plan.delays.write],
            "lock_timeout": plan.lock_timeout,
            "fsync": plan.fsync,
            "gate_timeout": plan.gate_timeout,
            "kill_at": [list(k) for k in plan.kill_at],
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.start_error: str | None = None
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tickets.launcher"],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                pass_fds=(events_fd, gate_fd),
                start_new_session=True,  # one killpg stops it and every buyer
                env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
            )
        except OSError as exc:
            self.start_error = f"could not start the buyer launcher: {exc.strerror or exc}"
            return
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(doc).encode())
            self.proc.stdin.close()
        except BrokenPipeError:
            # It exited before reading its orders; failed() reports how.
            pass

    def record(self, ev: dict[str, Any]) -> bool:
        """Take the launcher's own messages; False for a buyer's event."""
        kind = ev.get("type")
        if kind == "spawned":
            self.pids[ev["buyer"]] = ev["pid"]
            self.codes[ev["buyer"]] = None
        elif kind == "exit":
            self.codes[ev["buyer"]] = ev["code"]
        elif kind == "launched":
            self.launched = True
        elif kind == "lockfree":
            # The launcher's clock: comparable with the death times it reports.
            self.lock_free_at = max(self.lock_free_at, ev["t"])
        else:
            return False
        return True

    def failed(self) -> str | None:
        """Why the launcher is gone before it started every buyer, if it is."""
        if self.proc is None:
            return self.start_error
        code = self.proc.poll()
        if code is None or self.launched:
            return None
        return f"the buyer launcher exited with code {code} before starting every buyer"

    def exitcode(self, buyer: int) -> int | None:
        return self.codes.get(buyer)

    def alive(self) -> list[int]:
        return [b for b, code in self.codes.items() if code is None]

    def signal(self, buyers: Any, sig: int = signal.SIGKILL) -> None:
        for b in buyers:
            if self.codes.get(b) is None and b in self.pids:
                try:
                    os.kill(self.pids[b], sig)
                except ProcessLookupError:
                    pass

    def stop(self, deadline: float, kill_now: bool = False) -> list[int]:
        """Let the launcher reap its buyers and leave (until the deadline, or not
        at all if ``kill_now``), then kill its whole session.

        Returns the buyers not known to have exited: those killed here.
        """
        import subprocess

        if self.proc is None:
            return self.alive()
        if not kill_now:
            try:
                self.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        alive = self.alive()
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(5.0)
        except subprocess.TimeoutExpired:  # pragma: no cover - a process that ignores SIGKILL
            pass
        return alive


if __name__ == "__main__":
    main()
