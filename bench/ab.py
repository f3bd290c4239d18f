"""Old code against new, interleaved: is a refactor as fast as what it replaced?

    python bench/ab.py OLD_SRC [--pairs 15]

``OLD_SRC`` is the ``src`` folder of another checkout (``git worktree add
/tmp/old <commit>``); this checkout's ``src`` is the new side. Each pair
runs the same whole command once from each tree, in a random order, on a
fresh store: a 400-buyer sale with the default delays and a 1,000-buyer
``--no-delay`` sale, both under ``flock``. It prints each scenario's median
wall time and the new/old ratio of the medians, and of the sales' own
durations (``duration_s``: the sale without the interpreter's start), with
the median of the pair-by-pair ratios, and the CPU time the command and
every process it started used (what a busy machine's scheduling does not
move: wall times on a shared 2-core machine wander by 5-10% run to run).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NEW_SRC = Path(__file__).resolve().parent.parent / "src"
SCENARIOS = {
    "400 buyers, default delays, flock": ["-n", "400", "-t", "100", "--lock", "flock"],
    "1,000 buyers, --no-delay, flock": [
        "-n",
        "1000",
        "-t",
        "1000",
        "--no-delay",
        "--lock",
        "flock",
    ],
}


def one_sale(src: Path, folder: Path, args: list[str]) -> tuple[float, float, float]:
    """(wall seconds, the sale's own duration, CPU seconds of the command and
    every process it started) of one whole command."""
    store = folder / f"t-{time.monotonic_ns()}.json"
    env = {**os.environ, "PYTHONPATH": str(src)}
    cmd = [sys.executable, "-m", "tickets", "--db", str(store), "buy", *args, "--json"]
    cmd += ["--history", "none"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    doc = json.loads(out.stdout)
    assert doc["passed"], out.stderr or doc
    return wall, float(doc["duration_s"]), cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old_src", type=Path)
    parser.add_argument("--pairs", type=int, default=15)
    opts = parser.parse_args()
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as tmp:
        for name, args in SCENARIOS.items():
            runs: dict[str, list[tuple[float, float, float]]] = {"old": [], "new": []}
            for _ in range(opts.pairs):
                sides = [("old", opts.old_src), ("new", NEW_SRC)]
                rng.shuffle(sides)
                for side, src in sides:
                    runs[side].append(one_sale(src, Path(tmp), args))
            wall = {s: statistics.median(w for w, _, _ in r) for s, r in runs.items()}
            sale = {s: statistics.median(d for _, d, _ in r) for s, r in runs.items()}
            cpu = {s: statistics.median(c for _, _, c in r) for s, r in runs.items()}
            pairs = zip(runs["old"], runs["new"], strict=True)
            pairwise = statistics.median(new[1] / old[1] for old, new in pairs)
            print(
                f"{name}: median of {opts.pairs} pairs, wall {wall['old']:.3f} s old, "
                f"{wall['new']:.3f} s new (new/old {wall['new'] / wall['old']:.3f}); "
                f"sale {sale['old']:.3f} s old, {sale['new']:.3f} s new "
                f"(new/old {sale['new'] / sale['old']:.3f}, pair by pair {pairwise:.3f}); "
                f"CPU {cpu['old']:.3f} s old, {cpu['new']:.3f} s new "
                f"(new/old {cpu['new'] / cpu['old']:.3f})"
            )


if __name__ == "__main__":
    main()
