"""Every command's `--help` ends with one example that starts with `edgekit <command>` and fits 80 columns; every
example parses with the real argument parser (no unknown option, no missing argument), and the quick ones run
against a copy of the test artefact."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from edgekit.cli import app
from edgekit.cli.examples import ART, EXAMPLES, command_name

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = sorted(command_name(c) for c in app.registered_commands)
# examples that finish in seconds on the test artefact, with the exit codes they may end with
RUNS = {"targets": (0,), "doctor": (0, 1), "info": (0,), "verify": (0,), "check": (0,), "plan": (0,), "solve": (0,),
        "serve": (0,)}  # fmt: skip


def _argv(example: str) -> tuple[list[str], str | None]:
    """The example's arguments after `edgekit`, and the file its stdin is redirected from (if any)."""
    words = shlex.split(example)
    stdin = None
    if "<" in words:
        i = words.index("<")
        words, stdin = words[:i], words[i + 1]
    assert words[0] == "edgekit", example
    return words[1:], stdin


@pytest.fixture(scope="module")
def workdir(trm_artefact, tmp_path_factory) -> Path:
    """A folder laid out as the examples expect: the test artefact at the README's path (a copy: plan writes its
    build script into it), the int8 debug example's artefact, the repository's recipes and puzzles."""
    d = tmp_path_factory.mktemp("examples")
    shutil.copytree(trm_artefact, d / ART)
    shutil.copytree(trm_artefact, d / "artefacts" / "trm-sudoku-int8")
    (d / "recipes").symlink_to(ROOT / "recipes")
    (d / "examples").symlink_to(ROOT / "examples")
    return d


def test_every_command_has_one_example():
    assert COMMANDS and set(EXAMPLES) == set(COMMANDS), set(EXAMPLES) ^ set(COMMANDS)
    for name, example in EXAMPLES.items():
        assert example.startswith(f"edgekit {name}"), example
        assert len("Example: " + example) <= 78, example  # one line inside --help's 1-column margins at 80


@pytest.mark.parametrize("name", COMMANDS)
def test_help_shows_the_example(name):
    env = {**os.environ, "COLUMNS": "80", "TERM": "dumb"}
    r = subprocess.run([sys.executable, "-m", "edgekit.cli", name, "--help"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    lines = [ln.strip() for ln in r.stdout.splitlines()]
    shown = [ln.removeprefix("Example:").strip() for ln in lines if ln.startswith("Example:")]
    assert len(shown) == 1 and shown[0].startswith(f"edgekit {name}"), r.stdout[-600:]
    assert shown[0] == EXAMPLES[name]
    assert max(len(ln) for ln in r.stdout.splitlines()) <= 80


def _parse(argv: list[str]) -> str:
    """Parse `edgekit ARGV` with the real parser (Typer's click command: options known, arguments converted and
    checked), running nothing; returns the command's name. A usage error raises."""
    group = typer.main.get_command(app)
    with group.make_context("edgekit", list(argv)) as ctx:
        name, cmd, rest = group.resolve_command(ctx, list(argv))  # type: ignore[attr-defined]
        assert cmd is not None and name is not None
        with cmd.make_context(name, rest, parent=ctx) as sub:
            assert not sub.args, f"unparsed arguments: {sub.args}"
    return name


@pytest.mark.parametrize("name", COMMANDS)
def test_example_parses(name, workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    assert _parse(_argv(EXAMPLES[name])[0]) == name


def test_the_parse_check_refuses_what_the_command_line_would():
    with pytest.raises(Exception, match="No such option: --batch-size"):
        _parse(["bench", ART, "--batch-size", "64"])
    with pytest.raises(Exception, match="Missing parameter: target"):
        _parse(["plan", ART])  # --target is required


@pytest.mark.parametrize("name", sorted(RUNS))
def test_quick_example_runs(name, workdir):
    argv, stdin = _argv(EXAMPLES[name])
    r = subprocess.run(
        [sys.executable, "-m", "edgekit.cli", *argv],
        capture_output=True,
        text=True,
        cwd=workdir,
        input=(workdir / stdin).read_text() if stdin else "",
        timeout=300,
    )
    assert r.returncode in RUNS[name], (name, r.returncode, r.stdout[-1500:], r.stderr[-1500:])
    assert r.stdout.strip(), name
