"""A real PostgreSQL server on a Unix socket, in a folder of its own.

The binaries are ``$TICKETS_PG_BIN`` (a folder holding ``initdb`` and
``postgres``), else the PostgreSQL 16 that the ``pgserver`` package bundles
(a dev dependency, so ``make test`` installs it). Only its binaries are
used: this module runs ``initdb`` and ``postgres`` itself, so that the
server is a child of the process that started it, dies with it (Linux's
parent-death signal) and listens on no TCP port at all.

PostgreSQL refuses to run as root. Under root the server runs as
``nobody``: its data folder (which holds the socket) is made under the
temp folder and given to that user, and when the bundled binaries sit
under a folder that user cannot enter (a clone in ``mktemp -d``, mode
0700), they are copied to a temp folder of their own first (34 MB, a
fraction of a second; removed when the server stops).

The tests start one per session (tests/conftest.py); ``make postgres``
runs this file to start one for a person to try the docs' commands.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

#: How long initdb and the first connection may take.
START_TIMEOUT = 60.0
#: Buyers hold a connection each: a race of 300 buyers beside the tests' own.
MAX_CONNECTIONS = 400
#: The role that must give its password (see PostgresServer.password_url).
PASSWORD_ROLE = "tickets_pw"


def find_binaries() -> Path | None:
    explicit = os.environ.get("TICKETS_PG_BIN")
    if explicit:
        return Path(explicit)
    import importlib.util

    # Found, not imported: the package's own module starts servers its way.
    found = importlib.util.find_spec("pgserver")
    if found is None or found.origin is None:
        return None
    path = Path(found.origin).parent / "pginstall" / "bin"
    return path if (path / "postgres").exists() else None


def _parent_death_signal() -> Callable[[], None] | None:
    """What runs in the server's process before exec, after its user is
    changed (a change of user clears the setting): SIGINT, PostgreSQL's fast
    shutdown, when the parent dies. libc is found here, in the parent: the
    server's user may not be able to read the interpreter's modules."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    PR_SET_PDEATHSIG = 1

    def set_it() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGINT)

    return set_it


def _reachable_by_others(path: Path) -> bool:
    """Can a user who owns none of ``path``'s folders enter each of them?"""
    for folder in [path, *path.parents]:
        if not os.stat(folder).st_mode & stat.S_IXOTH:
            return False
    return True


