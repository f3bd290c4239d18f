"""Command buyers (``tickets buy --exec CMD``), run by the launcher.

Each buyer is one run of the user's command, ``/bin/sh -c CMD``, started
with ``posix_spawn`` in a process group of its own, with the buyer's number,
the run's id and (when the sale is on the tool's store) the store's URL in
its environment, stdin from ``/dev/null``, and stdout and stderr in pipes the
launcher reads. No buyer process stands between: the launcher starts every
command once the gate opens, reads them all with one ``poll``, and reports
each buyer's ``invoke`` and outcome itself, with the command's pid.

How an exit is read: 0 with a ticket on the first line of stdout is a sale
(a whole number from 1 is a seat, the count it took; anything else, or
every ticket under ``--ticket-ids``, an id); the sold-out exit code
(``--sold-out-exit``, 22 by default: ``curl --fail`` on an HTTP error) is
"sold out"; anything else, a signal, or the buyer timeout is an unknown
outcome. The command's stderr goes to the log beside the history, never to
the terminal.

Nothing outlives the sale: when a command exits, whatever it left running in
its group is killed before it is reaped (its pid, the group's id, cannot be
reused until then); at its timeout the whole group is killed; and if the
parent dies, the launcher kills every group and then itself. What escapes
its group (``setsid``, a daemon's double fork) is still the launcher's: on
Linux the launcher is a child subreaper, so every orphan of a command
becomes its child, and once the sale is over it kills its children until
none is left.
"""

from __future__ import annotations

import os
import resource
import select
import signal
import time

from ...check.events import (
    classify,
    completed,
    exited,
    invoke,
    killed_by_chaos,
    launched,
    sold,
    sold_out,
    sold_ticket,
    spawned,
    timed_out,
    unknown_error,
)
from ...constants import MAX_COUNT, TYPE_CHECKING
from .own_python import caller_env
from .reaper import abandon, kill_group, parent_gone
from .user_buyer import append_log

if TYPE_CHECKING:
    from ...check.events import Completion, OkOutcome, Outcome, Who
    from .gate import FdGate
    from .pipe import Batcher
    from .plan import BuyerPlan

#: What is kept of a command's stdout (its first bytes: the ticket is its
#: first line) and of its stderr (its last bytes: where an error says what
#: went wrong, as a traceback's last line does).
KEEP_BYTES = 4096
#: The longest ticket taken from a first line; longer is not a ticket.
MAX_TICKET = 200
#: How often the launcher looks for exits, timeouts and its parent (seconds).
TICK = 0.005
#: What the shell's own exit codes mean.
EXIT_MEANINGS = {126: " (not executable)", 127: " (command not found)"}
#: Signals a command gets with their default action, whatever the launcher
#: set (Python ignores SIGPIPE; an ignored signal stays ignored across exec).
DEFAULT_SIGNALS = (
    signal.SIGPIPE,
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGXFSZ,
)


class Running:
    """One command buyer under way."""

    __slots__ = (
        "buyer",
        "pid",
        "started",
        "deadline",
        "out",
        "err",
        "fds",
        "timed_out",
        "doomed_at",
        "killed",
    )

    def __init__(self, buyer: int, pid: int, started: float, deadline: float) -> None:
        self.buyer = buyer
        self.pid = pid
        self.started = started
        self.deadline = deadline
        self.out = bytearray()
        self.err = bytearray()
        #: read end -> which buffer it fills
        self.fds: dict[int, bytearray] = {}
        self.timed_out = False
        #: a chaos run kills its group at this time, if it still runs
        self.doomed_at: float | None = None
        self.killed = False


def shown(text: str) -> str:
    """Text with every unprintable character as ``?`` (a ticket, a reason)."""
    return text if text.isprintable() else "".join(c if c.isprintable() else "?" for c in text)


def first_line(data: bytes | bytearray) -> str:
    return shown(data.decode("utf-8", "replace").partition("\n")[0].strip())


