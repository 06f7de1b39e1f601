from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

MODELS = ROOT / "examples" / "models"


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def small_trm_recipe(tmp_path_factory) -> Path:
    """The demo model on 32 puzzles: float32 step graphs and the Loop form, no quantization (its own tests)."""
    d = tmp_path_factory.mktemp("recipe")
    p = d / "trm.yaml"
    p.write_text(f"""schema_version: 1
name: trm-sudoku
model: {{path: {MODELS / "trm-sudoku"}}}
task: {{name: sudoku, n: 32, givens: [28, 40], seed: 123}}
target: x86-cpu
export: {{opset: 17, forms: [step, loop], precisions: [float32]}}
gates: {{max_exact_drop: 0.01, min_argmax_agreement: 0.99}}
output: {d / "artefact"}
""")
    return p


@pytest.fixture(scope="session")
def trm_artefact(small_trm_recipe) -> Path:
    from edgekit.pipeline import run_export

    out = run_export(small_trm_recipe, log=lambda s: None)
    assert out.exit_code == 0, out.results
    return out.folder