class PostgresServer:
    """One postgres process on a socket in its data folder; :meth:`stop`
    stops it and removes everything it made."""

    def __init__(self, binaries: Path) -> None:
        self.made: list[Path] = []
        self.process: subprocess.Popen[bytes] | None = None
        self.user: int | None = None
        self.group: int | None = None
        self.groups: list[int] | None = None
        if os.geteuid() == 0:
            import pwd

            self.user = pwd.getpwnam("nobody").pw_uid
            self.group = pwd.getpwnam("nobody").pw_gid
            self.groups = []
            if not _reachable_by_others(binaries):
                copy = Path(tempfile.mkdtemp(prefix="tickets-pgbin-"))
                self.made.append(copy)
                shutil.copytree(binaries.parent, copy / "pg", symlinks=True)
                binaries = copy / "pg" / "bin"
                for folder in (copy, binaries.parent):
                    folder.chmod(0o755)
        self.binaries = binaries
        self.folder = Path(tempfile.mkdtemp(prefix="tickets-pg-"))
        self.made.append(self.folder)
        self.data = self.folder / "data"
        self.socket = self.folder  # the socket folder: short, whatever TMPDIR is
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        if self.user is not None and self.group is not None:
            os.chown(self.folder, self.user, self.group)
            self.folder.chmod(0o755)
        subprocess.run(
            [
                str(self.binaries / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
                "--no-instructions",
            ],
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=START_TIMEOUT,
            user=self.user,
            group=self.group,
            extra_groups=self.groups,
        )
        # One role logs in with a password (the tests of passwords); every
        # other, as the tests' own user postgres, is trusted on the socket.
        hba = self.data / "pg_hba.conf"
        hba.write_text(f"local all {PASSWORD_ROLE} scram-sha-256\n" + hba.read_text())
        log = os.open(self.folder / "server.log", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self.process = subprocess.Popen(
            [
                str(self.binaries / "postgres"),
                "-D",
                str(self.data),
                "-k",
                str(self.socket),
                "-h",
                "",
                "-c",
                f"max_connections={MAX_CONNECTIONS}",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "logging_collector=off",
                "-c",
                "log_min_messages=fatal",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            preexec_fn=_parent_death_signal(),
            user=self.user,
            group=self.group,
            extra_groups=self.groups,
        )
        os.close(log)  # the server keeps its own copy
        self._wait_ready()

    def url(self, table: str = "tickets_stock", key: str = "tickets", db: str = "postgres") -> str:
        """The store's URL: an empty host and the socket folder as ?host=."""
        return f"postgresql://postgres@/{db}?host={self.socket}&table={table}&key={key}"

    def password_url(self, password: str, table: str) -> str:
        """A store URL of the role that logs in with ``password``, which is
        made its password (and the role given the public schema)."""
        from urllib.parse import quote

        self.sql(
            f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{PASSWORD_ROLE}') "
            f"THEN CREATE ROLE {PASSWORD_ROLE} LOGIN; END IF; END $$"
        )
        self.sql(f"ALTER ROLE {PASSWORD_ROLE} PASSWORD '{password}'")
        self.sql(f"GRANT CREATE ON SCHEMA public TO {PASSWORD_ROLE}")
        secret = quote(password, safe="")
        return (
            f"postgresql://{PASSWORD_ROLE}:{secret}@/postgres?host={self.socket}"
            f"&table={table}&key=tickets"
        )

    def conninfo(self, db: str = "postgres") -> str:
        return f"host={self.socket} user=postgres dbname={db} connect_timeout=5"

    def connect(self, db: str = "postgres", **kwargs: object) -> object:
        import psycopg

        return psycopg.connect(self.conninfo(db), autocommit=True, **kwargs)  # type: ignore

    def sql(self, statement: str, *args: object, db: str = "postgres") -> list[tuple[object, ...]]:
        """Run one statement in autocommit; its rows (none for a command)."""
        with self.connect(db) as conn:  # type: ignore[attr-defined]
            cur = conn.execute(statement, args or None)
            return list(cur.fetchall()) if cur.description else []

    def _wait_ready(self) -> None:
        import psycopg

        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                log = (self.folder / "server.log").read_text(errors="replace")[-800:]
                raise RuntimeError(f"postgres exited with {self.process.returncode}: {log}")
            try:
                self.sql("SELECT 1")
                return
            except psycopg.OperationalError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not answer within {START_TIMEOUT}s")
            time.sleep(0.05)

    def kill(self) -> None:
        """Stop the server at once, as a crash would (its backends follow:
        they notice the postmaster gone)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(30)

    def stop(self) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)  # fast shutdown: clients are let go
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGQUIT)
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)
        for path in self.made:
            shutil.rmtree(path, ignore_errors=True)


def main() -> None:
    """``make postgres``: a server on a socket in a temp folder until Ctrl-C."""
    binaries = find_binaries()
    if binaries is None:
        sys.exit(
            "no PostgreSQL found: run `make test` once (it installs pgserver, which bundles "
            "one), or set TICKETS_PG_BIN to a folder holding initdb and postgres"
        )

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM, SIGHUP: stop the server as Ctrl-C does

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)
    server = PostgresServer(binaries)
    record = Path("var") / "postgres.folders"  # `make clean` removes what a killed one left
    record.parent.mkdir(exist_ok=True)
    record.write_text("".join(f"{path}\n" for path in server.made))
    url = server.url()
    print(f"PostgreSQL 16 on the socket in {server.socket}; try:", flush=True)
    print(f"  export TICKETS_DB='{url}'", flush=True)
    print("  tickets init -t 10 && tickets buy --lock for-update", flush=True)
    print(
        "  tickets race --strategies read-committed,repeatable-read,serializable,"
        "for-update,advisory,atomic --write-delay 20",
        flush=True,
    )
    print("Ctrl-C stops it (and removes its data).", flush=True)
    try:
        assert server.process is not None
        server.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
