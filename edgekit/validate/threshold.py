"""Halting-threshold calibration: the threshold baked into the Loop form and the manifest, chosen on held-out
data before export (never on the validation examples)."""

from __future__ import annotations

from collections.abc import Callable

from ..models.families import stopping_rule
from ..schema import Recipe
from ..stopping import HaltLogit
from ..tasks import load_task


def calibrate_halt_threshold(
    recipe: Recipe, model, log: Callable[[str], None], weights_sha256: str | None = None
) -> float:
    """The recipe's threshold, or with 'auto' the smallest one (from a grid) whose answers at the halting step
    are within `halt_tolerance` of the full-budget accuracy on held-out data (disjoint seed): the halting head
    of a model trained with ACT may fire too early for deployment (the TRM demo loses 7 points at 0)."""
    v = recipe.validate_
    if v.halt_threshold != "auto" or stopping_rule(model.family) is not HaltLogit:  # only a halting head calibrates
        return 0.0 if v.halt_threshold == "auto" else float(v.halt_threshold)
    from ..tasks.metrics import step_metrics
    from .reference import reference_rollout

    cal = load_task(recipe.task, v.halt_calibration_n, recipe.task.seed + 7919, split="train")
    from ..export.graphs import takes_puzzle_ids

    ids = cal.puzzle_ids if takes_puzzle_ids(model) else None
    preds, halts, _ = reference_rollout(model, cal.inputs, v.batch_size, "halting threshold", weights_sha256, log, ids)
    preds = [p.reshape(cal.labels.shape) for p in preds]
    for t in (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0):
        m = step_metrics(preds, cal.labels, halts, threshold=t)
        assert m.exact_halted is not None, "ACT rollouts record halting logits at every step"
        if m.exact_halted >= m.exact_per_step[-1] - v.halt_tolerance:
            log(
                f"halting threshold {t}: exact {m.exact_halted:.3f} at the halting step "
                f"vs {m.exact_per_step[-1]:.3f} at the "
                f"full budget, mean {m.mean_steps:.2f} steps ({len(cal.inputs)} held-out samples)"
            )
            return t
    log("no halting threshold up to 8 keeps accuracy; using 8")
    return 8.0
