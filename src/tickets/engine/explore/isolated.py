"""The exploration in a process of its own, under a warden.

The explorer runs the buyers' code in its own process (in greenlets), so
that code must never run in the parent: a print would land in the
parent's ``--json`` document, an ``os._exit`` would end the command with
nothing said, a ``fork`` would leave processes behind, a thread that loops
would outlive the time limit. So the parent forks a child that wards
itself (:func:`tickets.engine.child.warden.ward`: a subreaper that kills
everything left when its worker ends, or at once when the parent's
lifeline closes); the worker sends stdout and stderr to /dev/null, explores,
and sends its :class:`~tickets.engine.explore.explorer.Exploration` (or
the error it stopped on) back over a pipe. The parent waits with a
deadline, and on a signal, a deadline or the worker's death kills the
whole group and removes the scratch stores itself.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import shutil
import signal
import tempfile
import time
from dataclasses import replace
from typing import TYPE_CHECKING, TypeVar

from ...errors import StoreError
from .. import interrupts
from ..child.buyer import quiet
from ..child.reaper import kill_group

if TYPE_CHECKING:
    from collections.abc import Callable

    from .explorer import ExploreConfig

T = TypeVar("T")

#: The most a result may weigh (a counterexample of a few buyers is small).
MAX_RESULT = 64 * 1024 * 1024


def ExplorerDied(what: str) -> StoreError:  # noqa: N802 - raised as an error class is
    """The exploration's process ended without its answer (exit 3)."""
    return StoreError("tickets explore", what)


def scratch_root(config: ExploreConfig) -> str:
    """Where every scratch store of this exploration goes (not made yet):
    beside a file store (so a store on tmpfs is explored on tmpfs), else in
    $TMPDIR."""
    import stat

    spec = config.store
    where = None
    if not spec.on_server:
        where = os.path.dirname(os.path.abspath(str(spec.path)))
        try:
            mode = os.stat(str(spec.path)).st_mode
        except OSError:
            mode = None  # no store there yet: explore needs none
        if mode is not None and not stat.S_ISREG(mode):
            raise StoreError(spec.label, "is not a regular file", "give --db a store file")
    # Probed here (a one-line error before anything starts); made by the
    # warden, which alone outlives a parent killed outright and removes it.
    try:
        probe = tempfile.mkdtemp(prefix=".tickets-explore-", dir=where)
        os.rmdir(probe)
    except OSError as exc:
        raise StoreError(
            where or tempfile.gettempdir(),
            f"cannot hold the explorer's scratch store ({exc.strerror})",
            "give --db a store in a writable folder",
        ) from None
    return probe


def run_isolated(config: ExploreConfig, work: Callable[[ExploreConfig], T], limit: float) -> T:
    """``work(config)`` in a warded child; its result, or what it raised.
    ``limit``: the most it may take, in seconds."""
    root: str | None = None
    pid = 0
    fds: list[int] = []
    try:
        with interrupts.shielded:  # made whole, or not at all: a signal waits until then
            root = scratch_root(config)
            config = replace(config, scratch=root, token=os.urandom(6).hex())
            result_r, result_w = os.pipe()
            life_r, life_w = os.pipe()
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child's side, seen through its pipe
                os.close(result_r)
                os.close(life_w)
                _child(config, work, result_w, life_r)
            os.close(result_w)
            os.close(life_r)
            fds = [result_r, life_w]
            with contextlib.suppress(OSError):
                os.setpgid(pid, pid)  # as the child does: whichever comes first
        data = _read(result_r, time.monotonic() + limit)
    finally:  # a signal, a deadline, an answer: the child's group goes, and its scratch
        for fd in fds:
            os.close(fd)  # the lifeline's end: the warden kills whatever is left
        if pid:
            _end(pid)
        if root is not None:
            _clean(config, root)
    if not data:
        raise ExplorerDied(
            "the exploration's process ended without an answer: the buyer code ended it "
            "(os._exit, a signal, the memory it took)"
        )
    kind, value = pickle.loads(data)
    if kind == "error":
        raise value
    return value  # type: ignore[no-any-return]


def _child(
    config: ExploreConfig, work: Callable[[ExploreConfig], object], out: int, life: int
) -> None:  # pragma: no cover
    try:
        os.setpgid(0, 0)  # a group the parent can kill whole
        _ward(config, life)  # from here on: the worker; its parent is its warden
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        quiet()
        try:
            answer: tuple[str, object] = ("ok", work(config))
        except BaseException as exc:  # noqa: BLE001 - every error goes back to the parent
            answer = ("error", exc)
        try:
            data = pickle.dumps(answer)
        except Exception as exc:  # an error that cannot be pickled: in words
            data = pickle.dumps(("error", ExplorerDied(f"{type(exc).__name__}: {exc}")))
        with os.fdopen(out, "wb") as f:
            f.write(data)
    finally:
        os._exit(0)


def _ward(config: ExploreConfig, life: int) -> None:  # pragma: no cover - seen from outside
    """Fork: the child returns to explore; this process becomes its warden
    (see tickets.engine.child.warden), which also removes the scratch
    stores once everything is dead, so that a parent killed outright
    (SIGKILL) leaves nothing behind."""
    from ..child.reaper import CLEANUP_DEADLINE, become_subreaper, kill_descendants, parent_gone

    become_subreaper()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)  # a buyer's kill 0 cannot stop its warden
    with contextlib.suppress(OSError):  # (failing, the worker says why in one line)
        os.mkdir(str(config.scratch), 0o700)
    pid = os.fork()
    if pid == 0:
        return
    while not parent_gone(life):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.005)
    kill_descendants(time.monotonic() + CLEANUP_DEADLINE)
    if parent_gone(life):  # the parent died or gave up: nobody else will clean up
        _clean(config, str(config.scratch))
    os._exit(0)


def _read(fd: int, deadline: float) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise ExplorerDied(
                "the exploration did not end within its time limit and grace: a buyer's code "
                "loops, sleeps or waits on something of its own (a threading lock another buyer "
                "holds): the explorer runs the buyers one at a time, in one thread"
            )
        ready, _, _ = select.select([fd], [], [], min(left, 1.0))
        if not ready:
            continue
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_RESULT:
            raise ExplorerDied("the exploration's answer was too large")


def _end(pid: int) -> None:
    """The group killed (after the lifeline told the warden) and the child reaped."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        kill_group(pid)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if done:
            return
        time.sleep(0.005)


def _clean(config: ExploreConfig, root: str) -> None:
    """The scratch stores, whatever became of the child: the folder, and a
    Redis store's scratch keys."""
    shutil.rmtree(root, ignore_errors=True)
    if config.store.kind == "postgres":
        from ...stores.pg_url import SCRATCH_TABLE
        from ...stores.postgres import drop_scratch_tables

        schema = str(config.store.table).rpartition(".")[0]
        name = f"{SCRATCH_TABLE}{config.token}"
        drop_scratch_tables(config.store, f"{schema}.{name}" if schema else name, prefix=True)
        return
    if config.store.kind != "redis":
        return
    try:
        from ...stores import open_store

        store = open_store(config.store, 1.0)
        client = store.raw_handle()
        pattern = f"{config.store.key}:explore:{config.token}*"
        for key in list(client.scan_iter(match=pattern, count=1000))[:100_000]:  # type: ignore[union-attr]
            client.delete(key)  # type: ignore[union-attr]
        store.close()
    except Exception:
        pass
