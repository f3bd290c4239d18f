"""Core exceptions -> one-line click errors with the documented exit codes.

Only click is imported at module level (see :mod:`tickets.cli`).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click

from ..constants import EXIT_ABORTED, EXIT_CHECK_FAILED, EXIT_STORE, EXIT_UNPROVEN


class UnusableFile(click.ClickException):
    """The store, its lock or a history file cannot be used (exit 3)."""

    exit_code = EXIT_STORE


@contextmanager
def translate_errors() -> Iterator[None]:
    """StoreError and HistoryError -> exit 3; ConfigError -> a usage error (exit 2)."""
    from ..config import ConfigError
    from ..history import HistoryError
    from ..stores.base import StoreError

    try:
        yield
    except (StoreError, HistoryError) as exc:
        raise UnusableFile(str(exc)) from None
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None


def exit_code_for(
    passed: bool, aborted: str | None, store_error: str | None = None, unproven: bool = False
) -> int:
    """A run's exit code: 4 stopped, 3 the store could not be read at the
    end (a server gone mid-sale), 1 a check failed, 5 no check failed but
    nothing read the stock, 0 every check passed."""
    if aborted:
        return EXIT_ABORTED
    if store_error:
        return EXIT_STORE
    if passed:
        return 0
    return EXIT_UNPROVEN if unproven else EXIT_CHECK_FAILED


#: Set by the ``tickets`` entry point (not under a test's CliRunner, whose
#: process must keep its signals, and pass them on to its children).
ENTRY_POINT: list[bool] = []


def done_answering() -> None:
    """The command has given its answer (the document, the verdict): a signal
    that comes now is held until the process exits with the code the
    answer gives, instead of killing it with another."""
    if ENTRY_POINT:
        import signal

        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM, signal.SIGHUP})


def exit_with(code: int) -> None:
    """Leave with ``code`` (nothing to do for 0: the command returns)."""
    done_answering()
    if code:
        sys.exit(code)
