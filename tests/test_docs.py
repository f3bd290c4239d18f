"""The documentation (README.md and docs/*.md) documents every command,
option and exit code, and holds together: the README stays a short door,
every page is reachable, every relative link lands (after sqlite-utils'
tests/test_docs.py)."""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path
from typing import Any

import click
import pytest

from tickets import constants
from tickets.cli import cli

ROOT = Path(__file__).resolve().parent.parent
README_PATH = ROOT / "README.md"
DOCS_DIR = ROOT / "docs"
PAGES = sorted(DOCS_DIR.glob("*.md"))
README = README_PATH.read_text()
#: The whole documentation, the README first: what the tests below search.
DOCS = "\n".join([README, *(page.read_text() for page in PAGES)])
#: The map of docs/: GitHub shows docs/README.md when the folder is opened.
INDEX = DOCS_DIR / "README.md"


def test_readme_leads_with_run_and_test() -> None:
    head = README[:800]
    assert "make run" in head and "make test" in head


def test_readme_is_a_door() -> None:
    """Short enough to read through; the rest is in docs/."""
    assert len(README.splitlines()) <= 200


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_command_in_docs(name: str) -> None:
    assert f"tickets {name}" in DOCS


@pytest.mark.parametrize(
    "name, option",
    [
        (name, opt)
        for name, command in sorted(cli.commands.items())
        for param in command.params
        if isinstance(param, click.Option)
        for opt in param.opts
        if opt != "--help"
    ],
)
def test_option_in_docs(name: str, option: str) -> None:
    assert f"`{option}" in DOCS, f"{name} {option} is not documented"


@pytest.mark.parametrize(
    "code",
    [
        constants.EXIT_OK,
        constants.EXIT_CHECK_FAILED,
        constants.EXIT_USAGE,
        constants.EXIT_STORE,
        constants.EXIT_ABORTED,
        constants.EXIT_INTERRUPTED,
        constants.EXIT_HANGUP,
        constants.EXIT_TERMINATED,
    ],
)
def test_exit_code_in_readme(code: int) -> None:
    """The exit codes are part of the interface: their table is the README's."""
    assert f"| {code} |" in README


def test_every_strategy_in_docs() -> None:
    for name in constants.STRATEGY_NAMES:
        assert f"| `{name}` |" in DOCS


def test_docs_show_the_buyer_as_it_is() -> None:
    """The documented purchase() is the real one, but for annotations and docstring."""
    import inspect

    from tickets.engine.child.buyer import purchase

    start = DOCS.index("def purchase(session, lock):")
    shown = DOCS[start : DOCS.index("```", start)].strip().splitlines()[1:]
    real = inspect.getsource(purchase).strip().splitlines()[2:]  # signature, docstring
    assert shown == real


def documented_fields() -> dict[str, set[str]]:
    """The docs' JSON field table: document -> its fields."""
    table: dict[str, set[str]] = {}
    for line in DOCS.splitlines():
        match = re.match(r"^\| (`[^|]+`) \| `(\w+)` \|", line)
        if match:
            for document in re.findall(r"`([^`]+)`", match.group(1)):
                table.setdefault(document, set()).add(match.group(2))
    return table


@pytest.mark.timeout(120)
def test_the_documented_json_fields_are_exactly_the_emitted_ones(invoke: Any) -> None:
    docs = documented_fields()
    every = docs["every"]

    def emitted(*args: str) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(invoke(*args, "--json").stdout)
        return doc

    buy = emitted("buy", "--buyers", "4", "--tickets", "2", "--no-delay", "--chaos")
    assert set(buy) == every | docs["run"]
    assert set(buy["checks"][0]) == docs["checks[]"]
    assert set(buy["buyers"][0]) == docs["buyers[]"] - {"producer", "clerk", "retries"}
    assert set(buy["chaos"]) == docs["chaos"]
    queue = emitted("queue", "--orders", "2", "--no-delay")
    assert set(queue) == every | docs["run"] | docs["queue"]
    assert set(queue["buyers"][0]) == docs["buyers[]"] - {"retries"}
    assert set(queue["producers"][0]) == docs["producers[]"]
    assert set(queue["clerks"][0]) == docs["clerks[]"]
    race = emitted("race", "--buyers", "3", "--no-delay")
    assert set(race) == every | docs["race"]
    assert set(race["runs"][0]) == docs["run"] | docs["race.runs[]"]
    assert set(race["strategies"][0]) == docs["strategies[]"]
    check = emitted("check", buy["history"])
    assert set(check) == every | docs["check"]
    each = emitted("check", buy["history"], queue["history"])
    assert set(each) == every | docs["check-each"]
    assert set(each["results"][0]) == docs["results[]"]
    listing = emitted("history")
    assert set(listing) == every | docs["history"]
    assert set(listing["histories"][0]) == docs["histories[]"]
    for command in ("init", "status"):
        assert set(emitted(command)) == every | docs[command]
    assert set(emitted("status", "--db", "missing/x.json")) == every | docs["error"]


def help_examples() -> list[tuple[str, str]]:
    """Every example in every command's help: (command line, its comment)."""
    from click.testing import CliRunner

    examples = []
    names = ("init", "status", "buy", "race", "queue", "explore", "check", "timeline", "history")
    for name in names:
        text = CliRunner().invoke(cli, [name, "--help"]).output
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("tickets "):
                command, _, comment = line.partition("#")
                examples.append((command.strip(), comment.strip()))
    return examples


