"""Helpers shared by the tests (imported as a plain module from tests/)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under folder with its bytes (to prove nothing changed)."""
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def read_json_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


#: The fields every run's JSON document has (buy, each race run, queue); the README's schema.
RUN_FIELDS = {
    "strategy": str,
    "initial": int,
    "sold": int,
    "remaining": int,
    "oversold": int,
    "unknown": int,
    "double_sold_seats": list,
    "passed": bool,
    "history": str,
    "duration_s": float,
    "buyers": list,
    "checks": list,
}


def assert_run_fields(doc: dict[str, Any]) -> None:
    for key, kind in RUN_FIELDS.items():
        assert isinstance(doc[key], kind), key
