"""What the commands print with: consoles, the JSON printer, the live line.

rich is imported only when something is drawn (see :mod:`tickets.cli`).
"""

from __future__ import annotations

import os
import sys
from collections import deque
from collections.abc import Callable, Mapping
from typing import IO, TYPE_CHECKING, Any, TypeVar

import click

from ..constants import EXIT_STORE
from .errors import (
    answered,
    done_answering,
    exit_code_for,
    exit_with,
    hold_signals,
    printable,
    translate_errors,
)

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, ConsoleRenderable, RenderResult
    from rich.live import Live

    from ..engine.ledger import Progress, RunResult

#: What a run returns (a sale's result, a race's).
R = TypeVar("R")


#: The width of output that goes to a file or a pipe.
UNWRAPPED = 1000


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _consoles() -> tuple[type[Console], type[Console]]:
    """Consoles that never crop a line: what is drawn fits the width
    already, but for a path shown whole (tickets.render.tables.Whole),
    which the terminal wraps without a newline in it. The plain one's
    lines lose their trailing spaces too (tables pad them)."""
    from rich.console import Console

    class WholeLines(Console):
        def print(self, *objects: object, **kwargs: Any) -> None:
            kwargs.setdefault("crop", False)
            super().print(*objects, **kwargs)

    class PlainConsole(WholeLines):
        def print(self, *objects: object, **kwargs: Any) -> None:
            with self.capture() as captured:
                super().print(*objects, **kwargs)
            lines = captured.get().split("\n")
            self.file.write("\n".join(line.rstrip() for line in lines))

    return WholeLines, PlainConsole


class _Printable:
    """A renderable drawn with every unprintable character of its text as
    ``?`` (rich's own escape codes, control segments, are left alone)."""

    def __init__(self, inner: ConsoleRenderable) -> None:
        self.inner = inner

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from rich.segment import Segment

        for segment in console.render(self.inner, options):
            text = segment.text
            if segment.control or text.isprintable() or text == "\n":
                yield segment
            else:
                lines = "\n".join(printable(line) for line in text.split("\n"))
                yield Segment(lines, segment.style)


class _EveryPrint:
    """A render hook: nothing a console prints reaches the terminal raw. The
    views sanitise the outside text they show (so columns line up); this is
    the net under them (issue #22: escape sequences in file names, a user
    buyer's exception, a store path)."""

    def process_renderables(self, renderables: list[ConsoleRenderable]) -> list[ConsoleRenderable]:
        return [_Printable(r) for r in renderables]


def sanitising(console: Console) -> Console:
    """``console`` with the net of :class:`_EveryPrint` under what it prints."""
    console.push_render_hook(_EveryPrint())  # type: ignore[arg-type]
    return console


#: What a picture (a timeline) is drawn at in a log or a pipe, where the
#: console itself is unwrapped: a CI log's reader scrolls no 1,000 columns.
PICTURE_WIDTH = 120


def picture_width(console: Console) -> int:
    """The columns a timeline takes on ``console``: the terminal's, or
    PICTURE_WIDTH in a log or a pipe (unless COLUMNS says otherwise)."""
    return PICTURE_WIDTH if console.width >= UNWRAPPED else console.width


def make_console(stderr: bool = False, width: int | None = None) -> Console:
    # Plain text when the stream is not a terminal (rich's own rule) or when
    # NO_COLOR is set: rich would drop only the colours and keep bold.
    plain = bool(os.environ.get("NO_COLOR"))
    stream = sys.stderr if stderr else sys.stdout
    kind, plain_kind = _consoles()
    if not _is_terminal(stream):
        # A log or a pipe: no 80-column wrapping (a history's path stays on
        # one line, to copy or grep; tables still take only what they need)
        # and no trailing spaces.
        kind = plain_kind
        if width is None and not os.environ.get("COLUMNS"):
            width = UNWRAPPED
    columns = os.environ.get("COLUMNS", "")
    if width is None and columns.isascii() and columns.isdigit() and int(columns) > UNWRAPPED:
        width = UNWRAPPED  # COLUMNS=1000000 drew a timeline for half a minute
    console = kind(
        stderr=stderr,
        highlight=False,
        markup=False,  # text from outside (a file named "[red]x") is never markup
        soft_wrap=False,
        width=width,
        color_system=None if plain else "auto",
    )
    return sanitising(console)


