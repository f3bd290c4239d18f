"""``tickets check`` and ``tickets timeline``: saved histories."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..constants import ROWS_KEPT
from ..errors import TicketsError
from .console import emit_json, make_console, picture_width, sanitising
from .errors import (
    UNWRITTEN,
    done_answering,
    exit_code_for,
    exit_with,
    printable,
    translate_errors,
)
from .options import json_option
from .params import Count
from .store_options import db_option

if TYPE_CHECKING:
    from pathlib import Path

    from ..check.history import History
    from ..check.housekeeping import Entry
    from ..render.junit import Checked

F = TypeVar("F", bound=Callable[..., Any])


class OutputFile(click.ParamType[str]):
    """A path an output (``--svg``, ``--html``, ``--junit-xml``) may be written to, checked as
    it is parsed: a bad one stops the command before any sale runs (exit 3,
    as for a history or a store: see :mod:`tickets.render.files`)."""

    name = "file"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from ..render.files import check_output_path

        if not isinstance(value, str):
            self.fail(f"{value!r} is not a path", param, ctx)
        if not value:
            self.fail("give a file path, not an empty one", param, ctx)
        if value == "-":
            self.fail(
                "'-' is not stdout here: give a file path (./- for a file named -)", param, ctx
            )
        with translate_errors():
            check_output_path(value, param.opts[0] if param is not None else "the option")
        return value


#: The option that writes the verdict as JUnit XML (see tickets.render.junit).
JUNIT_FLAG = "--junit-xml"


def junit_option(f: F) -> F:
    """``--junit-xml PATH`` on a command that gives a verdict."""
    return click.option(
        JUNIT_FLAG,
        "junit_xml",
        type=OutputFile(),
        metavar="PATH",
        help="Also write the verdict as JUnit XML (a CI system's test report), whatever "
        "it is: a NOT PROVEN verdict is a failure there.",
    )(f)


def write_junit(path: str | None, build: Callable[[], bytes]) -> None:
    """Write the report ``build`` makes to ``path`` (given), whole or not at
    all, before the answer is shown. One that cannot be written (a full
    disk) does not hide the verdict: it is said after it, and a command
    that passed exits 3 (see tickets.cli.errors.UNWRITTEN)."""
    if path is None:
        return
    from ..render.files import write_output

    try:
        write_output(path, build().decode("utf-8"), JUNIT_FLAG)
    except (OSError, TicketsError) as exc:  # the verdict is still shown, then this
        UNWRITTEN.append(printable(str(exc)))
        return
    JUNIT_WRITTEN.append(path)
    click.echo(f"wrote {printable(path)}", err=True)


#: --junit-xml reports written by this process (a refused command writes its own)
JUNIT_WRITTEN: list[str] = []


def start_junit(path: str | None, command: str) -> None:
    """Before a run begins, its report is an error saying it has not
    finished: a run killed outright (a CI job's hard timeout, SIGKILL, the
    OOM killer) leaves that, never an earlier run's green. Replaced by the
    verdict when the run ends."""
    if path is None:
        return
    from ..render.files import write_output
    from ..render.junit import refused_xml

    words = f"tickets {command} did not finish: it was killed or stopped before its verdict"
    try:
        write_output(path, refused_xml(command, words, None).decode("utf-8"), JUNIT_FLAG)
    except (OSError, TicketsError) as exc:  # said again, after the verdict
        UNWRITTEN.append(printable(str(exc)))


def junit_path(argv: Sequence[str]) -> str | None:
    """The --junit-xml path given on the command line, if any."""
    for i, word in enumerate(argv):
        if word == JUNIT_FLAG and i + 1 < len(argv):
            return argv[i + 1]
        if word.startswith(JUNIT_FLAG + "="):
            return word.split("=", 1)[1]
    return None


def write_refused_junit(argv: Sequence[str], message: str, code: int) -> None:
    """A command that ended without its report (refused, stopped before a
    result) replaces an earlier report at --junit-xml with an error saying
    why: left there, it would show green beside a red job. Where there is
    no earlier report, nothing is made (a refused command changes nothing)."""
    path = junit_path(argv)
    if path is None or JUNIT_WRITTEN or not code:
        return
    from ..render.files import an_earlier_output, write_output
    from ..render.junit import refused_xml

    if not os.path.isfile(path) or os.path.islink(path) or not an_earlier_output(path):
        return  # nothing stale to replace: a refused command makes no file

    command = next((w for w in argv if not w.startswith("-") and w in COMMAND_NAMES), "")
    try:
        write_output(path, refused_xml(command, message, code).decode("utf-8"), JUNIT_FLAG)
    except (OSError, TicketsError):
        return
    JUNIT_WRITTEN.append(path)


#: The commands that take --junit-xml.
COMMAND_NAMES = ("buy", "race", "queue", "check", "explore")


@click.command()
@click.argument("histories", nargs=-1, type=click.Path(path_type=str))
@click.option(
    "--one-sale",
    is_flag=True,
    help="Judge the histories as one sale (--keep-stock runs on one store): "
    "a seat sold by two runs counts as sold twice.",
)
@click.option(
    "--sale",
    "sale_name",
    metavar="NAME",
    help="Judge the named sale on the Redis store, every host's history as one, "
    "from the sale's stream (instead of files).",
)
@json_option
@junit_option
@db_option
@click.pass_context
def check(
    ctx: click.Context,
    histories: tuple[str, ...],
    one_sale: bool,
    sale_name: str | None,
    json_: bool,
    junit_xml: str | None,
) -> None:
    """Check saved histories: each on its own, or as one sale.

    With none, the store's newest history. A folder stands for every
    history (*.jsonl) in it and in its folders. Several histories are checked one by one, each
    with its verdict; --one-sale judges them together.

    \b
    Examples:
        tickets check                      # the newest history
        tickets check history/
        tickets check history/*.jsonl --json
        tickets check a.jsonl b.jsonl --one-sale
    """
    from ..check.history import expand
    from ..render.json_documents import report_dict
    from ..render.junit import check_xml

    if sale_name is not None:
        check_named_sale(ctx, sale_name, histories, json_, junit_xml)
        return
    if not histories:
        histories = (newest_history(ctx, "check"),)
    with translate_errors():
        paths = expand(histories)
        if one_sale or len(paths) == 1:
            checked = [judged_as_one(paths)]
            report, results = checked[0].report, None
        else:  # one at a time: memory for one history, not all
            checked = [judged(p) for p in paths]
            results = [(c.name, c.report) for c in checked]
    reports = [c.report for c in checked]
    passed = all(r.passed for r in reports)
    unproven = not passed and all(r.passed or r.unproven for r in reports)
    code = exit_code_for(passed, None, unproven=unproven)
    write_junit(junit_xml, lambda: check_xml(checked, code))
    if json_ and results is None:
        emit_json({**report_dict(report), "histories": paths}, code)
    elif json_:
        docs = [{"history": p, **report_dict(r)} for p, r in results or ()]
        emit_json({"passed": passed, "results": docs}, code)
    else:
        from ..render.tables import check_view, each_view

        view = check_view(report, paths) if results is None else each_view(results)
        done_answering()  # a signal lets the verdict out, or cuts it where it is stuck
        make_console().print(view)
    exit_with(code)


def judged(path: str) -> Checked:
    """One history, checked on its own (its run line kept for the report)."""
    from ..check.history import read
    from ..check.verdict import check_history
    from ..render.junit import Checked

    started = time.monotonic()
    history = read(path)
    report = check_history(history)
    return Checked(path, report, [history.run], [path], time.monotonic() - started)


def judged_as_one(paths: list[str]) -> Checked:
    """One history, or several judged as one sale (``--one-sale``)."""
    from ..check.history import read
    from ..check.sale import check_histories
    from ..render.junit import Checked

    started = time.monotonic()
    loaded = [read(p) for p in paths]
    report = check_histories(loaded)
    name = paths[0] if len(paths) == 1 else f"one sale of {len(paths)} histories"
    runs = [h.run for h in loaded]
    return Checked(name, report, runs, paths, time.monotonic() - started)


def check_named_sale(
    ctx: click.Context, name: str, histories: tuple[str, ...], json_: bool, junit_xml: str | None
) -> None:
    """``check --sale NAME``: every host's history from the sale's stream, as one."""
    from ..check.sale import check_sale
    from ..named_sale.stream import sale_histories
    from ..render.json_documents import report_dict
    from ..render.junit import Checked, check_xml
    from .sale_group import named_sale

    if histories:
        raise click.UsageError("--sale reads the sale's histories from Redis; give no files")
    with translate_errors():
        sale = named_sale(ctx, name)
        try:
            found = sale_histories(sale)
            final = sale.final()
        finally:
            sale.store.close()
        report = check_sale(found, *final)
    code = exit_code_for(report.passed, None, unproven=report.unproven)
    runs, paths = [h.run for h in found], [h.path for h in found]
    write_junit(junit_xml, lambda: check_xml([Checked(f"sale {name}", report, runs, paths)], code))
    hosts = [
        {"host": h.run.get("host"), "run_id": h.run["run_id"], "clock": h.run.get("clock")}
        for h in found
    ]
    if json_:
        emit_json({**report_dict(report), "sale": name, "hosts": hosts}, code)
    else:
        from ..render.tables import check_view

        done_answering()
        make_console().print(check_view(report, [h.path for h in found]))
    exit_with(code)


@click.command("timeline")
@click.argument("history", required=False, type=click.Path(path_type=str))
@click.option(
    "--sale",
    "sale_name",
    metavar="NAME",
    help="Draw the named sale on the Redis store: every host's buyers on the "
    "server's clock, from the sale's stream.",
)
@click.option("--svg", type=OutputFile(), help="Also write the picture as SVG.")
@click.option("--html", type=OutputFile(), help="Also write it as HTML.")
@click.option(
    "--width",
    type=click.IntRange(60, 1000),
    help="Columns to draw in (default: the terminal's, 120 for files).",
)
@click.option(
    "--all", "show_all", is_flag=True, help="Draw every buyer (default: at most 60 rows)."
)
@db_option
@click.pass_context
def timeline_command(
    ctx: click.Context,
    history: str | None,
    sale_name: str | None,
    svg: str | None,
    html: str | None,
    width: int | None,
    show_all: bool,
) -> None:
    """Draw a saved history on a time axis, one row per buyer.

    Each buyer's search, wait for the lock and read-modify-write are bars on
    one shared axis; seats sold twice are red, with the buyers that share
    them, so the overlapping read-modify-writes that lost updates show.

    With no HISTORY, the store's newest.

    \b
    Examples:
        tickets timeline                   # the newest history
        tickets timeline history/tickets-...-buy-none-123.jsonl
        tickets timeline run.jsonl --svg race.svg --html race.html
    """
    from ..check.history import read
    from ..render.timeline import MAX_ROWS, prepare, timeline

    if history is not None and sale_name is not None:
        raise click.UsageError("give a HISTORY file, or --sale NAME (not both)")
    if history is None and sale_name is None:
        history = newest_history(ctx, "timeline")
    limit = None if show_all else MAX_ROWS
    hosts: list[str] = []
    with translate_errors():
        if sale_name is not None:
            loaded, hosts = sale_picture(ctx, sale_name)
            history = loaded.path
        loaded = loaded if sale_name else read(str(history))
        if show_all and loaded.ops.size > ROWS_KEPT:
            raise click.UsageError(
                f"--all draws at most {ROWS_KEPT:,} rows; this history has "
                f"{loaded.ops.size:,} operations (without --all they are "
                "drawn binned in time)"
            )
        loaded, _, _ = prepare(loaded, limit)
    done_answering()  # the picture is the answer: a signal lets it out or cuts it
    console = make_console(width=width)
    for line in hosts:  # host names are the hosts' own words
        console.print(printable(line), markup=False, highlight=False)
    console.print(timeline(loaded, width=width or picture_width(console), limit=limit))
    if svg is not None or html is not None:
        picture = timeline(loaded, width=width or 120, limit=limit)
        export(picture, width or 120, str(history), svg, html)
    exit_with(0)


def newest_history(ctx: click.Context, command: str) -> str:
    """The store's newest history, for a command given none (said on
    stderr, so that a script's output stays its own); a usage error if
    there is none."""
    from ..check.housekeeping import history_folder, newest
    from .store_options import StoreContext

    obj = ctx.find_object(StoreContext)
    assert obj is not None
    folder = history_folder(obj.spec)
    found = newest(folder, obj.spec.identity())
    if found is None:
        raise click.UsageError(
            f"no history of {obj.spec.label} in {folder}/ to {command}: run a sale first, "
            "or name a history file"
        )
    click.echo(f"{command}: the newest history, {printable(str(found))}", err=True)
    return str(found)


def sale_picture(ctx: click.Context, name: str) -> tuple[History, list[str]]:
    """The named sale as one history to draw, and which buyers are whose."""
    from ..named_sale.stream import sale_as_one
    from .sale_group import named_sale

    sale = named_sale(ctx, name)
    try:
        return sale_as_one(sale)
    finally:
        sale.store.close()


def export(picture: object, width: int, history: str, svg: str | None, html: str | None) -> None:
    """Write the picture as SVG and/or HTML: rich records what it prints and
    exports the recording (one draw, both files)."""
    import io

    from rich.console import Console

    from ..render.files import marked, write_output

    recorder = Console(
        record=True, width=width, file=io.StringIO(), color_system="truecolor", markup=False
    )
    sanitising(recorder).print(picture)  # an escape code is not even XML
    title = f"tickets timeline: {printable(os.path.basename(history))}"
    for path, kind in ((svg, "svg"), (html, "html")):
        if path is None:
            continue
        if kind == "svg":
            text = offline_svg(recorder.export_svg(title=title, clear=False))
        else:
            text = titled_html(recorder.export_html(clear=False), title)
        text = marked(text)
        with translate_errors():
            write_output(path, text, f"--{kind}")
        click.echo(f"wrote {printable(path)}", err=True)


def offline_svg(svg: str) -> str:
    """rich's SVG fetches its font from a CDN: keep only the local sources
    (and the monospace fallback), so the picture renders offline."""
    import re

    return re.sub(r',\s*url\("https?://[^"]*"\) format\("[^"]*"\)', "", svg)


def titled_html(page: str, title: str) -> str:
    """rich's HTML page has no <title>: give it one."""
    import html

    return page.replace("<head>", f"<head>\n<title>{html.escape(title)}</title>", 1)


def parse_age(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """``90s``, ``30m``, ``12h``, ``7d`` -> seconds. A bare number is
    refused: ``--older-than 7`` meant as days would remove nearly all."""
    if value is None:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
    text = value.strip().lower()
    scale = units.get(text[-1:], None)
    try:
        seconds = float(text[:-1]) * scale if scale else -1.0
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise click.BadParameter(
            f"{value!r} is not an age; write 90s, 30m, 12h or 7d (a number and its unit)"
        )
    return seconds


@click.command("history")
@click.option("--keep", type=Count(0, 1_000_000), help="Remove all but the N newest histories.")
@click.option(
    "--older-than",
    metavar="AGE",
    callback=parse_age,
    help="Remove histories older than AGE: 30m, 12h, 7d.",
)
@json_option
@db_option
@click.pass_context
def history_command(
    ctx: click.Context, keep: int | None, older_than: float | None, json_: bool
) -> None:
    """List the store's histories, newest first, with their verdicts; prune old ones.

    Only this store's histories are removed, each with its .log; a history
    whose run is still going never is, nor another store's history, nor a
    file that does not read as a history (listed as "other store" or
    "unreadable").

    \b
    Examples:
        tickets history
        tickets history --keep 20
        tickets history --older-than 7d --json
    """
    import time

    from ..check.housekeeping import entries, history_folder, prune, to_prune
    from .store_options import StoreContext

    obj = ctx.find_object(StoreContext)
    assert obj is not None
    folder = history_folder(obj.spec)
    with translate_errors():
        listed = entries(folder, obj.spec.identity())
        removed = prune(to_prune(listed, keep, older_than, time.time()))
    gone = {e.path for e in removed}
    kept = [e for e in listed if e.path not in gone]
    if json_:
        rows = [
            {
                "path": str(e.path),
                "modified": round(e.modified, 3),
                "mode": e.mode,
                "strategy": e.strategy,
                "verdict": e.verdict,
            }
            for e in kept
        ]
        emit_json(
            {"folder": str(folder), "histories": rows, "removed": [str(e.path) for e in removed]}, 0
        )
    else:
        show_histories(folder, kept, removed)
    exit_with(0)  # the answer is out: a late signal waits for the exit


def show_histories(folder: Path, kept: list[Entry], removed: list[Entry]) -> None:
    import time

    from rich.table import Table
    from rich.text import Text

    styles = {
        "passed": "green",
        "failed": "bold red",
        "running": "yellow",
        "not proven": "bold yellow",
    }
    where = printable(str(folder))
    table = Table(title=Text(f"{len(kept)} histories in {where}, newest first"))
    for name in ("modified", "mode", "strategy", "verdict", "history"):
        table.add_column(name)
    for e in kept:  # what a history's run line says is outside text
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.modified))
        verdict = Text(printable(e.verdict), styles.get(e.verdict, "magenta"))
        table.add_row(
            when,
            Text(printable(e.mode or "?")),
            Text(printable(e.strategy or "?")),
            verdict,
            Text(printable(e.path.name)),
        )
    console = make_console()
    console.print(table if kept else Text(f"no histories in {where}"))
    if removed:
        console.print(Text(f"removed {len(removed)} histories"))
