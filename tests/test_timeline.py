"""`tickets timeline`: deterministic drawing and SVG/HTML export."""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from rich.console import Console

from histories import run_line
from tickets.check.history import read
from tickets.render.timeline import timeline

Invoke = Callable[..., Result]


def ev(kind: str, buyer: int, **kw: Any) -> dict[str, Any]:
    return {"type": kind, "buyer": buyer, "pid": 100 + buyer, **kw}


@pytest.fixture
def lost_update(tmp_path: Path) -> Path:
    """Buyers 0 and 1 both read 2 and both wrote 1 (lost update); buyer 2 then sold 1."""
    lines = [
        run_line(2, 4, strategy="none"),
        ev("invoke", 0, t_start=10.0, t=10.010, seen=2),
        ev("invoke", 1, t_start=10.0, t=10.020, seen=2),
        ev("ok", 0, seat=2, t_start=10.0, t_search=10.010, t_locked=10.010, t=10.060),
        ev("ok", 1, seat=2, t_start=10.0, t_search=10.020, t_locked=10.020, t=10.070),
        ev("invoke", 2, t_start=10.0, t=10.075, seen=1),
        ev("ok", 2, seat=1, t_start=10.0, t_search=10.075, t_locked=10.080, t=10.100),
        ev("invoke", 3, t_start=10.0, t=10.05, seen=1),
        ev("info", 3, reason="no outcome reported (killed by SIGKILL)", t=10.09),
        {"type": "end", "remaining": 0, "t": 10.2},
    ]
    path = tmp_path / "lost.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def draw(path: Path, width: int = 100) -> list[str]:
    out = io.StringIO()
    Console(file=out, width=width, color_system=None).print(timeline(read(path), width=width))
    return out.getvalue().splitlines()


def bar(line: str, ch: str) -> range:
    body = line[23:]
    first, last = body.index(ch), body.rindex(ch)
    return range(first, last + 1)


def test_overlapping_read_modify_writes_are_drawn(lost_update: Path) -> None:
    lines = draw(lost_update)
    assert draw(lost_update) == lines  # deterministic
    rows = {line.split()[1]: line for line in lines if line.startswith("buyer ")}
    assert rows["0"].startswith("buyer 0 seat 2 ×2")
    assert rows["1"].startswith("buyer 1 seat 2 ×2")
    assert rows["2"].startswith("buyer 2 seat 1 ")
    assert rows["3"].startswith("buyer 3 unknown") and "?" in rows["3"]
    # The two read-modify-writes of seat 2 overlap on the shared axis;
    # buyer 2's starts after both ended.
    # Seat 2's rows are drawn in their own glyph, not only their own colour.
    a, b, c = bar(rows["0"], "▓"), bar(rows["1"], "▓"), bar(rows["2"], "█")
    assert set(a) & set(b)
    assert min(c) > max(a) and min(c) >= max(b)
    # Each sale's read and write are marked: buyer 1 read before buyer 0 wrote.
    r0, w0, r1 = rows["0"].index("R"), rows["0"].index("W"), rows["1"].index("R")
    assert r0 < r1 < w0
    text = "\n".join(lines)
    # No lock (strategy none): no wait for one, in the rows or the legend.
    assert "·" not in text and "waiting for the lock" not in text
    assert "░░░ no ticket" in text and "▓▓▓ same seat" in text
    axis = next(line for line in lines if "0 ms" in line)
    assert axis.split() == ["0", "ms", "50.0", "ms", "100.0", "ms"]
    text = "\n".join(lines)
    assert "seat 2 sold 2 times:\n    buyer 0  read 10.0 ms, wrote 60.0 ms\n" in text
    assert "    buyer 1  read 20.0 ms, wrote 70.0 ms" in text


def test_width_is_respected(lost_update: Path) -> None:
    for width in (60, 150):
        assert max(len(line) for line in draw(lost_update, width)) <= width


def test_clean_history_says_so(tmp_path: Path) -> None:
    lines = [
        run_line(1, 1, t=1.0),
        ev("invoke", 0, t_start=1.0, t=1.01),
        ev("ok", 0, seat=1, t_start=1.0, t_search=1.01, t_locked=1.02, t=1.03),
        {"type": "end", "remaining": 0, "t": 1.1},
    ]
    path = tmp_path / "clean.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert "No seat was sold twice" in "\n".join(draw(path))


def svg_text(path: Path) -> str:
    root = ET.parse(path).getroot()  # a well-formed XML document
    assert root.tag.endswith("svg")
    return "".join(root.itertext()).replace("\xa0", " ")


def test_svg_and_html_export_name_the_double_sold_seats(
    invoke: Invoke, lost_update: Path, tmp_path: Path
) -> None:
    svg, html = tmp_path / "t.svg", tmp_path / "t.html"
    result = invoke("timeline", str(lost_update), "--svg", str(svg), "--html", str(html))
    assert result.exit_code == 0, result.output
    assert "seat 2 sold 2 times" in svg_text(svg)
    page = html.read_text()
    assert page.lstrip().lower().startswith("<!doctype html>") and "seat 2 sold 2 times" in page
    assert "<title>tickets timeline: lost.jsonl</title>" in page
    # Renders offline: no font, script or style is fetched from anywhere.
    assert not re.search(r"url\(\s*[\"']?https?:", svg.read_text() + page)


@pytest.mark.timeout(60)
def test_timeline_of_a_real_unlocked_run(invoke: Invoke) -> None:
    result = invoke(
        "buy",
        "--buyers",
        "6",
        "--tickets",
        "2",
        "--lock",
        "none",
        "--search-delay",
        "0",
        "--write-delay",
        "40",
        "--json",
    )
    history = json.loads(result.output)["history"]
    out = invoke("timeline", history, "--width", "120").output
    assert "×" in out and "sold" in out and "each buyer read the count" in out


def test_timeline_errors(invoke: Invoke, lost_update: Path, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not json\n")
    result = invoke("timeline", str(notes))
    assert result.exit_code == 3 and "not a tickets history" in result.output
    result = invoke("timeline", str(tmp_path / "missing.jsonl"))
    assert result.exit_code == 3 and "no such history" in result.output
    result = invoke("timeline", str(lost_update), "--svg", str(tmp_path / "no" / "dir" / "t.svg"))
    assert result.exit_code == 3 and "cannot be written" in result.output


def test_a_big_sale_is_binned_exactly() -> None:
    """Each operation counts in the bin where it ended (an unknown one where
    it began), and is active from its invoke's bin through its end's."""
    from tickets.check.operations import Operations
    from tickets.render.timeline_bins import bin_counts, sparkline

    ops = Operations(4, 0.0)
    events: list[Any] = [
        {"type": "invoke", "buyer": 0, "t": 0.0},
        {"type": "ok", "buyer": 0, "seat": 2, "t": 10.0},
        {"type": "invoke", "buyer": 1, "t": 0.0},
        {"type": "fail", "buyer": 1, "reason": "sold out", "t": 1.0},
        {"type": "invoke", "buyer": 2, "t": 5.0},
        {"type": "info", "buyer": 2, "t": 6.0},
    ]  # buyer 3 never began: no operation
    for ev in events:
        ops.add(ev)
    counts = bin_counts(ops, 0.0, 10.0, 11)
    assert counts["sold"] == [0] * 10 + [1]
    assert counts["no ticket"] == [0, 1] + [0] * 9
    assert counts["unknown"] == [0] * 5 + [1] + [0] * 5
    assert counts["active"] == [2, 2, 1, 1, 1, 2, 2, 2, 2, 2, 2]
    assert sparkline([0, 1, 8]) == " ▁█"
