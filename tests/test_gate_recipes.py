"""Every documented CI gate, run as written: with ``tickets`` on the PATH
the correct function passes and the broken one fails; with ``tickets``
missing from the PATH every recipe fails (a gate that goes green when the
tool never ran is the worst kind: jq 1.6 exits 0 on empty input)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def recipes() -> list[tuple[str, str]]:
    """(where, script) of every gate the docs offer: docs/ci.md's marked
    recipes and the README's CI block."""
    found = []
    ci = (ROOT / "docs" / "ci.md").read_text()
    for n, m in enumerate(re.finditer(r"<!-- gate-recipe -->\n```sh\n(.*?)```", ci, re.S)):
        found.append((f"docs/ci.md#{n + 1}", m.group(1)))
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Gate your own code in CI", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None
    found.append(("README", block.group(1)))
    return found


RECIPES = recipes()


def without_tickets() -> str:
    """The PATH with every folder that holds a ``tickets`` left out."""
    folders = [BIN.as_posix(), *os.environ.get("PATH", "").split(os.pathsep)]
    return os.pathsep.join(f for f in folders if f and not (Path(f) / "tickets").exists())


def run(script: str, path: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # A CI job's twenty trials are two here: the same gate, quicker.
    script = script.replace("--trials 20", "--trials 2")
    env = {**os.environ, "PATH": path}
    return subprocess.run(
        ["sh", "-c", script], capture_output=True, text=True, env=env, cwd=cwd, timeout=150
    )


@pytest.fixture
def job(tmp_path: Path) -> Path:
    """A CI job's checkout: the examples where the recipes name them."""
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    return tmp_path


def test_there_are_recipes_and_none_reads_json_with_jq() -> None:
    assert len(RECIPES) >= 4
    assert all("jq" not in script for _, script in RECIPES)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("where", "script"), RECIPES, ids=[w for w, _ in RECIPES])
def test_a_recipe_fails_when_tickets_never_ran(where: str, script: str, job: Path) -> None:
    assert not any((Path(f) / "tickets").exists() for f in without_tickets().split(os.pathsep))
    done = run(script, without_tickets(), job)
    assert done.returncode != 0, (where, done.stdout, done.stderr)
    assert "not found" in done.stderr or "No such file" in done.stderr, done.stderr


@pytest.mark.timeout(150)
@pytest.mark.parametrize(("where", "script"), RECIPES, ids=[w for w, _ in RECIPES])
def test_a_recipe_passes_the_correct_function_and_fails_the_broken_one(
    where: str, script: str, job: Path
) -> None:
    path = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    good = run(script, path, job)
    assert good.returncode == 0, (where, good.stdout[-2000:], good.stderr[-2000:])
    bad = run(script.replace("take_ticket", "take_ticket_broken"), path, job)
    assert bad.returncode == 1, (where, bad.stdout[-2000:], bad.stderr[-2000:])
