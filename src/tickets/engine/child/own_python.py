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
from collections.abc import Mapping


def own_python(module: str, *args: str) -> list[str]:
    """``python -P -m MODULE ARGS``: the argv of one of the tool's processes."""
    return [sys.executable, "-P", "-m", module, *args]


#: The caller's own PYTHONPATH, kept for the user's commands (``=`` and the
#: value, or ``-`` where it was unset) while the tool's processes use theirs.
CALLER_PATH = "TICKETS_CALLER_PYTHONPATH"


def own_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of one of the tool's processes: ``base`` (or this
    one's) with the import path that finds this package first; the
    caller's own kept aside for the commands it runs (:func:`caller_env`)."""
    env = dict(os.environ if base is None else base)
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    here = os.path.abspath(here)
    if CALLER_PATH not in env:  # the first of the tool's processes keeps it
        was = env.get("PYTHONPATH")
        env[CALLER_PATH] = "-" if was is None else "=" + was
    paths = [here, *(p for p in sys.path if p and p != here)]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def caller_env(env: Mapping[str, str]) -> dict[str, str]:
    """The environment a user's command runs in (``--exec``, ``--stock-cmd``):
    the caller's own PYTHONPATH back, not the tool's (a command's Python,
    another version or another virtualenv, must not import the tool's
    packages)."""
    out = dict(env)
    was = out.pop(CALLER_PATH, None)
    if was == "-":
        out.pop("PYTHONPATH", None)
    elif was is not None:
        out["PYTHONPATH"] = was[1:]
    return out
