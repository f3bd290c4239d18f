"""Simulated hosts on one machine: network namespaces, virtual links, a Redis
server of their own, link delay and jitter, and partitions.

Root only (``ip netns`` needs it). The layout, for N hosts::

    tkt-srv  (the Redis server)          tkt-h1 ... tkt-hN  (the buyer hosts)
      10.213.i.1  <--- veth pair --->     10.213.i.2

Each host reaches the server only through its own link, on a private subnet
that exists only between these namespaces; nothing leaves them. The
kernel's ``netem`` queueing discipline is not available everywhere (not on
this kind of machine), so the delay is a userspace relay in the server's
namespace: one listener per link (``10.213.i.1:6380``) that forwards to the
server, holding every chunk each way for ``delay ± jitter`` ms, in order.
A partition takes a host's end of its link down (``ip link set … down``):
its packets go nowhere until the link comes back up.

Everything is torn down afterwards, after a failure too; whatever an earlier
run left with the same prefix is torn down first. ``python tests/hosts.py
sale`` (``make hosts-sale``) runs a named sale across the hosts and the
merged check; ``up``/``down`` (``make hosts``, ``make hosts-down``) leave
them for a person to try.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from redis_server import find_binary  # noqa: E402

PREFIX = "tkt"
SUBNET = "10.213"
REDIS_PORT = 6379
RELAY_PORT = 6380
#: How long the server and the relays may take to start.
START_TIMEOUT = 20.0


class NotRoot(RuntimeError):
    """Namespaces need root."""


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


def leftovers(prefix: str = PREFIX) -> dict[str, list[str]]:
    """Namespaces and links of this prefix that exist now."""
    spaces = [
        line.split()[0]
        for line in ip("netns", "list", check=False).stdout.splitlines()
        if line.split() and line.split()[0].startswith(f"{prefix}-")
    ]
    links = [
        line.split(":")[1].strip().split("@")[0]
        for line in ip("-o", "link", "show", check=False).stdout.splitlines()
        if f" {prefix}-" in line
    ]
    return {"namespaces": spaces, "links": links}


def tear_down(prefix: str = PREFIX) -> None:
    """Kill every process in this prefix's namespaces, then remove them
    (their links go with them)."""
    for space in leftovers(prefix)["namespaces"]:
        pids = ip("netns", "pids", space, check=False).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        ip("netns", "del", space, check=False)
    for link in leftovers(prefix)["links"]:
        ip("link", "del", link, check=False)


class Hosts:
    """N buyer hosts and a server host, joined by a link each."""

    def __init__(
        self, hosts: int, delay_ms: float = 0.0, jitter_ms: float = 0.0, prefix: str = PREFIX
    ) -> None:
        if os.geteuid() != 0:
            raise NotRoot("simulated hosts need root (network namespaces): run as root")
        self.n, self.delay, self.jitter, self.prefix = hosts, delay_ms, jitter_ms, prefix
        self.server_ns = f"{prefix}-srv"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.folder = Path(tempfile.mkdtemp(prefix="tickets-hosts-"))

    def host_ns(self, i: int) -> str:
        return f"{self.prefix}-h{i}"

    def address(self, i: int) -> str:
        """Where host ``i`` reaches the server (the relay, with a delay)."""
        port = RELAY_PORT if self.delay or self.jitter else REDIS_PORT
        return f"{SUBNET}.{i}.1:{port}"

    def url(self, i: int, key: str = "stock") -> str:
        return f"redis://{self.address(i)}/0?key={key}"

    def build(self) -> None:
        tear_down(self.prefix)
        ip("netns", "add", self.server_ns)
        ip("-n", self.server_ns, "link", "set", "lo", "up")
        for i in range(1, self.n + 1):
            ns, near, far = self.host_ns(i), f"{self.prefix}-s{i}", f"{self.prefix}-h{i}"
            ip("netns", "add", ns)
            ip("-n", ns, "link", "set", "lo", "up")
            ip(
                "link",
                "add",
                near,
                "netns",
                self.server_ns,
                "type",
                "veth",
                "peer",
                "name",
                far,
                "netns",
                ns,
            )
            ip("-n", self.server_ns, "addr", "add", f"{SUBNET}.{i}.1/24", "dev", near)
            ip("-n", ns, "addr", "add", f"{SUBNET}.{i}.2/24", "dev", far)
            ip("-n", self.server_ns, "link", "set", near, "up")
            ip("-n", ns, "link", "set", far, "up")
        self.start_server()
        if self.delay or self.jitter:
            self.start_relay()
        self.wait_reachable()

    def in_ns(self, ns: str, argv: list[str], **kw: Any) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], **kw)
        self.procs.append(proc)
        return proc

    def start_server(self) -> None:
        binary = find_binary()
        if binary is None:
            raise RuntimeError("no redis-server (make test installs one)")
        self.in_ns(
            self.server_ns,
            [
                binary,
                "--port",
                str(REDIS_PORT),
                "--bind",
                "0.0.0.0",
                "--protected-mode",
                "no",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def start_relay(self) -> None:
        listens = [f"{SUBNET}.{i}.1:{RELAY_PORT}" for i in range(1, self.n + 1)]
        self.in_ns(
            self.server_ns,
            [
                sys.executable,
                __file__,
                "relay",
                "--to",
                f"127.0.0.1:{REDIS_PORT}",
                "--delay",
                str(self.delay),
                "--jitter",
                str(self.jitter),
                *listens,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def wait_reachable(self) -> None:
        """Every host reaches the server through its link."""
        deadline = time.monotonic() + START_TIMEOUT
        for i in range(1, self.n + 1):
            while True:
                host, port = self.address(i).split(":")
                done = self.run(
                    i,
                    [
                        "-c",
                        "import redis, sys; redis.Redis(sys.argv[1], "
                        "int(sys.argv[2]), socket_timeout=2).ping()",
                        host,
                        port,
                    ],
                    python=True,
                )
                if done.returncode == 0:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"host {i} cannot reach the server: {done.stderr[-300:]}")
                time.sleep(0.1)

    def run(
        self, i: int, argv: list[str], python: bool = False, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        full = [sys.executable, *argv] if python else argv
        return subprocess.run(
            ["ip", "netns", "exec", self.host_ns(i), *full],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def tickets(self, i: int, *args: str, cwd: Path | None = None) -> subprocess.Popen[str]:
        """``tickets`` on host ``i``, in a folder of its own (its own lock files)."""
        folder = cwd or self.folder / f"h{i}"
        folder.mkdir(exist_ok=True)
        argv = ["ip", "netns", "exec", self.host_ns(i), sys.executable, "-m", "tickets", *args]
        (folder / "run").mkdir(mode=0o700, exist_ok=True)
        env = {**os.environ, "XDG_RUNTIME_DIR": str(folder / "run")}  # a machine's own
        return subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=folder, env=env
        )

    def wait_started(self, name: str, timeout: float = 60.0) -> None:
        """Until the named sale has started (asked from host 1)."""
        host, port = self.address(1).split(":")
        code = (
            "import redis, sys, time\n"
            "r = redis.Redis(sys.argv[1], int(sys.argv[2]), socket_timeout=2)\n"
            "while r.hget(f'tickets:sale:{sys.argv[3]}:meta', 'state') != b'started':\n"
            "    time.sleep(0.005)\n"
        )
        done = self.run(1, ["-c", code, host, port, name], python=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"sale {name} did not start: {done.stderr[-300:]}")

    def partition(self, i: int, down: bool = True) -> None:
        """Cut host ``i``'s link (or heal it)."""
        ip("-n", self.host_ns(i), "link", "set", f"{self.prefix}-h{i}", "down" if down else "up")

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        tear_down(self.prefix)
        shutil.rmtree(self.folder, ignore_errors=True)


