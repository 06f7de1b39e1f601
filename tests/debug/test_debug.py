"""`edgekit debug`: layer-wise comparison of a compressed variant along the float32 trajectory, ranked by the
effect of each layer on the halting logit. On the TRM demo it must find the SwiGLU down projections on its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from edgekit.tasks import sudoku

DOCS_COMMANDS = (r"^edgekit debug \S+ --variant \S+( --step \d+)?( --plot \S+\.png)?$",)


@pytest.fixture(scope="module")
def debug_artefact(root, tmp_path_factory):
    """The TRM demo with a per-row and a dynamic INT8 variant (own cache folder)."""
    from edgekit.pipeline import run_export

    tmp = tmp_path_factory.mktemp("debug")
    mp = pytest.MonkeyPatch()
    mp.setenv("EDGEKIT_CACHE", str(tmp / "cache"))
    recipe = tmp / "r.yaml"
    recipe.write_text(f"""schema_version: 1
name: trm-debug
model: {{path: {root / "examples" / "models" / "trm-sudoku"}}}
task: {{name: sudoku, n: 16, givens: [28, 40], seed: 5}}
target: x86-cpu
export: {{forms: [step, loop], precisions: [float32]}}
quantize: {{modes: [int8_dynamic, int8_per_row], calibration: {{n: 8}}}}
validate: {{halt_threshold: 0.0}}
gates: {{max_exact_drop: 0.5}}
output: {tmp / "out"}
""")
    try:
        out = run_export(recipe, log=lambda s: None)
    finally:
        mp.undo()
    return out.folder


def _puzzles(n: int, seed: int = 4242) -> np.ndarray:
    x, _ = sudoku.SudokuPool.generate(n, seed=seed).sample(n, (28, 40), np.random.default_rng(seed), augment=False)
    return x


@pytest.mark.slow  # 64 puzzles x every layer quantized alone and restored alone (~40 s); the CLI test covers the path
def test_debug_points_at_the_down_projections_of_the_trm_demo(debug_artefact):
    """Dynamic INT8 (per-tensor ranges per call) moves the TRM demo's halting through the SwiGLU down projections
    (measured before this tool existed, by keeping layer groups float). Told nothing about them, the debugger
    ranks all four down projections first, each moving the halting logit more than any other layer; the halting
    head kept float is not listed, although quantize_dynamic rewrote its Gemm into MatMul + Add."""
    from edgekit.debug import debug_variant

    report = debug_variant(debug_artefact, "int8_dynamic", _puzzles(64))
    layers = [r.layer for r in report.layers]
    assert len(layers) == 8 and not any("q_head" in g for g in layers)
    assert all("down_proj" in g for g in layers[:4]), layers
    downs = [r.only_quantized_halt_change for r in report.layers if "down_proj" in r.layer]
    others = [r.only_quantized_halt_change for r in report.layers if "down_proj" not in r.layer]
    assert min(downs) > 1.5 * max(others)
    assert report.step == 1 and report.variant_halt_change > max(others)  # most float32 puzzles halt at step 1
    assert [r.rank for r in report.layers] == list(range(1, 9))


def test_debug_cli_table_json_plot_and_one_line_errors(debug_artefact, tmp_path):
    def run(*args: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "COLUMNS": "200"}  # the table's width (pytest may leave a narrow terminal size)
        return subprocess.run(
            [sys.executable, "-m", "edgekit.cli", "debug", *args], capture_output=True, text=True, timeout=900, env=env
        )

    art = str(debug_artefact)
    plot = tmp_path / "debug.png"
    r = run(art, "--variant", "int8_per_row", "--step", "2", "--n", "8", "--plot", str(plot))  # the docs' form
    assert r.returncode == 0, r.stderr[-2000:]
    assert "/L_level/layers.0/mlp/down_proj " in r.stdout and "only q |Δ halt|" in r.stdout and "step 2" in r.stdout
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r = run(art, "--variant", "int8_per_row", "--n", "16", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads(r.stdout)
    assert rep["variant"] == rep["mode"] == "int8_per_row" and rep["samples"] == 16 and len(rep["layers"]) == 8
    assert all(0 <= row["only_quantized_flips"] <= 1 and row["output_error"] >= 0 for row in rep["layers"])
    for args, words in (
        (["--variant", "int9"], "no compressed variant 'int9'"),
        (["--variant", "float32"], "no compressed variant 'float32'"),
        (["--variant", "int8_per_row", "--step", "17"], "outside the recursion budget"),
        (["--variant", "int8_per_row", "--plot", str(tmp_path / "no" / "x.png")], "expected a .png file"),
    ):
        bad = run(art, *args)
        assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and words in bad.stderr, bad.stderr
