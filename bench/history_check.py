"""Checking a big history: time against a bare parse of its lines, and memory.

A history of a queue run at the documented limits (a million orders: each
an invoke, a clerk's take, and a sale or a "sold out") is checked in a
fresh process; the baseline, in another fresh process of the same session,
only parses the same file's lines with the same JSON library. Peak memory
is the checking process's peak RSS less that of a process that imported
the same modules and did nothing.

    python bench/history_check.py [OPERATIONS]
"""

from __future__ import annotations

import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

PRODUCERS = 64

BARE = """
import json, sys, time
t = time.perf_counter()
with open(sys.argv[1], encoding="utf-8") as f:
    for line in f:
        json.loads(line)
print(time.perf_counter() - t)
"""

CHECK = """
import resource, sys, time
from tickets.check.verdict import check_history
from tickets.check.history import read
t = time.perf_counter()
report = check_history(read(sys.argv[1]))
took = time.perf_counter() - t
assert report.passed, report.failures()
print(took, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""

IDLE = """
import resource
import tickets.check.verdict, tickets.check.history
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def write_queue_history(path: Path, orders: int, tickets: int | None = None) -> int:
    """A correct queue run's history: producers submit, two clerks sell one
    at a time, overlapping each other, until the stock runs out. Returns the
    file's size in bytes."""
    tickets = orders * 9 // 10 if tickets is None else tickets
    per = orders // PRODUCERS
    rng = random.Random(1)
    t, count = 1000.0, tickets
    out = [
        json.dumps(
            {
                "type": "run",
                "version": 1,
                "run_id": "bench",
                "mode": "queue",
                "store": "/bench/tickets.json",
                "strategy": "flock",
                "initial": tickets,
                "restocked": True,
                "producers": PRODUCERS,
                "orders": per,
                "clerks": 2,
                "queue_size": 100_000,
                "shutdown": "sentinel",
                "batch": 1,
                "put_timeout": None,
                "get_timeout": None,
                "seed": 0,
                "delays": {"search": 0.0, "write": 0.0},
                "start_method": "fork",
                "pid": 4000,
                "wall": "2026-11-28T10:00:00+00:00",
                "t": t,
            },
            separators=(",", ":"),
        )
    ]
    with open(path, "w", encoding="utf-8") as f:
        f.write(out[0] + "\n")
        for n in range(per * PRODUCERS):
            producer, clerk = n % PRODUCERS, n % 2
            t += rng.uniform(1e-6, 2e-5)
            invoke = {
                "type": "invoke",
                "buyer": n,
                "pid": 5000 + producer,
                "producer": producer,
                "t_start": t,
                "t": t,
            }
            take = {
                "type": "take",
                "clerk": clerk,
                "pid": 6000 + clerk,
                "orders": [n],
                "t": t + 1e-6,
            }
            done: dict[str, object] = {
                "buyer": n,
                "pid": 6000 + clerk,
                "clerk": clerk,
                "t_search": t + 2e-6,
                "t_locked": t + 3e-6,
                # the two clerks' sales overlap (the sale contended)
                "t": t + 4e-5,
            }
            if count:
                done = {"type": "ok", "seat": count, **done}
                count -= 1
            else:
                done = {"type": "fail", "reason": "sold out", **done}
            t += 5e-6
            for ev in (invoke, take, done):
                f.write(json.dumps(ev, separators=(",", ":")) + "\n")
        end = {
            "type": "end",
            "remaining": count,
            "store_error": None,
            "aborted": None,
            "notes": [],
            "chaos": None,
            "duration_s": t - 1000.0,
            "t": t + 1,
        }
        f.write(json.dumps(end, separators=(",", ":")) + "\n")
    return path.stat().st_size


def python(code: str, *args: str) -> list[float]:
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=1800,
    )
    return [float(x) for x in out.stdout.split()]


def measure(orders: int, repeat: int = 3) -> dict[str, float]:
    """Median check / bare-parse ratio (interleaved runs) and memory per operation."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "queue.jsonl"
        size = write_queue_history(path, orders)
        ratios, checks, bares, peaks = [], [], [], []
        for _ in range(repeat):
            (bare,) = python(BARE, str(path))
            check, peak_kb = python(CHECK, str(path))
            ratios.append(check / bare)
            checks.append(check)
            bares.append(bare)
            peaks.append(peak_kb)
        (idle_kb,) = python(IDLE)
    ops = orders // PRODUCERS * PRODUCERS
    return {
        "operations": ops,
        "bytes": size,
        "bare_s": statistics.median(bares),
        "check_s": statistics.median(checks),
        "ratio": statistics.median(ratios),
        "peak_mb": max(peaks) / 1024,
        "bytes_per_op": (max(peaks) - idle_kb) * 1024 / ops,
    }


def report(orders: int) -> None:
    m = measure(orders)
    print(
        f"\n6. tickets check of a {m['bytes'] / 1e6:.0f} MB history, {m['operations']:,} "
        "operations, against a bare parse of its lines (median of 3, interleaved)"
    )
    print(
        f"   check {m['check_s']:.2f} s, bare json.loads loop {m['bare_s']:.2f} s: "
        f"ratio {m['ratio']:.2f} (target <= 2)"
    )
    print(
        f"   peak RSS {m['peak_mb']:.0f} MB: {m['bytes_per_op']:.0f} bytes per operation "
        "above an idle process (target < 200)"
    )


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    report(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
