"""The library's exploration, in a fresh interpreter: never a fork of the caller.

``tickets explore`` forks its exploration from the command's own process
(see :mod:`tickets.engine.explore.isolated`). A library caller's process
is not ours to fork: a pytest session holds threads, plugins and open
files, and its buyers' code would run in a copy of it. So
:func:`tickets.explore` starts this module in a fresh interpreter, which
runs the same warded exploration and writes the pickled
:class:`~tickets.engine.explore.explorer.Exploration` (or the error it
stopped on, one of the package's) to a file the caller handed it.

Run as ``python -m tickets.gate.explore_child PARENT_PID ANSWER_FD`` with
the pickled config on stdin.
"""

from __future__ import annotations

import os
import pickle
import sys
from typing import TYPE_CHECKING

from ..errors import StoreError, TicketsError, UsageProblem

if TYPE_CHECKING:
    from ..engine.explore.explorer import Exploration, ExploreConfig


def deadline_of(seconds: float) -> float:
    """The most an exploration of ``seconds`` may take, as ``tickets
    explore`` allows it: its time limit, as much again to shrink a failure
    (a minute at most), and 15 seconds of grace."""
    return seconds + min(60.0, seconds) + 15.0


def explored(config: ExploreConfig) -> Exploration:
    """Explore in a warded child of this process, every error in the package's words."""
    from ..engine import interrupts
    from ..engine.explore.explorer import run_explore
    from ..engine.explore.isolated import run_isolated
    from ..engine.explore.sale import LoopingBuyer, Nondeterministic, NoOutcome, StepHung
    from ..engine.explore.scheduler import Misused

    try:
        with interrupts.terminations_interrupt():
            return run_isolated(config, run_explore, deadline_of(config.seconds))
    except (Nondeterministic, LoopingBuyer, StepHung, NoOutcome, Misused) as exc:
        raise UsageProblem(str(exc)) from None
    except TicketsError:
        raise
    except RecursionError:
        raise UsageProblem(
            "a buyer's code recursed so deep that the explorer could not go on"
        ) from None
    except Exception as exc:  # never a traceback: the exploration could not be finished
        raise StoreError(
            "tickets explore", f"the exploration failed ({type(exc).__name__}: {exc})"
        ) from None
    except KeyboardInterrupt as interrupt:
        words = interrupts.describe(interrupt)
        raise StoreError(
            "tickets explore", f"{words}; the exploration was stopped and cleaned up"
        ) from None


def main(argv: list[str]) -> None:
    from ..engine.children import die_with_parent

    parent, answer_fd = int(argv[1]), int(argv[2])
    die_with_parent(parent)  # a caller killed outright takes the exploration with it
    config = pickle.loads(sys.stdin.buffer.read())
    answer: tuple[str, object]
    try:
        answer = ("ok", explored(config))
    except TicketsError as exc:
        answer = ("error", exc)
    try:
        data = pickle.dumps(answer)
    except Exception as exc:  # an answer that cannot be pickled: in words
        problem = f"its answer could not be sent ({type(exc).__name__}: {exc})"
        data = pickle.dumps(("error", StoreError("tickets explore", problem)))
    with os.fdopen(answer_fd, "wb") as answer_file:
        answer_file.write(data)


if __name__ == "__main__":
    main(sys.argv)
