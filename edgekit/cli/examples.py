"""One example per command, printed at the end of its `--help` (an epilog), so a user who knows the command's
name sees a line to start from. The paths are the README's: the demo recipe and the artefact `edgekit export`
writes from it. tests/system/test_cli_examples.py checks that every command has one and that each parses (and runs the
quick ones against a test artefact)."""

from __future__ import annotations

import typer

ART = "artefacts/trm-sudoku"
RECIPE = "recipes/trm-sudoku.yaml"

EXAMPLES: dict[str, str] = {
    "export": f"edgekit export {RECIPE}",
    "validate": f"edgekit validate {RECIPE} {ART}",
    "tune": f"edgekit tune {RECIPE} --latency-budget 60 --apply",
    "targets": "edgekit targets",
    "check": f"edgekit check {ART} --target jetson-orin-nano",
    "plan": f"edgekit plan {ART} --target jetson-orin-nano",
    "build": f"edgekit build {ART} --target hopper --precision fp16",
    "verify": f"edgekit verify {ART}",
    "bench": f"edgekit bench {ART} --variant all --batch 64",
    "solve": f"edgekit solve {ART} --inputs examples/puzzles.txt",
    "serve": f"edgekit serve {ART} --slots 16 < examples/puzzles.txt",
    "info": f"edgekit info {ART}",
    "doctor": "edgekit doctor",
    "debug": "edgekit debug artefacts/trm-sudoku-int8 --variant int8",
}


def command_name(info: typer.models.CommandInfo) -> str:
    """The name a user types: the registered name, else the function's (as Typer derives it)."""
    return info.name or (info.callback.__name__ if info.callback else "").replace("_", "-")


def add_examples(app: typer.Typer) -> None:
    """Set each registered command's epilog to its example: one line that fits 80 columns, so a terminal never
    breaks the command a user copies."""
    for info in app.registered_commands:
        example = EXAMPLES.get(command_name(info))
        if example is not None:
            info.epilog = f"Example: {example}"
