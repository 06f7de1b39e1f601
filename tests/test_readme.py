"""Every command in README.md's shell blocks is exercised here (issue #20): setup lines are what CI runs, device
lines run against an exported artefact with the base install, the main job's recipe is checked (and run in full
with `-m slow`), training commands run for a few steps. A README command no test knows fails the first test."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    """Commands of the ```bash blocks: comments dropped, `&&` chains split."""
    text = (ROOT / "README.md").read_text()
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line and not line.startswith("#"):
                out += [c.strip() for c in line.split("&&")]
    return out


SETUP = re.compile(r"^python3 -m venv (\.venv(-device)?)$|^\.venv(-device)?/bin/pip install -e (\S+)$")
EXPORT = re.compile(r"^\.venv/bin/(edgekit export recipes/\S+\.yaml)$")
DEVICE = re.compile(r"^\.venv-device/bin/(edgekit|python) (.*)$")
PYTEST = ".venv/bin/python -m pytest -q"
TRAIN = re.compile(r"^\.venv/bin/python (examples/train_\w+\.py) (.*)$")
TUNE = re.compile(r"^\.venv/bin/edgekit tune recipes/trm-sudoku\.yaml (.*)$")
ARC = ".venv/bin/python examples/make_arc_dataset.py"


def test_every_readme_command_is_one_this_file_exercises():
    cmds = readme_commands()
    assert len(cmds) >= 10
    unknown = [
        c
        for c in cmds
        if not (
            SETUP.match(c)
            or EXPORT.match(c)
            or DEVICE.match(c)
            or TRAIN.match(c)
            or TUNE.match(c)
            or c in (PYTEST, ARC)
        )
    ]
    assert not unknown, f"README commands no test runs: {unknown}"


def test_setup_commands_are_what_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text().replace(" -q", "")
    for c in readme_commands():
        m = SETUP.match(c)
        if m and m.group(4):
            assert c in ci or c.replace('".[export]"', '".[test]"') in ci, c  # [test] includes [export]
    assert ".venv/bin/python -m pytest" in ci


@pytest.mark.parametrize("cmd", [c for c in readme_commands() if EXPORT.match(c)])
def test_main_job_recipe_is_valid(cmd, tmp_path):
    """The main job's recipe parses, its model and target exist (the full run is the slow test below and the
    `trm_artefact` fixture's smaller copy of the same recipe). The ARC demo's model is written by the README's
    make_arc_dataset line (not committed): here into a temporary folder, with the recipe pointed at it."""
    args = shlex.split(EXPORT.match(cmd).group(1))[1:] + ["--dry-run"]
    if "arc-demo" in cmd:
        args[1] = str(_arc_recipe(tmp_path))
    r = subprocess.run([sys.executable, "-m", "edgekit.cli", *args], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and "is valid" in r.stdout, r.stderr


@pytest.mark.slow
@pytest.mark.parametrize("cmd", [c for c in readme_commands() if EXPORT.match(c)])
def test_main_job_runs(cmd, tmp_path):
    args = shlex.split(EXPORT.match(cmd).group(1))[1:] + ["--out", str(tmp_path / "art")]
    if "arc-demo" in cmd:
        args[1] = str(_arc_recipe(tmp_path))
    r = subprocess.run([sys.executable, "-m", "edgekit.cli", *args], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]


def _arc_recipe(tmp: Path) -> Path:
    """recipes/arc-demo.yaml with its data and model written by the README's generator line into `tmp`."""
    data, model = tmp / "arc-data", tmp / "arc-model"
    gen = [sys.executable, str(ROOT / "examples/make_arc_dataset.py"), "--out", str(data), "--model", str(model)]
    r = subprocess.run(gen, capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    for f in (ROOT / "examples/data/arc-demo").rglob("*"):  # the committed dataset is what the script writes
        if f.is_file():
            assert f.read_bytes() == (data / f.relative_to(ROOT / "examples/data/arc-demo")).read_bytes(), f
    text = (ROOT / "recipes/arc-demo.yaml").read_text()
    text = text.replace("../examples/models/arc-demo-random", str(model)).replace(
        "../examples/data/arc-demo", str(data)
    )
    (tmp / "arc-demo.yaml").write_text(text + f"output: {tmp / 'art'}\n")
    return tmp / "arc-demo.yaml"


def test_arc_demo_runs(tmp_path):
    """README's ARC lines: the generator, then `edgekit export recipes/arc-demo.yaml` (exit 0: the random-init
    model loses nothing to export or INT8, so its drop gates pass)."""
    r = subprocess.run(
        [sys.executable, "-m", "edgekit.cli", "export", str(_arc_recipe(tmp_path))],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=900,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert (tmp_path / "art" / "submission.json").is_file()


def _device_python() -> Path:
    return Path(os.environ.get("EDGEKIT_DEVICE_PYTHON", ROOT / ".venv-device" / "bin" / "python"))


@pytest.mark.parametrize("cmd", [c for c in readme_commands() if DEVICE.match(c)])
def test_device_commands_run_on_an_artefact_with_the_base_install(cmd, trm_artefact):
    py = _device_python()
    if not py.exists():
        pytest.skip(f"no device venv at {py} (.ci/run builds it; tests/test_device_install.py too)")
    tool, rest = DEVICE.match(cmd).groups()
    args = [a.replace("artefacts/trm-sudoku", str(trm_artefact)) for a in shlex.split(rest)]
    argv = [str(py.parent / "edgekit"), *args] if tool == "edgekit" else [str(py), *args]
    r = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 0, (cmd, r.stdout[-1000:], r.stderr[-1000:])
    assert r.stdout.strip(), cmd


@pytest.mark.parametrize("cmd", [c for c in readme_commands() if TRAIN.match(c)])
def test_training_commands_run_a_few_steps(cmd, tmp_path):
    script, rest = TRAIN.match(cmd).groups()
    args = [a if not a.startswith("examples/models/") else str(tmp_path / "m") for a in shlex.split(rest)]
    short = (
        ["--epochs", "1"]
        if "deq" in script
        else ["--steps", "2", "--pool", "12", "--eval-n", "8", "--dtype", "float32"]
    )
    r = subprocess.run([sys.executable, str(ROOT / script), *args, *short], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, (cmd, r.stderr[-2000:])
    assert any((tmp_path / "m").iterdir())


@pytest.mark.parametrize("cmd", [c for c in readme_commands() if TUNE.match(c)])
def test_tune_command_runs(cmd, small_trm_recipe, trm_artefact, tmp_path):
    """The README's tune line on a copy of the demo artefact (the small recipe's: 32 puzzles), with its options;
    its budget is per puzzle on this machine, so exit 4 (nothing fits) is a correct outcome too, but then it must
    name the fastest configuration."""
    import json
    import shutil

    art = tmp_path / "art"
    shutil.copytree(trm_artefact, art)
    args = shlex.split(TUNE.match(cmd).group(1))
    argv = [sys.executable, "-m", "edgekit.cli", "tune", str(small_trm_recipe), "--artefact", str(art), "--check-n",
            "16", *args]  # fmt: skip
    r = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert r.returncode in (0, 4), r.stdout[-2000:] + r.stderr[-2000:]
    res = json.loads((art / "tune.json").read_text())
    if r.returncode == 0:
        assert "--apply" not in args or json.loads((art / "manifest.json").read_text())["runtime_defaults"]
    else:
        assert "fastest is" in r.stderr and res["chosen"] is None
