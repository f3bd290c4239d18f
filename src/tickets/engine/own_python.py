"""How the tool starts a Python process of its own (the launcher, the
warden, the check of ``--buy``, an exploration for a test): ``-P``, so the
current folder is not put first on the import path (a project with a
``tickets`` package of its own would be imported in this one's place), and
a ``PYTHONPATH`` that leads with the folder this package was imported
from, then the caller's own path (a test's folders, for the user's code).
"""

from __future__ import annotations

import os
import sys


def own_python(module: str, *args: str) -> list[str]:
    """``python -P -m MODULE ARGS``: the argv of one of the tool's processes."""
    return [sys.executable, "-P", "-m", module, *args]


def own_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of one of the tool's processes: ``base`` (or this
    one's) with the import path that finds this package first."""
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    paths = [here, *(p for p in sys.path if p and p != here)]
    return {**(os.environ if base is None else base), "PYTHONPATH": os.pathsep.join(paths)}
