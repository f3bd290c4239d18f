"""``tickets init`` and ``tickets status``: the store itself."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import click

from ..constants import DEFAULT_TICKETS, MAX_COUNT
from .console import emit_json
from .errors import translate_errors
from .options import (
    StoreContext,
    count_option,
    db_option,
    json_option,
    lock_timeout_option,
)

if TYPE_CHECKING:
    from pathlib import Path

pass_store = click.make_pass_decorator(StoreContext)


def missing_folders(folder: Path) -> list[Path]:
    """The folders ``mkdir(parents=True)`` would make, deepest first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


@click.command()
@count_option("--tickets", 0, MAX_COUNT, DEFAULT_TICKETS, "How many tickets the store holds.")
@lock_timeout_option("Give up after S seconds when another process holds the store's lock.")
@json_option
@db_option
@pass_store
def init(obj: StoreContext, tickets: int, lock_timeout: float, json_: bool) -> None:
    """Create or reset the store with N tickets.

    \b
    Example:
        tickets init --tickets 100
        tickets init --db sale.json --tickets 100
    """
    from .. import store
    from ..store_lock import SaleClaim, check_lock_path, restock

    made = missing_folders(obj.db.parent)
    try:
        with translate_errors():
            obj.db.parent.mkdir(parents=True, exist_ok=True)
            store.check_writable(obj.db)
            check_lock_path(obj.db)
            claim = SaleClaim(obj.db, exclusive=True, timeout=lock_timeout)  # no sale running
            try:
                restock(obj.db, tickets, lock_timeout)
            except BaseException:
                claim.close(undo=True)
                raise
            claim.close()
    except BaseException:
        for folder in made:  # an init that failed leaves nothing behind
            with contextlib.suppress(OSError):
                for leftover in folder.iterdir():  # the lock file it may have made
                    leftover.unlink()
                folder.rmdir()
        raise
    if json_:
        emit_json({"count": tickets, "store": str(obj.db)}, 0)
    else:
        click.echo(f"{obj.db}: {tickets} tickets left")  # as status says it


@click.command()
@json_option
@db_option
@pass_store
def status(obj: StoreContext, json_: bool) -> None:
    """Show how many tickets are left.

    \b
    Example:
        tickets status --json
    """
    from .. import store

    with translate_errors():
        count = store.load(obj.db)
    if json_:
        emit_json({"count": count, "store": str(obj.db)}, 0)
    else:
        click.echo(f"{obj.db}: {count} tickets left")
