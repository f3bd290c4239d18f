"""`make bench` section 10 (root only): one sale across 3 simulated hosts.

3 hosts x 300 buyers on links of 1 ms ± 0.5 ms (tests/hosts.py), `--lock
atomic`: the wall time of the whole named sale and its purchases/s, and the
cost of streaming each host's history to the sale: the same three hosts
selling the same stock as three plain runs (history in files only, no join),
interleaved, three rounds. Purchases/s are the sale's: tickets sold over the
longest host's sale (its gate to its end).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import hosts  # noqa: E402

BUYERS, STOCK = 300, 450


def plain(net: hosts.Hosts) -> float:
    """Three runs at once on the same stock, each keeping its history in a file."""
    net.tickets(1, "--db", net.url(1), "init", "--tickets", str(STOCK)).communicate(timeout=60)
    procs = [
        net.tickets(
            i,
            "--db",
            net.url(i),
            "buy",
            "--buyers",
            str(BUYERS),
            "--lock",
            "atomic",
            "--keep-stock",
            "--json",
        )
        for i in (1, 2, 3)
    ]
    docs = [json.loads(p.communicate(timeout=300)[0]) for p in procs]
    sold = sum(sum(1 for b in d["buyers"] if b["result"] == "ok") for d in docs)
    return sold / max(float(d["duration_s"]) for d in docs)


def streamed(net: hosts.Hosts, n: int) -> tuple[float, float]:
    result: dict[str, Any] = hosts.sale(net, f"bench{n}", BUYERS, "atomic")
    assert result["check_code"] == 0, result["check"]
    longest = max(h["doc"]["duration_s"] for h in result["hosts"])
    return result["check"]["sold"] / longest, result["wall_s"]


def report(rounds: int = 3) -> None:
    print(
        "\n10. one sale across 3 simulated hosts x 300 buyers, 1 ms ± 0.5 ms links, atomic, "
        f"{rounds} rounds"
    )
    if os.geteuid() != 0:
        print("   skipped: simulated hosts need root (network namespaces)")
        return
    rates, walls, bases = [], [], []
    with hosts.simulated(3, 1.0, 0.5) as net:
        for n in range(rounds):
            rate, wall = streamed(net, n)
            rates.append(rate)
            walls.append(wall)
            bases.append(plain(net))
    r, w, b = statistics.median(rates), statistics.median(walls), statistics.median(bases)
    print(
        f"   named sale: {r:,.0f} purchases/s, {w:.2f} s from start to the merged verdict; "
        f"three plain runs (files only) {b:,.0f}/s; ratio {r / b:.2f}"
    )


if __name__ == "__main__":
    report()