#: --json documents printed by this process (a command prints at most one)
emitted: list[int] = []
#: why a run stopped, as said on stderr (for the --json document of a run
#: stopped before it had a result to show)
stopped_because: list[str] = []


def emit_json(doc: Mapping[str, object], exit_code: int) -> None:
    """One --json document on stdout, led by its ``schema`` and the command's
    ``exit_code`` (what a CI job gates on, with ``passed``). Every kind of
    document comes here, each with its own ``TypedDict`` (see
    tickets.render.json_documents): this reads nothing of it but ``passed``."""
    import json

    from ..constants import JSON_SCHEMA
    from .errors import with_unwritten

    if (failed := with_unwritten(exit_code)) != exit_code:  # a --junit-xml not written fails it
        from .errors import UNWRITTEN

        doc = {**doc, "error": UNWRITTEN[0]}
        exit_code = failed
    done_answering()  # a signal now lets the document out whole, or cuts it if it is stuck
    emitted.append(exit_code)  # cut short or not: no second document
    if exit_code and doc.get("passed"):
        # A signal that came as the run closed: the sale was clean, the
        # command was stopped. What CI gates on must agree with the exit code.
        doc = {**doc, "passed": False}
    click.echo(json.dumps({"schema": JSON_SCHEMA, "exit_code": exit_code, **doc}, indent=2))


#: Seconds between heartbeat lines on stderr when stdout is not a terminal
#: ($TICKETS_HEARTBEAT_S: a CI job that must show life more often, or less).
HEARTBEAT_ENV = "TICKETS_HEARTBEAT_S"
HEARTBEAT_S = 5.0
#: A run of this many operations gets a progress bar above its live line.
BAR_FROM = 1000
#: The live line's rate is measured over about this many seconds.
RATE_WINDOW_S = 3.0


def heartbeat_s() -> float:
    """The heartbeat's interval: $TICKETS_HEARTBEAT_S if it is a number of
    seconds from 0.1 to a day, else 5."""
    try:
        value = float(os.environ.get(HEARTBEAT_ENV, HEARTBEAT_S))
    except ValueError:
        return HEARTBEAT_S
    return value if 0.1 <= value <= 86_400 else HEARTBEAT_S


