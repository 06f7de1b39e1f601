"""Compare variants of one model (PyTorch reference, exported ONNX, ...) on task data, step by step."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..tasks.metrics import StepMetrics, exact_per_sample, paired_drop_interval, step_metrics, wilson


@dataclass
class Variant:
    """Per-step predictions of one implementation: preds[t] is the argmax after step t+1. `name` is what a person
    reads ("onnx (int8, step graph, host loop)"); `key` names it in results.json, junit.xml and references.npz:
    the `--variant` name of an ONNX variant, pytorch_<dtype> for a PyTorch reference."""

    name: str
    preds: list[np.ndarray]
    halt: list[np.ndarray] = field(default_factory=list)
    last_logits: np.ndarray | None = None
    seconds: float | None = None
    key: str = ""


def variant_metrics(v: Variant, labels: np.ndarray, threshold: float = 0.0) -> StepMetrics:
    preds = [p.reshape(labels.shape) for p in v.preds]
    return step_metrics(preds, labels, v.halt or None, threshold=threshold)


def agreement(
    a: Variant,
    b: Variant,
    threshold: float = 0.0,
    labels: np.ndarray | None = None,
    transition: bool = False,
    b_threshold: float | None = None,
) -> dict:
    """Argmax agreement per step, halting-step agreement at the artefact's halting threshold and last-step
    |Δlogits| between two variants; with labels, the paired 95 % intervals of b's exact accuracy minus a's (at the
    full budget and at each sample's halting step), which the drop gates report. `transition`: also the halting-step
    transition matrix, counts[i][j] = examples halting at step i+1 in b and at step j+1 in a (its diagonal is the
    halting-step agreement), which the report plots to show where a compressed variant's halting moved.
    `b_threshold`: b's own halting threshold where it differs from a's (a compressed variant halts at its own)."""
    per_step = [float(np.mean(pa == pb)) for pa, pb in zip(a.preds, b.preds)]
    out = {
        "argmax_agreement_per_step": per_step,
        "argmax_agreement_last": per_step[-1],
        "argmax_agreement_min": min(per_step),
    }
    last_a, last_b = a.preds[-1].reshape(len(a.preds[-1]), -1), b.preds[-1].reshape(len(b.preds[-1]), -1)
    out["same_answer_last"] = float(np.mean((last_a == last_b).all(-1)))  # whole answers, not positions
    if a.last_logits is not None and b.last_logits is not None:
        d = np.abs(a.last_logits.astype(np.float64) - b.last_logits).reshape(len(a.last_logits), -1)
        out["max_abs_dlogits_last"] = float(d.max())
        # per sample, the largest logit difference relative to that sample's largest |logit|: what a reader can
        # judge (raw differences of a chaotic sample's logits can be large while every argmax still agrees)
        scale = np.maximum(np.abs(a.last_logits.astype(np.float64)).reshape(len(d), -1).max(-1), 1e-12)
        rel = d.max(-1) / scale
        out["dlogits_rel_median"] = float(np.median(rel))
        out["dlogits_rel_p99"] = float(np.quantile(rel, 0.99))
    if a.halt and b.halt:
        from ..tasks.metrics import halting_steps

        tb = threshold if b_threshold is None else b_threshold
        ha, hb = halting_steps(np.stack(a.halt), threshold), halting_steps(np.stack(b.halt), tb)
        out["halting_step_agreement"] = float(np.mean(ha == hb))
        out["halting_step_agreement_interval"] = wilson(int(np.sum(ha == hb)), len(ha))
        if transition:
            t = max(len(a.halt), len(b.halt))
            out["halting_step_transition"] = np.bincount((hb - 1) * t + ha - 1, minlength=t * t).reshape(t, t).tolist()
    if labels is not None:
        ok_a, ok_b = exact_per_sample(a.preds[-1], labels), exact_per_sample(b.preds[-1], labels)
        out["exact_drop_interval"] = paired_drop_interval(ok_b, ok_a)
        if a.halt and b.halt:
            cols = np.arange(len(labels))
            ok_a = exact_per_sample(np.stack(a.preds)[ha - 1, cols], labels)
            ok_b = exact_per_sample(np.stack(b.preds)[hb - 1, cols], labels)
            out["exact_halted_drop_interval"] = paired_drop_interval(ok_b, ok_a)
    return out