@contextmanager
def simulated(hosts: int, delay_ms: float = 0.0, jitter_ms: float = 0.0) -> Iterator[Hosts]:
    net = Hosts(hosts, delay_ms, jitter_ms)
    try:
        net.build()
        yield net
    finally:
        net.close()


def sale(
    net: Hosts,
    name: str,
    buyers: int,
    lock: str,
    extra: list[str] | None = None,
    partition: tuple[int, float, float] | None = None,
    only: dict[int, list[str]] | None = None,
) -> dict[str, Any]:
    """A named sale across every host; then the merged check from host 1.
    ``partition`` (host, after seconds, for seconds) cuts a host's link
    mid-sale; ``only`` gives some hosts flags of their own."""
    init = net.tickets(1, "--db", net.url(1), "init", "--tickets", str(buyers * net.n // 2))
    init.communicate(timeout=60)
    started = time.monotonic()
    procs = [
        net.tickets(
            i,
            "--db",
            net.url(i),
            "buy",
            "--sale",
            name,
            "--hosts",
            str(net.n),
            "--buyers",
            str(buyers),
            "--lock",
            lock,
            "--json",
            *(extra or []),
            *(only or {}).get(i, []),
        )
        for i in range(1, net.n + 1)
    ]
    if partition is not None:
        host, after, length = partition
        net.wait_started(name)
        time.sleep(after)
        net.partition(host)
        time.sleep(length)
        net.partition(host, down=False)
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        outs.append(
            {
                "code": proc.returncode,
                "doc": json.loads(out) if out.strip() else None,
                "stderr": err[-500:],
            }
        )
    wall = time.monotonic() - started
    check = net.tickets(1, "--db", net.url(1), "check", "--sale", name, "--json")
    out, err = check.communicate(timeout=120)
    return {
        "hosts": outs,
        "check": json.loads(out) if out.strip() else None,
        "check_code": check.returncode,
        "check_stderr": err[-500:],
        "wall_s": wall,
    }


# -- the relay: delay and jitter on a link ---------------------------------------


async def _pump(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float, jitter: float
) -> None:
    """Forward one direction, each chunk held delay ± jitter, in order."""
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
    last = 0.0

    async def send() -> None:
        while True:
            due, data = await queue.get()
            if not data:
                writer.close()
                return
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()

    sender = asyncio.ensure_future(send())
    try:
        while True:
            data = await reader.read(65536)
            last = max(last, time.monotonic() + max(0.0, delay + random.uniform(-jitter, jitter)))
            queue.put_nowait((last, data))
            if not data:
                break
        await sender
    except (ConnectionError, OSError):
        sender.cancel()
        writer.close()


async def _relay(listens: list[str], to: str, delay: float, jitter: float) -> None:
    host, port = to.rsplit(":", 1)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
        except OSError:
            writer.close()
            return
        await asyncio.gather(
            _pump(reader, up_writer, delay, jitter), _pump(up_reader, writer, delay, jitter)
        )

    servers = []
    for listen in listens:
        addr, lport = listen.rsplit(":", 1)
        servers.append(await asyncio.start_server(handle, addr, int(lport)))
    await asyncio.gather(*(s.serve_forever() for s in servers))


def bring_up(count: int, delay: float, jitter: float) -> int:
    """Build the hosts and leave them (and the server and relay) running."""
    try:
        net = Hosts(count, delay, jitter)
    except NotRoot as exc:
        print(f"hosts: {exc}", file=sys.stderr)
        return 2
    try:
        net.build()
    except BaseException:
        net.close()
        raise
    net.procs.clear()  # theirs now: `down` kills them with the namespaces
    for i in range(1, count + 1):
        print(
            f"ip netns exec {net.host_ns(i)} tickets --db '{net.url(i)}' buy --sale s1 "
            f"--hosts {count} --lock atomic"
        )
    print("tests/hosts.py down (make hosts-down) removes them")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="simulated hosts for a named sale")
    sub = parser.add_subparsers(dest="what", required=True)
    relay = sub.add_parser("relay")
    relay.add_argument("--to", required=True)
    relay.add_argument("--delay", type=float, default=0.0)
    relay.add_argument("--jitter", type=float, default=0.0)
    relay.add_argument("listens", nargs="+")
    run = sub.add_parser("sale", help="a named sale across simulated hosts, then the check")
    run.add_argument("--hosts", type=int, default=3)
    run.add_argument("--buyers", type=int, default=300)
    run.add_argument("--delay", type=float, default=1.0, help="link delay, ms")
    run.add_argument("--jitter", type=float, default=0.5, help="link jitter, ms")
    run.add_argument("--lock", default="atomic")
    run.add_argument(
        "--partition",
        metavar="HOST:AFTER:FOR",
        help="cut HOST's link AFTER seconds into the sale, FOR seconds",
    )
    run.add_argument(
        "--pause",
        metavar="HOST:MS",
        help="HOST's buyers pause MS holding the lock (chaos --pause-length)",
    )
    run.add_argument("flags", nargs="*", help="more `tickets buy` flags, after --")
    sub.add_parser("down", help="remove whatever simulated hosts are left")
    up = sub.add_parser("up", help="build the hosts and leave them up (`down` removes them)")
    up.add_argument("--hosts", type=int, default=3)
    up.add_argument("--delay", type=float, default=1.0, help="link delay, ms")
    up.add_argument("--jitter", type=float, default=0.5, help="link jitter, ms")
    args = parser.parse_args(argv)
    if args.what == "relay":
        asyncio.run(_relay(args.listens, args.to, args.delay / 1000, args.jitter / 1000))
        return 0
    if args.what == "down":
        tear_down()
        print("simulated hosts: none left")
        return 0
    if args.what == "up":
        return bring_up(args.hosts, args.delay, args.jitter)
    partition = None
    if args.partition:
        host, after, length = args.partition.split(":")
        partition = (int(host), float(after), float(length))
    only = {}
    if args.pause:
        host, length = args.pause.split(":")
        only[int(host)] = [
            "--chaos",
            "--kill-rate",
            "0",
            "--pause-rate",
            "1",
            "--pause-length",
            length,
        ]
    try:
        with simulated(args.hosts, args.delay, args.jitter) as net:
            result = sale(net, "flash1", args.buyers, args.lock, args.flags, partition, only)
    except NotRoot as exc:
        print(f"hosts: {exc}", file=sys.stderr)
        return 2
    check = result["check"] or {}
    print(
        f"{args.hosts} hosts x {args.buyers} buyers, link delay {args.delay} ± {args.jitter} ms,"
        f" --lock {args.lock}: wall {result['wall_s']:.2f} s, sold {check.get('sold')} of "
        f"{check.get('initial')}, oversold {check.get('oversold')}, merged check exit "
        f"{result['check_code']}"
    )
    failing = [c["name"] for c in check.get("checks", []) if c["passed"] is False]
    print("  failed checks: " + (", ".join(failing) or "none"))
    for n, host in enumerate(result["hosts"], 1):
        doc = host["doc"] or {}
        print(f"  host {n}: exit {host['code']}, {doc.get('duration_s')} s")
    left = leftovers()
    print("torn down: " + ("yes" if not any(left.values()) else f"NO, left {left}"))
    return int(result["check_code"])


if __name__ == "__main__":
    sys.exit(main())
