"""The parent's handle on the launcher, the lean process that forks the buyers.

See :mod:`tickets.engine.child.launcher` for why buyers are forked by a launcher
and what it reports. The handle starts it, takes its messages
(``spawned``, ``launched``, ``exit``) off the event stream,
and offers the same interface as :class:`tickets.engine.children.Children`:
pids, exit codes, signals, stop.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .child.launcher import orders_doc
from .child.own_python import own_env, own_python
from .child.plan import BuyerPlan
from .child.reaper import CLEANUP_DEADLINE

if TYPE_CHECKING:
    from typing_extensions import TypeIs

    from ..check.events import LauncherMessage, Message


class LauncherHandle:
    """Start the launcher, follow its reports, stop it and every buyer."""

    def __init__(
        self,
        plan: BuyerPlan,
        buyers: int,
        events_fd: int,
        gate_fd: int,
        groups: bool = False,
        workers: int = 0,
        concurrency: int = 1,
        method: str = "fork",
    ) -> None:
        #: each buyer leads a process group of its own (a command buyer's):
        #: signals go to the whole group
        self.groups = groups
        # The lifeline: the launcher reads EOF on it once this process is
        # gone, or has closed it to stop the sale now (see stop).
        lifeline_fd, self._lifeline = os.pipe()
        self._lifeline_open = True
        #: buyer (or worker) -> pid
        self.pids: dict[int, int] = {}
        self.codes: dict[int, int | None] = {}
        self.launched = False
        self.proc: subprocess.Popen[bytes] | None = None
        self.start_error: str | None = None
        try:
            # Its first act is to fork its warden (tickets.engine.child.warden.ward),
            # which this Popen is: should the launcher die first, what it
            # leaves goes there.
            self.proc = subprocess.Popen(
                own_python("tickets.engine.child.launcher"),
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                pass_fds=(events_fd, gate_fd, lifeline_fd),
                start_new_session=True,  # one killpg stops it and every buyer
                env=own_env(),
            )
        except OSError as exc:
            self.start_error = f"could not start the buyer launcher: {exc.strerror or exc}"
            return
        finally:
            os.close(lifeline_fd)  # the launcher's end only
        assert self.proc.stdin is not None
        orders = orders_doc(
            plan, buyers, events_fd, gate_fd, lifeline_fd, workers, concurrency, method
        )
        try:
            self.proc.stdin.write(json.dumps(orders).encode())
            self.proc.stdin.close()
        except BrokenPipeError:
            pass  # it exited before reading its orders; failed() reports how

    def take_message(self, ev: Message) -> TypeIs[LauncherMessage]:
        """Take the launcher's own messages; False for a buyer's event. They
        name a buyer, or a worker (``--workers``): the keys of pids and codes."""
        if ev["type"] == "spawned":
            key = ev["worker"] if "worker" in ev else ev["buyer"]
            self.pids[key] = ev["pid"]
            self.codes[key] = None
        elif ev["type"] == "exit":
            self.codes[ev["worker"] if "worker" in ev else ev["buyer"]] = ev["code"]
        elif ev["type"] == "launched":
            self.launched = True
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

    def gone(self) -> bool:
        """Has the launcher exited (or never started)?"""
        return self.proc is None or self.proc.poll() is not None

    def kill_everything(self) -> None:
        """What the launcher would have killed, should it or its warden be
        gone: the launcher, if alive, is told to kill what the sale left
        (its lifeline) and given the time to; then every buyer it told of,
        its session and its process group."""
        if self.proc is None:
            return
        self.close_lifeline()
        deadline = time.monotonic() + CLEANUP_DEADLINE
        while group_alive(self.proc.pid) and time.monotonic() < deadline:
            time.sleep(0.005)
        if self.groups:  # the command buyers' groups are not the launcher's
            self.signal(self.alive(), signal.SIGKILL)
        kill_session(self.proc.pid)  # and those it never told of
        self.kill_all()

    def kill_all(self) -> None:
        """SIGKILL the launcher's process group: every child it forked."""
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def exitcode(self, buyer: int) -> int | None:
        return self.codes.get(buyer)

    def alive(self) -> list[int]:
        return [b for b, code in self.codes.items() if code is None]

    def signal(self, buyers: Iterable[int], sig: int = signal.SIGKILL) -> None:
        for b in buyers:
            if self.codes.get(b) is None and b in self.pids:
                try:
                    if self.groups:
                        os.killpg(self.pids[b], sig)
                    else:
                        os.kill(self.pids[b], sig)
                except (ProcessLookupError, PermissionError):
                    pass

    def stop(self, deadline: float, kill_now: bool = False) -> list[int]:
        """Let the launcher reap its buyers and leave (until the deadline, or not
        at all if ``kill_now``); else close its lifeline: it kills and reaps
        every process of the sale, what escaped their groups too, and goes.
        Its session is killed after it, and whatever it left here (should it
        have died first) too.

        Returns the buyers not known to have exited: those killed here.
        """
        try:
            if self.proc is None:
                return self.alive()
            if not kill_now:
                self._wait(deadline - time.monotonic())
            alive = self.alive()
            # Exit 0: it reaped every buyer and killed what they left.
            clean = self.proc.poll() == 0
            self.close_lifeline()  # else the launcher's word to kill everything now
            if not clean:
                self._signal_launcher(signal.SIGCONT)  # a stopped one can hear it
                self._wait(CLEANUP_DEADLINE + 5.0)
                self.kill_everything()
            self.kill_all()  # without a subreaper (not Linux): what stayed in its group
            self._wait(5.0)
            return alive
        finally:
            self.close_lifeline()

    def _signal_launcher(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)  # the warden's group: the launcher's
            except (ProcessLookupError, PermissionError):
                pass

    def _wait(self, timeout: float) -> None:
        assert self.proc is not None
        try:
            self.proc.wait(max(0.0, timeout))
        except subprocess.TimeoutExpired:
            pass

    def close_lifeline(self) -> None:
        if self._lifeline_open:
            self._lifeline_open = False
            os.close(self._lifeline)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def kill_session(sid: int) -> None:
    """SIGKILL every process of session ``sid`` (the launcher's: every command
    it started is in it, unless it left with setsid), found in /proc."""
    from .child.reaper import each_process

    for pid, _, _, session in each_process():  # none without /proc: the named groups are killed
        if session == sid and pid != os.getpid():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
