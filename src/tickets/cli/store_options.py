"""``--db`` and its companions: which store a command works on.

``--db`` takes a path or a URL (see :mod:`tickets.stores.spec`), before the
command or after it; ``--lock-file`` and ``--connect-timeout`` go with it.
Only click is imported at module level (see :mod:`tickets.cli`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import click

from .params import Amount

if TYPE_CHECKING:
    from ..stores.spec import StoreSpec

#: A command (or a group) that options are added to: returned as it came.
F = TypeVar("F", bound=Callable[..., object])


class StoreContext:
    """The group's context object: the store every command works on, as
    ``--db`` (a path or URL), ``--lock-file`` and ``--connect-timeout`` gave it."""

    def __init__(self, db: str) -> None:
        self.db_text = db
        #: named by --db on the command line (not $TICKETS_DB, not the default)
        self.db_given = False
        self.lock_file: str | None = None
        self.connect_timeout: float | None = None

    @property
    def spec(self) -> StoreSpec:
        """The parsed store; a malformed URL is a usage error naming --db
        (and never its password)."""
        from ..stores.spec import BadStoreURL, lock_clash, parse_db

        if self.lock_file == "":
            raise click.BadParameter("give a file path, not an empty one", param_hint="--lock-file")
        try:
            spec = parse_db(
                self.db_text, lock_file=self.lock_file, connect_timeout=self.connect_timeout
            )
        except BadStoreURL as exc:
            raise click.BadParameter(str(exc), param_hint="--db") from None
        clash = lock_clash(spec)
        if clash is not None:
            raise click.BadParameter(clash, param_hint="--lock-file")
        return spec


def _set_store(ctx: click.Context, param: click.Parameter, value: str | float | None) -> None:
    """``--db``, ``--lock-file`` (text) or ``--connect-timeout`` (seconds) after the command."""
    if value is not None:
        obj = ctx.find_object(StoreContext)
        assert obj is not None, "the group sets the store first"
        setattr(obj, {"db": "db_text"}.get(str(param.name), str(param.name)), value)
        if param.name == "db":
            obj.db_given = True


DB_HELP = (
    'The ticket store: a JSON file {"count": N} (default: tickets.json, or $TICKETS_DB), '
    "sqlite:PATH (sqlite:////absolute/path), "
    "redis://[USER:PASSWORD@]HOST[:PORT][/DB][?key=NAME] or "
    "postgresql://…?table=T&key=K (libpq's URL; pip install 'tickets[postgres]')."
)
LOCK_FILE_HELP = (
    "The file the file and flock strategies lock (default: <store>.lock beside a file "
    "store; for Redis redis-<port>-<db>-<key>.lock, for PostgreSQL "
    "postgres-<db>-<table>-<key>.lock, in $XDG_RUNTIME_DIR/tickets, else "
    "/tmp/tickets-UID)."
)
CONNECT_TIMEOUT_HELP = "Give up on a store's server after S seconds (default 2)."


#: --connect-timeout's range (seconds)
CONNECT_TIMEOUT = Amount(0, 60, min_open=True)


def db_option(f: F) -> F:
    """``--db``, ``--lock-file`` and ``--connect-timeout`` after the command
    name too (``tickets buy --db sqlite:sale.db``)."""
    options = [
        click.option(
            "--db",
            metavar="PATH|URL",
            help=DB_HELP + " Also accepted before the command.",
            expose_value=False,
            callback=_set_store,
        ),
        click.option(
            "--lock-file",
            metavar="PATH",
            help=LOCK_FILE_HELP,
            expose_value=False,
            callback=_set_store,
        ),
        click.option(
            "--connect-timeout",
            type=CONNECT_TIMEOUT,
            metavar="S",
            help=CONNECT_TIMEOUT_HELP,
            expose_value=False,
            callback=_set_store,
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f
