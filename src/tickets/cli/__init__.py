"""The command line: parse, delegate to the core, render, translate errors to exit codes.

- ``store_commands``: ``init``, ``status``; ``sale_commands``: ``buy``,
  ``race``, ``queue``; ``history_commands``: ``check``, ``timeline``;
- ``options``: the option bundles and the run config they add up to;
- ``console``: consoles, the JSON printer, the live line;
- ``errors``: core exceptions -> one-line messages and exit codes.

Only click is imported at module level; the core and rich load inside the
commands, so ``tickets --help`` is as quick as click itself and forked
buyers never pay for a terminal library.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import click

from ..constants import DEFAULT_STORE, EXIT_CODES_HELP, EXIT_INTERRUPTED, EXIT_STORE, STORE_ENV
from .explore_command import EXPLORE_EXIT_CODES, explore_command
from .help_text import tailor
from .history_commands import check, history_command, timeline_command
from .sale_commands import buy, queue_command, race
from .sale_group import sale_group
from .store_commands import init, status
from .store_options import (
    CONNECT_TIMEOUT,
    CONNECT_TIMEOUT_HELP,
    DB_HELP,
    LOCK_FILE_HELP,
    StoreContext,
)


class TicketsGroup(click.Group):
    """click's group, except that a refused command asked for ``--json``
    still prints one JSON document on stdout: ``| jq -e .passed`` must fail
    even without ``pipefail`` (a usage error, an unusable store)."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        from .console import emit_json, emitted, stopped_because
        from .errors import UNWRITTEN
        from .history_commands import JUNIT_WRITTEN, write_refused_junit

        argv = list(sys.argv[1:] if args is None else args)
        emitted.clear()
        stopped_because.clear()
        JUNIT_WRITTEN.clear()
        UNWRITTEN.clear()
        try:
            code = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except SystemExit as stop:  # a run stopped before it had a result to show
            code = stop.code if isinstance(stop.code, int) else 1
            why = stopped_because[-1] if stopped_because else f"stopped (exit {code})"
            write_refused_junit(argv, why, code)
            if code and "--json" in argv and not emitted:
                emit_json({"passed": False, "error": why}, code)
            raise
        except click.ClickException as exc:
            from .errors import printable

            # It may quote a value given on the command line (click keeps it Final).
            exc.message = printable(exc.message)  # type: ignore[misc]
            exc.show()
            write_refused_junit(argv, exc.format_message(), exc.exit_code)
            if "--json" in argv and not emitted:  # a stopped run printed its own
                emit_json({"passed": False, "error": exc.format_message()}, exc.exit_code)
            code = exc.exit_code
        except click.Abort:  # Ctrl-C before the run took the signals over: nothing began
            click.echo("interrupted", err=True)
            code = EXIT_INTERRUPTED
            write_refused_junit(argv, "interrupted", code)
            if "--json" in argv and not emitted:
                emit_json({"passed": False, "error": "interrupted"}, code)
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)


@click.group(
    cls=TicketsGroup,
    epilog=EXIT_CODES_HELP,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(package_name="tickets")
@click.option(
    "--db",
    envvar=STORE_ENV,
    default=DEFAULT_STORE,
    show_default=True,
    metavar="PATH|URL",
    help=DB_HELP,
)
@click.option("--lock-file", metavar="PATH", help=LOCK_FILE_HELP)
@click.option("--connect-timeout", type=CONNECT_TIMEOUT, metavar="S", help=CONNECT_TIMEOUT_HELP)
@click.pass_context
def cli(ctx: click.Context, db: str, lock_file: str | None, connect_timeout: float | None) -> None:
    """A flash-sale simulator and oversell checker.

    Buyer processes search the remaining tickets, then lock, read, decrement
    and write the stock: a JSON ticket file, a SQLite database or a key on a
    Redis server. Every run is recorded as a history and checked: no seat
    sold twice, nothing sold that the store did not lose.
    """
    ctx.obj = StoreContext(db)
    ctx.obj.db_given = ctx.get_parameter_source("db") is click.core.ParameterSource.COMMANDLINE
    ctx.obj.lock_file = lock_file
    ctx.obj.connect_timeout = connect_timeout


COMMANDS = (
    init,
    status,
    buy,
    race,
    queue_command,
    explore_command,
    timeline_command,
    check,
    history_command,
    sale_group,
)
for command in COMMANDS:
    tailor(command)  # its own exit codes, and the shared options' words fitted to it
    cli.add_command(command)
explore_command.epilog = EXPLORE_EXIT_CODES


#: The modules that write the output: an OSError raised in them is stdout's.
WRITERS = ("click.utils", "rich.console")


def main() -> None:
    from .errors import ENTRY_POINT

    ENTRY_POINT.append(True)
    try:
        cli(prog_name="tickets")
    except BrokenPipeError:  # tickets ... | head: not an error worth a traceback
        drop_output()
        sys.exit(1)
    except OSError as exc:
        if not raised_writing_output(exc):
            raise
        drop_output()  # a full disk, /dev/full: one line, exit 3
        click.echo(f"Error: the output cannot be written ({exc.strerror})", err=True)
        sys.exit(EXIT_STORE)


def raised_writing_output(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and tb.tb_frame.f_globals.get("__name__") in WRITERS


def drop_output() -> None:
    """Point stdout at /dev/null: what is still buffered cannot fail at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
