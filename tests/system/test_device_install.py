"""The base install (numpy + onnxruntime + small pure-Python libraries) runs every device command on a real
artefact, and none of the workstation stack is importable there.

The device venv is `$EDGEKIT_DEVICE_PYTHON` (what .ci/run builds: `pip install -e .` into .venv-device), else
.venv-device/bin/python in the repository, built here on first use.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HEAVY = ("torch", "nncf", "onnx", "onnxscript", "scipy", "sklearn", "matplotlib", "yaml", "safetensors", "onnx_ir")
MAX_MB = 300


@pytest.fixture(scope="module")
def device_python(root) -> Path:
    env = os.environ.get("EDGEKIT_DEVICE_PYTHON")
    if env:
        return Path(env)
    py = root / ".venv-device" / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(root / ".venv-device")], check=True, timeout=300)
        subprocess.run(
            [str(py), "-m", "pip", "install", "-q", "-e", str(root)], check=True, timeout=1200, capture_output=True
        )
    return py


def _edgekit(py: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(py.parent / "edgekit"), *args], capture_output=True, text=True, timeout=600, input=stdin)


def test_base_install_has_no_heavy_packages_and_is_small(device_python):
    code = (
        "import importlib.util, json, sys, sysconfig; "
        f"print(json.dumps({{m: importlib.util.find_spec(m) is not None for m in {HEAVY!r}}})); "
        "print(sysconfig.get_paths()['purelib'])"
    )
    p = subprocess.run([str(device_python), "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    found, site = json.loads(p.stdout.splitlines()[0]), Path(p.stdout.splitlines()[1])
    assert not any(found.values()), f"heavy packages in the base install: {[m for m, v in found.items() if v]}"
    mb = sum(f.stat().st_size for f in site.rglob("*") if f.is_file() and not f.is_symlink()) / 2**20
    assert mb < MAX_MB, f"base install is {mb:.0f} MB"


def test_device_commands_in_the_base_install(device_python, trm_artefact, tmp_path):
    from edgekit.tasks import get_task

    v = _edgekit(device_python, "verify", str(trm_artefact))
    assert v.returncode == 0 and "VERIFIED" in v.stdout, v.stdout + v.stderr
    b = _edgekit(device_python, "bench", str(trm_artefact), "--n", "8", "--batch", "4", "--repeats", "1", "--json")
    assert b.returncode == 0, b.stderr
    assert json.loads(b.stdout)["results"][0]["batch"] == 4
    i = _edgekit(device_python, "info", str(trm_artefact), "--json")
    assert i.returncode == 0, i.stderr
    info = json.loads(i.stdout)
    assert info["variants"]["float32"]["forms"] == ["step", "loop"] and info["passed"] is True

    task = get_task("sudoku")
    with np.load(trm_artefact / "golden.npz") as g:
        x = g["inputs"][:3]
        want_steps = g["float32/host/steps"][:3]
    text = tmp_path / "puzzles.txt"
    text.write_text("# three puzzles\n" + "\n".join(task.render(p) for p in x) + "\n")
    s = _edgekit(device_python, "solve", str(trm_artefact), "--inputs", str(text), "--json")
    assert s.returncode == 0, s.stderr
    rows = [json.loads(line) for line in s.stdout.splitlines()]
    assert [r["steps"] for r in rows] == want_steps.tolist()
    np.save(tmp_path / "p.npy", x)
    s2 = _edgekit(device_python, "solve", str(trm_artefact), "--inputs", str(tmp_path / "p.npy"))
    assert s2.returncode == 0 and len(s2.stdout.splitlines()) == 3, s2.stderr

    served = _edgekit(
        device_python, "serve", str(trm_artefact), "--slots", "2", stdin=text.read_text() + "not a puzzle\n"
    )
    assert served.returncode == 2  # one bad line: reported, the rest answered
    out = [json.loads(line) for line in served.stdout.splitlines()]
    answers = {r["line"]: r for r in out if "answer" in r}
    assert sorted(answers) == [2, 3, 4] and [answers[n]["steps"] for n in (2, 3, 4)] == want_steps.tolist()
    assert [r["line"] for r in out if "error" in r] == [5]


def test_bench_plot_without_matplotlib_says_so_before_benchmarking(device_python, trm_artefact, tmp_path):
    """The base install has no matplotlib: `bench --plot` names the one package to install, exit 2, and times
    nothing first (no progress line, no table, no plot)."""
    plot = tmp_path / "bench.png"
    p = _edgekit(device_python, "bench", str(trm_artefact), "--n", "8", "--batch", "4", "--plot", str(plot))
    assert p.returncode == 2, p.stdout + p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "pip install matplotlib" in lines[0] and "--plot" in lines[0], p.stderr
    assert "bench float32" not in p.stdout + p.stderr and not p.stdout.strip() and not plot.exists()


def test_workstation_command_on_the_base_install_is_one_line(device_python, root):
    p = _edgekit(device_python, "export", str(root / "recipes" / "trm-sudoku.yaml"), "--dry-run")
    assert p.returncode == 2
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and 'pip install "edgekit[export]"' in lines[0], p.stderr


def test_embed_example_runs_on_the_base_install(device_python, trm_artefact, root):
    from edgekit.tasks import get_task

    with np.load(trm_artefact / "golden.npz") as g:
        line = get_task("sudoku").render(g["inputs"][0])
    p = subprocess.run(
        [str(device_python), str(root / "examples" / "embed_runtime.py"), str(trm_artefact)],
        input=line + "\n",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.split()[-2] == "steps"
