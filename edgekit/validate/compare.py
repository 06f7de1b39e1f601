"""Compare variants of one model (PyTorch reference, exported ONNX, ...) on task data, step by step."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..tasks.metrics import StepMetrics, step_metrics


@dataclass
class Variant:
    """Per-step predictions of one implementation: preds[t] is the argmax after step t+1."""

    name: str
    preds: list[np.ndarray]
    halt: list[np.ndarray] = field(default_factory=list)
    last_logits: np.ndarray | None = None
    seconds: float | None = None


def variant_metrics(v: Variant, labels: np.ndarray, threshold: float = 0.0) -> StepMetrics:
    preds = [p.reshape(labels.shape) for p in v.preds]
    return step_metrics(preds, labels, v.halt or None, threshold=threshold)


def agreement(a: Variant, b: Variant) -> dict:
    """Argmax agreement per step, halting-step agreement and last-step max |Δlogits| between two variants."""
    per_step = [float(np.mean(pa == pb)) for pa, pb in zip(a.preds, b.preds)]
    out = {
        "argmax_agreement_per_step": per_step,
        "argmax_agreement_last": per_step[-1],
        "argmax_agreement_min": min(per_step),
    }
    if a.last_logits is not None and b.last_logits is not None:
        out["max_abs_dlogits_last"] = float(np.abs(a.last_logits.astype(np.float64) - b.last_logits).max())
    if a.halt and b.halt:
        from ..tasks.metrics import halting_steps

        ha, hb = halting_steps(np.stack(a.halt)), halting_steps(np.stack(b.halt))
        out["halting_step_agreement"] = float(np.mean(ha == hb))
    return out
