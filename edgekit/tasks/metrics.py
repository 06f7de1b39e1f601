"""Task metrics over per-step rollouts: exact-sequence and cell accuracy, at every budget and with halting."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# the statistics the gates use: one implementation, shared with the device's `edgekit verify --full`
from ..runtime.gate_eval import exact_per_sample, halting_steps, paired_drop_interval, wilson

__all__ = [
    "StepMetrics",
    "exact_and_cell",
    "exact_per_sample",
    "halting_steps",
    "paired_drop_interval",
    "step_metrics",
    "wilson",
]


def exact_and_cell(pred: np.ndarray, labels: np.ndarray, mask: np.ndarray | None = None) -> tuple[float, float]:
    """Exact accuracy (all supervised positions right) and mean per-sequence cell accuracy.
    `mask` marks supervised positions (all by default, as in Sudoku where every cell is labelled)."""
    if labels.ndim == 1:  # one label per sample (classification): one position each
        pred, labels = np.reshape(pred, labels.shape)[:, None], labels[:, None]
    if mask is None:  # negative labels are unsupervised positions (the reference's ignore_label_id -> -100)
        mask = labels >= 0
    ok = (pred == labels) & mask
    n = mask.sum(-1).clip(min=1)
    exact = float(np.mean(ok.sum(-1) == mask.sum(-1)))
    cell = float(np.mean(ok.sum(-1) / n))
    return exact, cell


@dataclass
class StepMetrics:
    """Accuracy after each step budget plus what early halting does."""

    exact_per_step: list[float]
    cell_per_step: list[float]
    halting_steps: np.ndarray | None  # 1-based step where each sample halts (budget where it never does)
    exact_halted: float | None
    cell_halted: float | None
    n: int = 0  # samples measured (for the intervals)
    halted_exact: np.ndarray | None = None  # per sample: its answer at its halting step is exactly right

    @property
    def halted_before_cap(self) -> float | None:
        if self.halting_steps is None:
            return None
        return float(np.mean(self.halting_steps < len(self.exact_per_step)))

    @property
    def mean_steps(self) -> float | None:
        return None if self.halting_steps is None else float(np.mean(self.halting_steps))

    def summary(self) -> dict:
        out = {
            "exact_1": self.exact_per_step[0],
            "cell_1": self.cell_per_step[0],
            "exact_full": self.exact_per_step[-1],
            "exact_full_interval": wilson(round(self.exact_per_step[-1] * self.n), self.n),
            "cell_full": self.cell_per_step[-1],
            "steps": len(self.exact_per_step),
            "exact_per_step": list(self.exact_per_step),
        }
        if self.halting_steps is not None:
            out.update(
                exact_halted=self.exact_halted,
                exact_halted_interval=wilson(round((self.exact_halted or 0.0) * self.n), self.n),
                cell_halted=self.cell_halted,
                halted_before_cap=self.halted_before_cap,
                mean_steps=self.mean_steps,
            )
        return out

    def halting_histogram(self) -> list[int] | None:
        """Samples halting at step 1, 2, ..., budget (the last bin includes those that never halted)."""
        if self.halting_steps is None:
            return None
        return np.bincount(self.halting_steps, minlength=len(self.exact_per_step) + 1)[1:].tolist()

    def halting_exact_histogram(self) -> list[int] | None:
        """Of the samples halting at step 1, 2, ..., budget, how many answer exactly right there: divided by
        `halting_histogram`, the exact accuracy at each halting step."""
        if self.halting_steps is None or self.halted_exact is None:
            return None
        counts = np.bincount(self.halting_steps, weights=self.halted_exact, minlength=len(self.exact_per_step) + 1)
        return [int(c) for c in counts[1:]]


def step_metrics(
    preds: list[np.ndarray],
    labels: np.ndarray,
    halt_logits: list[np.ndarray] | None = None,
    mask: np.ndarray | None = None,
    threshold: float = 0.0,
) -> StepMetrics:
    """`preds[t]` are argmax predictions after step t+1; `halt_logits[t]` the halting logits then."""
    ex, ce = zip(*(exact_and_cell(p, labels, mask) for p in preds))
    if not halt_logits:
        return StepMetrics(list(ex), list(ce), None, None, None, len(labels))
    hs = halting_steps(np.stack(halt_logits), threshold)
    chosen = np.stack(preds)[hs - 1, np.arange(labels.shape[0])]
    eh, chh = exact_and_cell(chosen, labels, mask)
    ok = exact_per_sample(chosen, labels) if mask is None else ((chosen == labels) | ~mask).all(-1)
    return StepMetrics(list(ex), list(ce), hs, eh, chh, len(labels), np.asarray(ok, dtype=bool))
