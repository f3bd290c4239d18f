"""Named sales on Redis (see :mod:`tickets.named_sale.registry`): ``buy --sale NAME
--hosts N`` and its companions, and ``tickets sale list|show|drop``.

Only click is imported at module level (see :mod:`tickets.cli`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..constants import MAX_HOSTS
from .console import emit_json, make_console
from .errors import UnusableFile, exit_with, translate_errors
from .options import json_option
from .params import Amount
from .store_options import StoreContext, db_option

if TYPE_CHECKING:
    from typing import TypedDict

    from ..named_sale.registry import NamedSale
    from ..stores.redis import RedisStore

    class NamedSaleFields(TypedDict, total=False):
        """A BuyConfig's fields of ``--sale``, ``--hosts`` and ``--join-timeout``."""

        sale: str
        hosts: int
        join_timeout: float
        #: a named sale sells the stock as it is
        tickets: int | None


#: A command that options are added to: returned as it came.
F = TypeVar("F", bound=Callable[..., object])


def named_sale_options(f: F) -> F:
    """``--sale``, ``--hosts`` and ``--join-timeout`` for ``buy``."""
    options = [
        click.option(
            "--sale",
            metavar="NAME",
            help="Join the named sale on the Redis store: every host that gives the same NAME "
            "and --hosts starts together, streams its history to the sale, and `check --sale "
            "NAME` judges them as one.",
        ),
        click.option(
            "--hosts",
            type=click.IntRange(1, MAX_HOSTS),
            default=1,
            show_default=True,
            metavar="N",
            help="How many hosts the named sale waits for before it starts.",
        ),
        click.option(
            "--join-timeout",
            type=Amount(0, 86_400, min_open=True),
            default=60.0,
            show_default=True,
            metavar="S",
            help="How long a host waits for the others to join (then it leaves: exit 4).",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def sale_fields(ctx: click.Context, opts: dict[str, Any]) -> NamedSaleFields:
    """The BuyConfig fields of --sale, --hosts and --join-timeout."""
    sale, hosts, wait = opts.pop("sale"), opts.pop("hosts"), opts.pop("join_timeout")
    if sale is None:
        for name, flag in (("hosts", "--hosts"), ("join_timeout", "--join-timeout")):
            if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT:
                raise click.UsageError(f"{flag} is for a named sale (--sale NAME)")
        return {}
    if ctx.get_parameter_source("tickets") is not click.core.ParameterSource.DEFAULT:
        raise click.UsageError(
            "--tickets restocks; a named sale's hosts sell the stock as it is: prepare it "
            "once with `tickets init --tickets N`, then start every host"
        )
    return {"sale": sale, "hosts": hosts, "join_timeout": wait, "tickets": None}


def sale_store(ctx: click.Context) -> RedisStore:
    """The Redis store ``--db`` names, where named sales live (a usage error
    for any other store)."""
    from ..stores.redis import RedisStore

    obj = ctx.find_object(StoreContext)
    assert obj is not None
    spec = obj.spec
    if spec.kind != "redis":
        raise click.UsageError("a named sale lives on a Redis store: give --db redis://HOST...")
    return RedisStore(spec)


def named_sale(ctx: click.Context, name: str) -> NamedSale:
    """The sale ``name`` on the store ``--db`` names."""
    from ..named_sale.registry import NamedSale, check_name

    try:
        check_name(name)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="NAME") from None
    return NamedSale(sale_store(ctx), name)


@click.group("sale")
def sale_group() -> None:
    """Named sales on a Redis store: list, show, drop.

    \b
    Examples:
        tickets --db redis://127.0.0.1:6379 sale list
        tickets --db redis://127.0.0.1:6379 sale show flash1
    """


@sale_group.command("list")
@json_option
@db_option
@click.pass_context
def sale_list(ctx: click.Context, json_: bool) -> None:
    """The sales on the store's server, with their state and hosts.

    \b
    Examples:
        tickets --db redis://127.0.0.1:6379 sale list
        tickets --db redis://127.0.0.1:6379 sale list --json
    """
    from ..named_sale.registry import NamedSale, sale_names

    with translate_errors():
        store = sale_store(ctx)
        try:
            found = [NamedSale(store, n).describe() for n in sale_names(store)]
        finally:
            store.close()
    docs = [d for d in found if d is not None]  # dropped meanwhile
    if json_:
        emit_json({"sales": docs}, 0)
        exit_with(0)
    from rich.table import Table

    table = Table(title=f"{len(docs)} sale(s)")
    for name in ("sale", "state", "hosts", "key", "stock", "events"):
        table.add_column(name)
    for d in docs:
        table.add_row(
            d["name"],
            d["state"],
            f"{len(d['joined'])}/{d['hosts']}",
            d["key"],
            str(d["stock"]),
            str(d["events"]),
        )
    make_console().print(table)
    exit_with(0)


@sale_group.command("show")
@click.argument("name")
@json_option
@db_option
@click.pass_context
def sale_show(ctx: click.Context, name: str, json_: bool) -> None:
    """One sale: its state, stock, hosts and how many history lines it holds.

    \b
    Examples:
        tickets --db redis://127.0.0.1:6379 sale show flash1
        tickets --db redis://127.0.0.1:6379 sale show flash1 --json
    """
    with translate_errors():
        sale = named_sale(ctx, name)
        doc = sale.describe()
        sale.store.close()
    if doc is None:
        raise UnusableFile(f"sale {name}: no such sale on this server")
    if json_:
        emit_json(doc, 0)
    else:
        lines = [
            f"sale {doc['name']}: {doc['state']}, {len(doc['joined'])} of {doc['hosts']} "
            f"hosts, key {doc['key']}, stock {doc['stock']} at the start, "
            f"{doc['events']} history lines"
        ]
        lines += [
            f"  {h['host']}: run {h.get('run_id', '?')}, {h.get('buyers', '?')} buyers"
            for h in doc["joined"]
        ]
        click.echo("\n".join(lines))
    exit_with(0)


@sale_group.command("drop")
@click.argument("name")
@db_option
@click.pass_context
def sale_drop(ctx: click.Context, name: str) -> None:
    """Remove a sale's keys (its state, hosts and history stream).

    \b
    Examples:
        tickets --db redis://127.0.0.1:6379 sale drop flash1
    """
    with translate_errors():
        sale = named_sale(ctx, name)
        dropped = sale.drop()
        sale.store.close()
    if not dropped:
        raise UnusableFile(f"sale {name}: no such sale on this server")
    click.echo(f"sale {name}: dropped")
    exit_with(0)
