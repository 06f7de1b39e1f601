"""The Sudoku task: puzzles generated from seeds (disjoint seeds for validation, calibration and search)."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import sudoku
from .base import Task, TaskData, TaskSettings, register

DEFAULT_GIVENS = (28, 40)


@register
class SudokuTask(Task):
    name = "sudoku"
    description = "9x9 Sudoku with unique solutions, reference tokens (0 pad, 1 blank, 2-10 digits)"

    def generate(self, settings: TaskSettings, n: int, seed: int, split: str) -> TaskData:
        lo, hi = settings.givens or DEFAULT_GIVENS
        pool = sudoku.SudokuPool.generate(n, seed=seed)
        x, y = pool.sample(n, (lo, hi), np.random.default_rng(seed), augment=False)
        return TaskData(x, y, f"{n} held-out Sudoku puzzles, {lo}-{hi} givens, seed {seed}")

    def parse_line(self, line: str, length: int) -> np.ndarray:
        """81 cells (digits 1-9, '.' or '0' for a blank; spaces ignored), or 81 token ids separated by spaces."""
        if "," in line or len(line.split()) == sudoku.SEQ_LEN:
            return super().parse_line(line, length)
        cells = [ch for ch in line if not ch.isspace()]
        if len(cells) != sudoku.SEQ_LEN:
            raise ValueError(f"a Sudoku needs 81 cells, got {len(cells)}")
        bad = next((i for i, ch in enumerate(cells) if ch not in ".0123456789"), None)
        if bad is not None:
            raise ValueError(f"cell {bad} is {cells[bad]!r}: use digits 1-9 and '.' or '0' for blanks")
        return np.array([sudoku.BLANK if ch in ".0" else int(ch) + 1 for ch in cells], dtype=np.int64)

    def render(self, prediction: np.ndarray) -> str:
        """Answer tokens -> 81 characters (digits; '.' where the model answered a non-digit token)."""
        return "".join(str(int(t) - 1) if t >= 2 else "." for t in np.asarray(prediction).reshape(-1))

    def fits(self, input_spec: dict[str, Any], family: str | None = None) -> bool:
        return self.takes(input_spec) and list(input_spec.get("shape", []))[1:] == [sudoku.SEQ_LEN]
