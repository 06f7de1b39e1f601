"""The DEQ demo task: scikit-learn's 8x8 digits (test split for validation, seeded subsets of train otherwise)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..contracts import FEATURES
from . import digits
from .base import Task, TaskData, TaskSettings, register


@register
class DigitsTask(Task):
    name = "digits"
    description = "scikit-learn 8x8 handwritten digits, features in [0, 1], 10 classes"
    reads_files = False  # a classification task: the reference dataset layout holds token sequences
    contract = FEATURES

    def generate(self, settings: TaskSettings, n: int, seed: int, split: str) -> TaskData:
        x, y = digits.load(split)
        if split != "test":
            pick = np.random.default_rng(seed).permutation(len(x))[:n]
            x, y = x[pick], y[pick]
        return TaskData(x[:n].astype(np.float32), y[:n, None], f"{min(n, len(x))} digits (scikit-learn {split} split)")

    def fits(self, input_spec: dict[str, Any], family: str | None = None) -> bool:
        return self.takes(input_spec) and list(input_spec.get("shape", []))[1:] == [digits.NUM_FEATURES]
