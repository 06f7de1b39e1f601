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
    """A copy of the demo recipe on 48 puzzles, written outside the repo."""
    d = tmp_path_factory.mktemp("recipe")
    text = (ROOT / "recipes" / "trm-sudoku.yaml").read_text()
    text = text.replace("path: ../examples/models/trm-sudoku", f"path: {MODELS / 'trm-sudoku'}")
    text = text.replace("n: 256", "n: 32").replace("output: ../artefacts/trm-sudoku", f"output: {d / 'artefact'}")
    # the step graphs and the Loop form in float32 keep the shared fixture quick; other forms have their own tests
    text = text.replace("forms: [step, loop, unrolled]", "forms: [step, loop]").replace("precisions: [float32, float16]", "precisions: [float32]")
    p = d / "trm.yaml"
    p.write_text(text)
    return p


@pytest.fixture(scope="session")
def trm_artefact(small_trm_recipe) -> Path:
    from edgekit.pipeline import run_export

    out = run_export(small_trm_recipe, log=lambda s: None)
    assert out.exit_code == 0, out.results
    return out.folder
