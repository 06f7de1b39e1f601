"""HRM (sapientinc/HRM's `hrm.hrm_act_v1`, and the TRM repository's copy `recursive_reasoning.hrm`): token inputs,
halts on q_halt - q_continue."""

from __future__ import annotations

from typing import Any

from ..contracts import TOKENS
from .act import HRM
from .checkpoint import PREFIXES
from .families import Family, register_family


def _saved_arch_name(config: Any) -> str:
    """HRM with mlp_t exists only in the TRM repository's copy of HRM (models/recursive_reasoning/hrm.py)."""
    module = "recursive_reasoning.hrm" if config.mlp_t else "hrm.hrm_act_v1"
    return f"{module}@HierarchicalReasoningModel_ACTV1"


register_family(
    Family(
        name="hrm",
        arch_names=("hrm.hrm_act_v1", "recursive_reasoning.hrm"),
        build=HRM,
        stopping="halt_logit",
        contract=TOKENS,
        checkpoint_prefixes=PREFIXES,
        saved_arch_name=_saved_arch_name,
    )
)
