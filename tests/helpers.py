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
