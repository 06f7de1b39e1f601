"""Task metrics over per-step rollouts: exact-sequence and cell accuracy, at every budget and with halting."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def exact_per_sample(pred: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per sample: every supervised position right (negative labels are unsupervised)."""
    if labels.ndim == 1:
        return np.reshape(pred, labels.shape) == labels
    pred = np.reshape(pred, labels.shape)
    return ((pred == labels) | (labels < 0)).all(-1)


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
    return StepMetrics(list(ex), list(ce), hs, eh, chh, len(labels))


def halting_steps(q: np.ndarray, threshold: float = 0.0) -> np.ndarray:
    """q: [T, B] halting logits -> first 1-based step with q > threshold, T where none."""
    halted = q > threshold
    return np.where(halted.any(0), halted.argmax(0) + 1, q.shape[0])


def wilson(successes: int, n: int, z: float = 1.96, digits: int | None = 4) -> list[float]:
    """95 % Wilson score interval of a share: how far a gate's estimate can be from the truth at this n."""
    if n == 0:
        return [0.0, 1.0]
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    lo, hi = float(max(0.0, centre - half)), float(min(1.0, centre + half))
    return [lo, hi] if digits is None else [round(lo, digits), round(hi, digits)]


def paired_drop_interval(ref_ok: np.ndarray, cand_ok: np.ndarray, z: float = 1.96) -> list[float]:
    """95 % interval of accuracy(ref) - accuracy(cand) on the same samples (Newcombe 1998, method 10: Wilson
    intervals of both shares combined with their correlation). Paired samples make it far narrower than the two
    accuracies' own intervals when the variants agree on most samples, which is what a drop gate needs."""
    n = len(ref_ok)
    if n == 0:
        return [-1.0, 1.0]
    a = int(np.sum(ref_ok & cand_ok))
    b = int(np.sum(ref_ok & ~cand_ok))
    c = int(np.sum(~ref_ok & cand_ok))
    d = n - a - b - c
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson(a + b, n, z, digits=None)
    l2, u2 = wilson(a + c, n, z, digits=None)
    denom = float(np.sqrt(float(a + b) * (c + d) * (a + c) * (b + d)))
    num = float(a * d - b * c)
    if num > 0:  # Newcombe's continuity correction of the correlation
        num = max(num - n / 2, 0.0)
    phi = num / denom if denom > 0 else 0.0
    dlow = np.sqrt(max((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2, 0.0))
    dhigh = np.sqrt(max((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2, 0.0))
    diff = p1 - p2
    return [round(float(max(-1.0, diff - dlow)), 4), round(float(min(1.0, diff + dhigh)), 4)]
