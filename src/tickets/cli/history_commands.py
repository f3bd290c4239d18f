"""``tickets check`` and ``tickets timeline``: saved histories."""

from __future__ import annotations

import os

import click

from ..constants import EXIT_CHECK_FAILED
from .console import emit_json, make_console
from .errors import UnusableFile, exit_with, translate_errors
from .options import json_option


@click.command()
@click.argument("histories", nargs=-1, required=True, type=click.Path(path_type=str))
@json_option
def check(histories: tuple[str, ...], json_: bool) -> None:
    """Check saved histories against the invariants.

    Several histories of --keep-stock runs on one store are checked as one
    sale: a seat sold by two runs counts as sold twice.

    \b
    Example:
        tickets check history/*.jsonl --json
    """
    from ..checks import check_histories
    from ..history import read
    from ..output.json_documents import report_dict

    with translate_errors():
        loaded = [read(p) for p in histories]
        report = check_histories(loaded)
    code = 0 if report.passed else EXIT_CHECK_FAILED
    if json_:
        emit_json({**report_dict(report), "histories": list(histories)}, code)
    else:
        from ..output.tables import check_view

        make_console().print(check_view(report, list(histories)))
    exit_with(code)


@click.command("timeline")
@click.argument("history", type=click.Path(path_type=str))
@click.option(
    "--svg", type=click.Path(dir_okay=False, path_type=str), help="Also write the picture as SVG."
)
@click.option(
    "--html", type=click.Path(dir_okay=False, path_type=str), help="Also write it as HTML."
)
@click.option(
    "--width",
    type=click.IntRange(60, 1000),
    help="Columns to draw in (default: the terminal's, 120 for files).",
)
@click.option(
    "--all", "show_all", is_flag=True, help="Draw every buyer (default: at most 60 rows)."
)
def timeline_command(
    history: str, svg: str | None, html: str | None, width: int | None, show_all: bool
) -> None:
    """Draw a saved history on a time axis, one row per buyer.

    Each buyer's search, wait for the lock and read-modify-write are bars on
    one shared axis; seats sold twice are red, with the buyers that share
    them, so the overlapping read-modify-writes that lost updates show.

    \b
    Examples:
        tickets timeline history/tickets-...-buy-none-123.jsonl
        tickets timeline run.jsonl --svg race.svg --html race.html
    """
    from ..history import read
    from ..output.timeline import MAX_ROWS, prepare, timeline

    limit = None if show_all else MAX_ROWS
    with translate_errors():
        loaded, _, _ = prepare(read(history), limit)
    console = make_console(width=width)
    console.print(timeline(loaded, width=width or console.width, limit=limit))
    if svg is not None or html is not None:
        export(timeline(loaded, width=width or 120, limit=limit), width or 120, history, svg, html)


def export(picture: object, width: int, history: str, svg: str | None, html: str | None) -> None:
    """Write the picture as SVG and/or HTML: rich records what it prints and
    exports the recording (one draw, both files)."""
    import io

    from rich.console import Console

    recorder = Console(record=True, width=width, file=io.StringIO(), color_system="truecolor")
    recorder.print(picture)
    for path, kind in ((svg, "svg"), (html, "html")):
        if path is None:
            continue
        try:
            if kind == "svg":
                title = f"tickets timeline: {os.path.basename(history)}"
                recorder.save_svg(path, title=title, clear=False)
            else:
                recorder.save_html(path, clear=False)
        except OSError as exc:
            raise UnusableFile(
                f"{path}: cannot be written ({exc.strerror}); choose another path"
            ) from None
        click.echo(f"wrote {path}", err=True)
