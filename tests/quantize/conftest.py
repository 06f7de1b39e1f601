"""Fixtures shared by the quantize stage's tests."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.export.onnx_export import export_step_graphs
from edgekit.models.checkpoint import load_model
from edgekit.quantize import QuantizeJob, QuantizeSection
from edgekit.quantize.calibration import trajectory_items
from edgekit.tasks import sudoku


@pytest.fixture(scope="module")
def trm_job(root, tmp_path_factory) -> QuantizeJob:
    """The TRM demo's step graph, calibrated on 8 puzzles (16 step inputs), 48 held-out puzzles; one per module."""
    d = tmp_path_factory.mktemp("q")
    m = load_model(root / "examples" / "models" / "trm-sudoku", forward_dtype="float32")
    export_step_graphs(m, d)
    x, _ = sudoku.SudokuPool.generate(8, seed=1000).sample(8, (28, 40), np.random.default_rng(1000), augment=False)
    vx, vy = sudoku.SudokuPool.generate(48, seed=5).sample(48, (30, 40), np.random.default_rng(5), augment=False)
    job = QuantizeJob(m, d, QuantizeSection(), x, vx, vy, "test", log=lambda s: None)
    job._items = trajectory_items(m, x, 8)
    return job
