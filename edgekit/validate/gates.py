"""Gates declared in a recipe, evaluated on results: each a (name, variant, value, limit, passed) record.

The implementation lives in `edgekit.runtime.gate_eval` (numpy only), so `edgekit verify --full` on a device
evaluates the very same gates against the artefact's recorded references."""

from __future__ import annotations

from ..runtime.gate_eval import BUDGET_GATES, evaluate_gates, exit_code

__all__ = ["BUDGET_GATES", "evaluate_gates", "exit_code"]