class LiveProgress:
    """A live line on a terminal while a run goes on. When stdout is a pipe
    or a log (or with --json, an empty label), a plain heartbeat line on
    stderr every HEARTBEAT_S instead: a long run in CI is seen to be alive."""

    def __init__(self, label: str, heartbeat_label: str = "") -> None:
        self.enabled = bool(label) and sys.stdout.isatty()
        self.label = label or heartbeat_label
        self._live: Live | None = None
        self._next_beat: float | None = None
        #: when the rate began to be measured, at how many done, for which run
        self._since: tuple[float, int, str | None] | None = None
        #: (time, done) of the last RATE_WINDOW_S: the rate now, not the mean
        self._samples: deque[tuple[float, int]] = deque()

    def __call__(self, p: Progress, label: str | None = None) -> None:
        line = printable(self._line(p, label)) + self._eta(p, label)  # a label names user code
        if not self.enabled:
            if p.done or p.total == 0:  # a run just begun has nothing to say yet (race)
                self._beat(line)
            return
        from rich.live import Live
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        # Rows of a grid: the bar above the line, each wrapped to the
        # terminal, never one cut line (a ProgressBar ends no line).
        shown = Table.grid()
        shown.add_column(overflow="fold")
        if p.total >= BAR_FROM:  # a long run: a bar too
            width = max(10, min(60, make_console().width - 1))
            shown.add_row(ProgressBar(total=p.total, completed=p.done, width=width))
        shown.add_row(Text(line))
        if self._live is None:
            # Started only now, after every child is forked, and without a
            # refresh thread: the parent never forks with threads running.
            self._live = Live(shown, auto_refresh=False, transient=True, console=make_console())
            self._live.start()
        self._live.update(shown, refresh=True)

    def _line(self, p: Progress, label: str | None) -> str:
        if p.noun == "order":
            line = f"{p.submitted:,}/{p.total:,} orders submitted, {p.done:,} done"
            if p.queue_depth is not None:
                line += f", queue depth {p.queue_depth:,}"
        else:
            line = f"{p.done:,}/{p.total:,} buyers done"
        return f"{label or self.label}: {line}, {p.sold:,} sold, {p.double_sold:,} oversold so far"

    def _eta(self, p: Progress, label: str | None = None) -> str:
        """``, 1,234/s, ETA 0:00:41`` once a rate is known: over the last
        few seconds of this run (forking a million buyers first is not the
        sale's pace). While tickets are left for fewer buyers than are still
        to come, most of those will find it sold out, far faster than the
        sales so far: the rate, and no ETA until the stock is gone."""
        import time

        now = time.monotonic()
        if self._since is None or self._since[2] != label or p.done < self._since[1]:
            self._since = (now, p.done, label) if p.done else None
            self._samples.clear()
            self._samples.append((now, p.done))
            return ""
        self._samples.append((now, p.done))
        while len(self._samples) > 2 and now - self._samples[1][0] >= RATE_WINDOW_S:
            self._samples.popleft()
        t0, done0 = self._samples[0]
        if now - self._since[0] < 1.0 or now == t0 or p.done == done0:
            return ""
        rate = (p.done - done0) / (now - t0)
        left_for = None if p.stock is None else p.stock - p.sold
        if p.noun != "order" and (left_for is None or 0 < left_for < p.total - p.done):
            return f", {rate:,.0f}/s"
        left = round((p.total - p.done) / rate)
        return f", {rate:,.0f}/s, ETA {left // 3600}:{left // 60 % 60:02}:{left % 60:02}"

    def _beat(self, line: str) -> None:
        import time

        now = time.monotonic()
        if self._next_beat is None:
            self._next_beat = now + heartbeat_s()  # a short run says nothing
        elif now >= self._next_beat:
            self._next_beat = now + heartbeat_s()
            try:
                click.echo(line, err=True)
            except OSError:  # stderr gone: the run goes on without its heartbeat
                pass

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


def run_live(
    label: str,
    what: str,
    run: Callable[[LiveProgress], R],
    show_partial: Callable[[R, int], None] | None = None,
    heartbeat_label: str = "",
) -> R:
    """Run with a live line on a terminal; core errors as exit codes.

    Ctrl-C, SIGTERM and SIGHUP stop the run (see tickets.engine.interrupts):
    what it sold so far is shown by ``show_partial``, then the command exits
    128 + the signal's number.
    """
    from ..engine import interrupts

    live = LiveProgress(label, heartbeat_label or label)
    try:
        with translate_errors(), interrupts.terminations_interrupt():
            try:
                result = run(live)
                hold_signals()  # the run has its answer: a late signal waits for it
            except BaseException as stopped:  # an interrupt, or a file that failed mid-run
                live.stop()
                partial = getattr(stopped, "result", None)
                if show_partial is not None and partial is not None:
                    code = EXIT_STORE  # a file that failed mid-run (see translate_errors)
                    if isinstance(stopped, KeyboardInterrupt):
                        code = interrupts.exit_code(stopped)
                    show_partial(partial, code)  # what was sold before it stopped
                raise
        done_answering()  # the live line goes and the answer is written: both can be cut
    except KeyboardInterrupt as interrupt:
        happened = interrupts.describe(interrupt)
        message = f"{happened}; the history records the {what} stopped as unknown"
        stopped_because.append(message)
        done_answering()
        click.echo(message, err=True)
        answered()
        sys.exit(interrupts.exit_code(interrupt))
    finally:
        live.stop()
    return result


def sell_and_exit(
    label: str,
    what: str,
    sell: Callable[[LiveProgress], RunResult],
    show: Callable[[RunResult, int], None],
    json_: bool,
) -> None:
    """Sell with the live line on a terminal (a heartbeat elsewhere), show
    the result, and exit with its code."""
    result = run_live("" if json_ else label, what, sell, show, label)
    unusable = result.store_error or result.broken  # exit 3
    code = exit_code_for(result.passed, result.aborted, unusable, result.report.unproven)
    show(result, code)
    exit_with(code)
