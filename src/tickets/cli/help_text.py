"""Each command's help says what that command does and nothing else: its
own exit codes, and the shared options' words fitted to it (``buy`` never
talks about clerks, ``queue`` never about buyers' searches). Applied once,
when the command line is put together (see :mod:`tickets.cli`); imports
only click and re.
"""

from __future__ import annotations

import re

import click

from ..constants import EXIT_CODES_HELP

_SIGNALS = "129, 130, 143 stopped by SIGHUP, Ctrl-C, SIGTERM (what was sold so far is shown)."
_STORE = "3 the store, its lock or a history file unusable (nothing changed)"

#: The exit codes each command can end with, as its help lists them.
EXIT_CODES: dict[str, str] = {
    "init": "Exit codes: 0 the store holds the stock asked for; 2 usage error; "
    f"{_STORE}, or another sale running on it past --lock-timeout; 130, 143 stopped by "
    "Ctrl-C, SIGTERM (the store as it was, or restocked: never half-written).",
    "status": "Exit codes: 0 the count was read; 2 usage error; 3 the store missing, corrupt "
    "or unreachable.",
    "buy": "Exit codes: 0 every check passed; 1 a check failed (oversold, a seat sold twice, "
    f"stock lost); 2 usage error; {_STORE}; after a sale: the final stock unreadable, a lock "
    "or the store held by someone else so that no buyer could take part, the buyer code "
    "writing into the tool's event pipe; 4 run stopped (the watchdog's deadline; a named "
    "sale's hosts did not all join); 5 not proven (no check failed, but nothing was proven: "
    "no stock was read, the store had no tickets, no buyer completed an attempt, no two "
    f"purchases overlapped while tickets were left); {_SIGNALS}",
    "race": "Exit codes: 0 every side under test (a locking strategy, your own code) passed "
    "every check in every trial; 1 one failed a check, or a --max-oversold / "
    f"--expect-oversell threshold was missed; 2 usage error; {_STORE}; 4 a run stopped "
    "(the watchdog's deadline); 5 not proven (no check failed, but some trial proved "
    f"nothing: no tickets, nobody took part, no two purchases overlapped); {_SIGNALS}",
    "queue": "Exit codes: 0 every check passed; 1 a check failed (oversold, a seat sold "
    f"twice, stock lost); 2 usage error; {_STORE}; after a sale: the final stock "
    "unreadable; 4 run stopped (the watchdog's deadline, a clerk died under --shutdown "
    "join); 5 not proven (no tickets, no order sold, one clerk: no two sales overlapped); "
    f"{_SIGNALS}",
    "timeline": "Exit codes: 0 drawn; 2 usage error (no history here to draw); 3 the "
    "history unreadable or not a history, or the picture could not be written "
    "(an --svg path that is a link or a FIFO, a full disk).",
    "check": "Exit codes: 0 every check passed; 1 a check failed (oversold, a seat sold "
    "twice, stock lost); 2 usage error (no history here to check); 3 a history unreadable "
    "or not a history (forged, cut, another tool's); 5 not proven (no check failed, but "
    "the sale tested nothing, its stock was never read, or the run was aborted).",
    "history": "Exit codes: 0 listed (and pruned, with --keep or --older-than); 2 usage "
    "error; 3 the history folder unreadable, or a history that could not be removed.",
    "sale": "Exit codes: 0 done; 2 usage error (a store that is not Redis, a bad name); "
    "3 the server unreachable or refusing, or no such sale.",
}

#: Words of the shared options that belong to the queue alone: ``(queue: …)``
#: and ``(clerks)`` asides.
_QUEUE_ASIDE = re.compile(r" ?\((?:queue: [^)]*|clerks)\)")

#: A shared option's help, per command, where it differs from the shared words.
_HELP: dict[tuple[str, str], str] = {
    ("queue", "search_delay"): "Upper bound of the gap between a producer's orders.",
    ("race", "tickets"): "Restock the store to N tickets before every run. Default: 10 (a "
    "missing Redis key is refused unless N is given).",
}


def tailor(command: click.Command) -> None:
    """Fit a command's help to it: its exit codes, its options' words."""
    name = command.name or ""
    command.epilog = EXIT_CODES.get(name, EXIT_CODES_HELP)
    for param in command.params:
        if not isinstance(param, click.Option) or not param.help or param.name is None:
            continue
        text = _HELP.get((name, param.name), param.help)
        if name == "queue":
            text = re.sub(r"a buyer \(queue: ([^)]*)\)", r"\1", text)
            text = text.replace("buyers (clerks)", "clerks")
        text = _QUEUE_ASIDE.sub("", text)
        param.help = text
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            sub.epilog = EXIT_CODES.get(name, EXIT_CODES_HELP)