def last_line(data: bytes | bytearray) -> str:
    """The last line with something on it: a traceback's is the error."""
    lines = [line.strip() for line in data.decode("utf-8", "replace").splitlines()]
    return shown(next((line for line in reversed(lines) if line), ""))


def ticket_of(line: str, ids: bool) -> OkOutcome:
    """The outcome of a sale that printed ``line``."""
    if not ids and line.isdigit() and line.isascii() and line[0] != "0" and len(line) <= 10:
        seat = int(line)
        if seat <= MAX_COUNT:
            return sold(seat)
    return sold_ticket(line)


def judge(run: Running, code: int, plan: BuyerPlan) -> Outcome:
    """What a command's exit says about its sale."""
    command = plan.command
    assert command is not None
    if run.killed:
        return killed_by_chaos()
    if run.timed_out:
        return timed_out(f"still running after {command.timeout:g}s; killed")
    if code == 0:
        line = first_line(run.out)
        if not line:
            return unknown_error("exit 0 without a ticket on stdout")
        if len(line) > MAX_TICKET:
            return unknown_error(
                f"exit 0 with a first line of {len(line)} characters, "
                f"not a ticket (at most {MAX_TICKET})"
            )
        return ticket_of(line, command.ids)
    if code == command.sold_out:
        return sold_out()
    if code < 0:
        what = f"killed by signal {-code}"
    else:
        what = f"exit {code}" + EXIT_MEANINGS.get(code, "")
    said = last_line(run.err)
    return unknown_error(what + (f": {said}" if said else ""))


def spawn(plan: BuyerPlan, buyer: int) -> Running:
    """Start one command buyer; its pipes are non-blocking and close on exec
    in the launcher (no other command inherits them)."""
    command = plan.command
    assert command is not None
    env = {**caller_env(os.environ), **command.env, "TICKETS_BUYER": str(buyer)}
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        started = time.monotonic()
        pid = os.posix_spawn(
            "/bin/sh",
            ["sh", "-c", command.command],
            env,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, out_w, 1),
                (os.POSIX_SPAWN_DUP2, err_w, 2),
            ],
            setpgroup=0,  # a group of its own: killed whole at its timeout
            setsigdef=DEFAULT_SIGNALS,
            setsigmask=(),
        )
    finally:
        os.close(out_w)
        os.close(err_w)
    run = Running(buyer, pid, started, started + command.timeout)
    for fd, buffer in ((out_r, run.out), (err_r, run.err)):
        os.set_blocking(fd, False)
        run.fds[fd] = buffer
    return run


def read_some(fd: int, buffer: bytearray, tail: bool = False) -> bool:
    """Read what is there, keeping at most KEEP_BYTES: the first ones, or
    with ``tail`` the last ones; False at EOF."""
    while True:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return True
        except OSError:
            return False
        if not data:
            return False
        if tail:
            buffer += data[-KEEP_BYTES:]
            del buffer[:-KEEP_BYTES]
        elif len(buffer) < KEEP_BYTES:
            buffer += data[: KEEP_BYTES - len(buffer)]


