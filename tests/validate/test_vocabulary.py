"""One vocabulary across commands: `solve --json` answers as the text output and `serve` do (the task's own text,
digits for Sudoku) with the token ids under their own key; recipes take fp16 / fp32 for float16 / float32; the
default artefact folder is artefacts/<name> under the current folder, and `export --help` says so."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from edgekit.schema import parse_recipe
from edgekit.tasks import get_task

ROOT = Path(__file__).resolve().parents[2]


def _edgekit(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgekit.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_solve_json_gives_the_text_answer_and_the_tokens_apart(trm_artefact, tmp_path):
    task = get_task("sudoku")
    with np.load(trm_artefact / "golden.npz") as g:
        x = g["inputs"][:2]
    puzzles = tmp_path / "p.txt"
    puzzles.write_text("\n".join(task.render(p) for p in x) + "\n")
    js = _edgekit("solve", str(trm_artefact), "--inputs", str(puzzles), "--json")
    text = _edgekit("solve", str(trm_artefact), "--inputs", str(puzzles))
    assert js.returncode == 0 and text.returncode == 0, js.stderr + text.stderr
    rows = [json.loads(ln) for ln in js.stdout.splitlines()]
    for row, line in zip(rows, text.stdout.splitlines()):
        assert row["answer"] == line.split()[0] and len(row["answer"]) == 81 and row["answer"].isdigit()
        assert row["answer"] == task.render(np.array(row["tokens"]))  # digit d is token d + 1
        assert all(2 <= t <= 10 for t in row["tokens"]) and row["answer"] != "".join(map(str, row["tokens"]))


def test_recipes_take_fp16_and_float16_alike():
    base = {"name": "r", "model": {"path": "m"}, "task": {"name": "sudoku"}}
    short = {"export": {"precisions": ["fp32", "fp16"]}, "quantize": {"modes": ["fp16", "int8"]}}
    long = {"export": {"precisions": ["float32", "float16"]}, "quantize": {"modes": ["float16", "int8"]}}
    a, b = parse_recipe({**base, **short}), parse_recipe({**base, **long})
    assert a.export.precisions == b.export.precisions == ["float32", "float16"]
    assert a.quantize.modes == b.quantize.modes == ["float16", "int8"]


def test_default_output_is_artefacts_name_under_the_current_folder(tmp_path):
    recipe = tmp_path / "recipes" / "r.yaml"
    recipe.parent.mkdir()
    recipe.write_text(f"schema_version: 1\nname: mine\nmodel: {{path: {ROOT / 'examples/models/trm-sudoku'}}}\n"
                      "task: {name: sudoku}\n")  # fmt: skip
    work = tmp_path / "work"
    work.mkdir()
    r = _edgekit("export", str(recipe), "--dry-run", cwd=work)
    assert r.returncode == 0, r.stderr
    assert f"output {work / 'artefacts' / 'mine'})" in r.stdout
    help_text = " ".join(_edgekit("export", "--help").stdout.replace("│", " ").split())  # rich boxes wrap it
    assert "artefacts/<name> under the current folder" in help_text and "Example: edgekit export" in help_text
