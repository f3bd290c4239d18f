"""``buy --exec CMD`` and its companions: the user's command as the buyer.

Which stock a command buyer's sale is judged by: ``--stock-cmd CMD`` (a
command that prints it, run before and after the sale), or the tool's own
store when ``--db`` on the command line names the store the command sells
from (it gets its URL as ``$TICKETS_STORE``). With neither, nothing can read
the stock: the checks that need it do not run and the verdict is "not
proven" (exit 5). Only click is imported at module level (see
:mod:`tickets.cli`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..constants import DEFAULT_EXEC_TIMEOUT, DEFAULT_SOLD_OUT_EXIT, UNREAD_STOCK

if TYPE_CHECKING:
    from typing import TypedDict

    from ..locking.strategies import Strategy

    class ExecFields(TypedDict, total=False):
        """A BuyConfig's fields of ``--exec`` and ``--stock-cmd`` (see :func:`exec_fields`)."""

        command: str | None
        stock_cmd: str | None
        sold_out_exit: int
        ticket_ids: bool
        #: where the stock is read, when not the tool's store
        stock: str
        #: a command buyer's: no lock (the command locks as it will)
        strategy: Strategy
        #: None: the stock is kept where the tool does not restock it
        tickets: int | None


#: A command that options are added to: returned as it came.
F = TypeVar("F", bound=Callable[..., object])

EXEC_HELP = (
    "Buy with a command: each buyer runs CMD once (sh -c) with $TICKETS_BUYER, $TICKETS_RUN "
    "and, when --db names the store it sells from, $TICKETS_STORE. Exit 0 with the ticket on "
    "stdout's first line is a sale (a whole number is a seat: the count it took); the "
    "--sold-out-exit code is sold out; anything else, or --buyer-timeout "
    f"(default {DEFAULT_EXEC_TIMEOUT:g} s), is unknown."
)
STOCK_CMD_HELP = (
    "A command that prints the stock (a whole number): read before and after the sale, for "
    "the stock checks when it is kept elsewhere (a service's database)."
)


def exec_options(f: F) -> F:
    """``--exec``, ``--stock-cmd``, ``--sold-out-exit`` and ``--ticket-ids``."""
    options = [
        click.option("--exec", "exec_cmd", metavar="CMD", help=EXEC_HELP),
        click.option("--stock-cmd", metavar="CMD", help=STOCK_CMD_HELP),
        click.option(
            "--sold-out-exit",
            type=click.IntRange(1, 255),
            default=DEFAULT_SOLD_OUT_EXIT,
            show_default=True,
            metavar="N",
            help="The exit code of an --exec buyer that means sold out (22: curl --fail's "
            "on an HTTP error; answer sold out with a 4xx).",
        ),
        click.option(
            "--ticket-ids",
            is_flag=True,
            help="Take every ticket an --exec buyer prints as an id, never a seat "
            "(uniqueness and count checks only).",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _given(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT


def exec_fields(ctx: click.Context, opts: dict[str, Any]) -> ExecFields:
    """The BuyConfig fields of --exec and --stock-cmd, the sale's strategy
    and restock among them when --exec or the stock's place changes them."""
    from .store_options import StoreContext

    command, stock_cmd = opts.pop("exec_cmd"), opts.pop("stock_cmd")
    sold_out, ids = opts.pop("sold_out_exit"), opts.pop("ticket_ids")
    for name, flag in (("sold_out_exit", "--sold-out-exit"), ("ticket_ids", "--ticket-ids")):
        if command is None and _given(ctx, name):
            raise click.UsageError(f"{flag} is for --exec (a command buyer)")
    out: ExecFields = {
        "command": command,
        "stock_cmd": stock_cmd,
        "sold_out_exit": sold_out,
        "ticket_ids": ids,
    }
    if command is None and stock_cmd is None:
        return out
    if command is None and ctx.params.get("buy_code") is None:
        raise click.UsageError(
            "--stock-cmd is for --exec or --buy: the built-in buyers sell from the tool's store"
        )
    obj = ctx.find_object(StoreContext)
    db_given = obj is not None and obj.db_given
    if command is not None:
        if ctx.params.get("pause_length") is not None:
            raise click.UsageError(
                "--pause-length pauses buyers holding the tool's lock; an --exec buyer holds none"
            )
        if _given(ctx, "strategy"):
            raise click.UsageError("--lock does not apply to --exec: the command locks as it will")
        from ..locking.strategies import NO_LOCK

        out["strategy"] = NO_LOCK
    if stock_cmd is not None and db_given and command is not None:
        raise click.UsageError(
            "--db and --stock-cmd both say where the stock is: give --db if the command sells "
            "from that store, --stock-cmd if it keeps the stock elsewhere"
        )
    if stock_cmd is not None:
        out["stock"] = "command"
    elif not db_given:
        out["stock"] = UNREAD_STOCK
    if "stock" in out:  # kept by the command, or nowhere the tool can read
        for name, flag in (("tickets", "--tickets"), ("keep_stock", "--keep-stock")):
            if _given(ctx, name):
                raise click.UsageError(
                    f"{flag} is for the tool's own store; the command's stock is kept "
                    "elsewhere: set it there (--stock-cmd reads it)"
                )
        out["tickets"] = None
    return out