class Commands:
    """Every command buyer of a run, started, read, timed and reaped."""

    def __init__(self, plan: BuyerPlan, out: Batcher, lifeline: int) -> None:
        self.plan = plan
        self.out = out
        self.lifeline = lifeline
        self.running: dict[int, Running] = {}  #: by pid
        self.by_fd: dict[int, Running] = {}
        self.poller = select.poll()
        assert plan.command is not None
        self.kills = dict(plan.command.kills)

    def start(self, buyer: int) -> None:
        try:
            run = spawn(self.plan, buyer)
        except OSError as exc:  # no process to run it: it never began
            t = time.monotonic()
            why = f"could not start the command: {exc.strerror}"
            self.out.add(completed(classify(exc, False, why), {"buyer": buyer}, t))
            self.out.add(exited(1, t, buyer=buyer))
            return
        if buyer in self.kills:
            run.doomed_at = run.started + self.kills[buyer]
        self.running[run.pid] = run
        for fd in run.fds:
            self.by_fd[fd] = run
            self.poller.register(fd, select.POLLIN)
        self.out.add(spawned(run.pid, buyer=buyer))
        self.out.add(
            invoke({"buyer": buyer, "pid": run.pid}, run.started, {"t_start": run.started})
        )

    def watch(self) -> None:
        """Until every command is done: read, time out, reap."""
        while self.running:
            if parent_gone(self.lifeline):
                self.kill_all()
                abandon()
            for fd, _ in self.poller.poll(TICK * 1000):
                run = self.by_fd.get(fd)
                if run is not None and not read_some(fd, run.fds[fd], run.fds[fd] is run.err):
                    self.forget(fd)
            now = time.monotonic()
            for run in self.running.values():
                if not run.timed_out and now > run.deadline:
                    run.timed_out = True
                    kill_group(run.pid)
                elif run.doomed_at is not None and not run.killed and now > run.doomed_at:
                    run.killed = True  # chaos: as from outside, mid-command
                    kill_group(run.pid)
            self.reap()
            self.out.flush()

    def reap(self) -> None:
        """Every command that has exited: kill what it left in its group,
        take the rest of its output, report its outcome."""
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None or info.si_pid == 0:
                return
            pid = info.si_pid
            kill_group(pid)  # leftovers; the unreaped leader keeps the group's id ours
            _, status = os.waitpid(pid, 0)
            run = self.running.pop(pid, None)
            if run is not None:
                self.finish(run, os.waitstatus_to_exitcode(status))

    def finish(self, run: Running, code: int) -> None:
        for fd in list(run.fds):
            read_some(fd, run.fds[fd], run.fds[fd] is run.err)
            self.forget(fd)
        outcome = judge(run, code, self.plan)
        t = time.monotonic()
        # The whole command is its read-modify-write, as far as anyone can see.
        who: Who = {"buyer": run.buyer, "pid": run.pid}
        event = completed(outcome, who, t, {"t_start": run.started, "t_locked": run.started})
        self.out.add(event)
        self.out.add(exited(code, t, buyer=run.buyer))
        if self.plan.log is not None and (run.err or outcome["type"] == "info"):
            write_log(self.plan.log, run, event)

    def forget(self, fd: int) -> None:
        run = self.by_fd.pop(fd, None)
        if run is not None:
            self.poller.unregister(fd)
            os.close(fd)
            run.fds.pop(fd, None)

    def kill_all(self) -> None:
        for pid in self.running:
            kill_group(pid)


def write_log(log: str, run: Running, outcome: Completion) -> None:
    """The command's stderr (what was kept of it), in one append."""
    said = outcome.get("reason") or f"sold {outcome.get('seat', outcome.get('ticket'))}"
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    text = f"--- buyer {run.buyer} (pid {run.pid}) at {stamp}: {said}\n"
    data = text.encode(errors="replace") + bytes(run.err)
    if run.err and not run.err.endswith(b"\n"):
        data += b"\n"
    append_log(log, data)


def fds_needed(buyers: int) -> int:
    """Descriptors the launcher needs: two pipes a command, and some to spare."""
    return 2 * buyers + 64


def run_commands(plan: BuyerPlan, buyers: int, out: Batcher, gate: FdGate, lifeline: int) -> None:
    """The launcher's work under ``--exec``: every buyer a command."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = fds_needed(buyers)
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    out.add(launched())
    out.flush()
    if not gate.poll(plan.gate_timeout) or parent_gone(lifeline):
        return  # never let through: the parent records none of them as started
    commands = Commands(plan, out, lifeline)
    try:
        for buyer in range(buyers):
            if parent_gone(lifeline):
                commands.kill_all()
                abandon()
            commands.start(buyer)
            if buyer % 64 == 63:
                out.flush()
                commands.reap()
        out.flush()
        commands.watch()
    finally:
        commands.kill_all()
        out.flush()
