"""``tickets init`` and ``tickets status``: the store itself."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import click

from ..constants import DEFAULT_TICKETS, MAX_COUNT
from .console import emit_json
from .errors import exit_with, printable, translate_errors
from .options import count_option, json_option, lock_timeout_option
from .store_options import StoreContext, db_option

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
        tickets init --db sqlite:sale.db --tickets 100
    """
    from pathlib import Path

    from ..locking.store_claim import SaleClaim, check_lock_path, restock
    from ..stores import open_store

    spec = obj.spec
    folder = Path(spec.path).parent if spec.path is not None else Path(".")
    made = missing_folders(folder)
    store = open_store(spec, lock_timeout)
    try:
        with translate_errors():
            folder.mkdir(parents=True, exist_ok=True)
            store.check_ready()
            check_lock_path(spec)
            if spec.kind == "redis":  # no named sale is selling this key, from any machine
                from ..named_sale.registry import check_not_selling

                check_not_selling(store)  # type: ignore[arg-type]
            claim = SaleClaim(spec, exclusive=True, timeout=lock_timeout)  # no sale running
            try:
                restock(store, tickets, lock_timeout)
            except BaseException:
                claim.close(undo=True)
                raise
            claim.close()
    except BaseException:
        for made_folder in made:  # an init that failed leaves nothing behind
            with contextlib.suppress(OSError):
                for leftover in made_folder.iterdir():  # the lock file it may have made
                    leftover.unlink()
                made_folder.rmdir()
        raise
    finally:
        store.close()
    if json_:
        emit_json({"count": tickets, "store": spec.label, "kind": spec.kind}, 0)
    else:
        click.echo(f"{printable(spec.label)}: {tickets} tickets left")  # as status says it
    exit_with(0)  # the answer is out: a late signal waits for the exit


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
    from ..stores import open_store

    spec = obj.spec
    store = open_store(spec)
    try:
        with translate_errors():
            count = store.load()
    finally:
        store.close()
    if json_:
        emit_json({"count": count, "store": spec.label, "kind": spec.kind}, 0)
    else:
        click.echo(f"{printable(spec.label)}: {count} tickets left")  # --db is outside text
    exit_with(0)