@pytest.mark.timeout(600)
def test_every_help_example_runs_and_does_what_its_comment_says(tmp_path: Path) -> None:
    """In one fresh folder, in the order the helps give them (placeholders
    filled with real histories): each exits as it should, and the comments
    that promise something see it happen."""
    import os
    import shlex
    import shutil
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TICKETS_DB"}
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    done_any = set()
    for command, comment in help_examples():
        histories = sorted((tmp_path / "history").glob("*.jsonl"), key=os.path.getmtime)
        unlocked = [str(h) for h in histories if "-none-" in h.name] or ["none-yet.jsonl"]
        line = command.replace("history/tickets-...-buy-none-123.jsonl", unlocked[-1])
        line = line.replace("run.jsonl", unlocked[-1])
        schedules = sorted((tmp_path / "history").glob("*.schedule.json"), key=os.path.getmtime)
        saved = [str(p) for p in schedules] or ["none-yet.schedule.json"]
        line = line.replace("history/tickets-...-explore-none-123.schedule.json", saved[0])
        bought = [str(h) for h in histories if "-buy-" in h.name] or ["a", "b"]
        # A later run of one sale keeps the stock (a restock starts another sale)
        kept = [h for h in bought[1:] if Path(h).exists()
                and not json.loads(Path(h).read_text().split("\n", 1)[0])["restocked"]]  # fmt: skip
        line = line.replace("a.jsonl b.jsonl", f"{bought[0]} {(kept or bought)[-1]}")
        line = line.replace("tickets ", f"{shlex.quote(sys.executable)} -m tickets ", 1)
        if "put_nowait" in comment:
            line += " --json"
        run = subprocess.run(line, shell=True, cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=300)  # fmt: skip
        failing_is_the_point = "oversell" in comment or command.startswith("tickets check")
        allowed = {0, 1} if failing_is_the_point else {0}
        assert run.returncode in allowed, (command, run.stdout[-500:], run.stderr[-500:])
        if "oversell" in comment:  # an unlocked sale: it fails, and says it was expected
            assert run.returncode == 1, command
        if "watch it oversell" in comment:
            assert "FAILED, as expected with --lock none (no exclusion):" in run.stdout
        if "put_nowait" in comment:
            assert json.loads(run.stdout)["rejected"] > 0, command
        if "kill -9" in comment:
            assert "killed with SIGKILL" in run.stdout
        done_any.add(command.split()[1])
    assert done_any == {
        "init",
        "status",
        "buy",
        "race",
        "queue",
        "explore",
        "check",
        "timeline",
        "history",
    }
    assert (tmp_path / "race.svg").exists() and (tmp_path / "race.html").exists()


def test_every_option_the_docs_name_exists() -> None:
    """The other way round: no option in the docs that no command has."""
    known = {"--help", "--version", "--fail"}  # and curl's --fail, in the --exec recipe
    scripts = ("examples/booking_service.py", "tests/hosts.py", "bench/ab.py")
    for script in (ROOT / name for name in scripts):
        known.update(re.findall(r'add_argument\(\s*"(--[a-z-]+)"', script.read_text()))
    for command in [cli, *cli.commands.values()]:
        for param in command.params:
            if isinstance(param, click.Option):
                known.update(param.opts)
    named = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", DOCS))
    assert named - known == set()


# -- the pages hold together ---------------------------------------------------

FENCE = re.compile(r"^\s*(```|~~~)")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def prose(text: str) -> list[str]:
    """The lines outside fenced code blocks, and outside inline code."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(re.sub(r"`[^`]*`", "", line))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text without markup, lowercase,
    punctuation dropped but for '-' and '_', each space a '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = re.sub(r"[`*]", "", text).strip().lower()
    kept = (
        ch
        for ch in text
        if ch in "-_ " or unicodedata.category(ch)[0] in "LMN"  # letters, marks, digits
    )
    return "".join(kept).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading's anchor in a page (a repeated one gets -1, -2, ...)."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    fenced = False
    for line in path.read_text().splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading and not fenced:
            base = slug(heading.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(path: Path) -> list[str]:
    """Every link target written in a page's prose."""
    return [target for line in prose(path.read_text()) for target in LINK.findall(line)]


def test_slug_follows_github() -> None:
    assert slug("Exit codes") == "exit-codes"
    assert (
        slug("`queue` gets the same for its producers") == "queue-gets-the-same-for-its-producers"
    )
    assert slug("What filelock costs, and why `flock` is there") == (
        "what-filelock-costs-and-why-flock-is-there"
    )
    assert slug("Signals: Ctrl-C, SIGTERM, SIGHUP") == "signals-ctrl-c-sigterm-sighup"
    assert slug("Keys: `tickets sale list`, `show`, `drop`") == "keys-tickets-sale-list-show-drop"


def test_every_docs_page_is_linked_from_the_readme_or_the_index() -> None:
    assert INDEX in PAGES, "docs/ has no map (docs/README.md)"
    linked = set()
    for source in (README_PATH, INDEX):
        for target in links(source):
            page = target.split("#", 1)[0]
            if page:
                linked.add((source.parent / page).resolve())
    unlinked = [page.name for page in PAGES if page != INDEX and page.resolve() not in linked]
    assert unlinked == []
    assert INDEX.resolve() in linked, "the README does not link the docs' map"


@pytest.mark.parametrize("source", [README_PATH, *PAGES], ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_lands(source: Path) -> None:
    """Every relative link names a file that exists, and a #anchor one of
    its headings (the same page's for a bare #anchor)."""
    broken = []
    for target in links(source):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:: not ours to check
            continue
        page, _, anchor = target.partition("#")
        path = (source.parent / page).resolve() if page else source
        if not path.exists():
            broken.append(f"{target}: no such file")
        elif anchor and (path.suffix != ".md" or anchor not in anchors(path)):
            broken.append(f"{target}: no heading with that anchor in {path.name}")
    assert broken == []
