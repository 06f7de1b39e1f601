"""Gates declared in a recipe, evaluated on results: each a (name, variant, value, limit, passed) record.

The implementation lives in `edgekit.runtime.gate_eval` (numpy only), so `edgekit verify --full` on a device
evaluates the very same gates against the artefact's recorded references."""

from __future__ import annotations

from typing import Any

from ..runtime.gate_eval import BUDGET_GATES, evaluate_gates, exit_code

__all__ = ["BUDGET_GATES", "deployed_warnings", "evaluate_gates", "exit_code"]

FULL_BUDGET_GATES = ("min_exact", "max_exact_drop", "min_argmax_agreement", "max_pass2_drop")
DEPLOYED_GATES = ("max_exact_halted_drop", "min_halting_agreement")


def deployed_warnings(gates: Any, halting_head: bool, runtime_defaults: Any = None) -> list[str]:
    """One line per way the gates judge another configuration than the one a device runs: a model that halts
    early gated only at the full step budget, or an artefact whose tuned runtime defaults (`edgekit tune --apply`)
    a device uses while validation judges the validated settings."""
    out = []
    on = [g for g in FULL_BUDGET_GATES if getattr(gates, g, None) is not None]
    if halting_head and on and all(getattr(gates, g, None) is None for g in DEPLOYED_GATES):
        out.append(
            f"the gates ({', '.join(on)}) judge the answer after the full step budget, but a device returns the "
            "answer at each example's halting step, which no gate checks: set gates.max_exact_halted_drop and "
            "gates.min_halting_agreement"
        )
    if runtime_defaults is not None:
        d = runtime_defaults
        variant, cap = getattr(d, "variant", None), getattr(d, "max_steps", None)
        thr = getattr(d, "halt_threshold", None)
        out.append(
            f"a device runs this artefact's tuned runtime defaults ({variant}, halting threshold "
            f"{'never' if thr is None else f'{thr:g}'}, step cap {cap}), but these gates judge the validated "
            "settings: re-run `edgekit tune --apply` after validating, or remove runtime_defaults"
        )
    return out
