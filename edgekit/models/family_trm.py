"""TRM (Tiny Recursive Model, the TRM repository's `recursive_reasoning.trm`): token inputs, halts on its q_halt
logit."""

from __future__ import annotations

from ..contracts import TOKENS
from .act import TRM
from .checkpoint import PREFIXES
from .families import Family, register_family

register_family(
    Family(
        name="trm",
        arch_names=("recursive_reasoning.trm",),
        build=TRM,
        stopping="halt_logit",
        contract=TOKENS,
        checkpoint_prefixes=PREFIXES,
        saved_arch_name=lambda config: "recursive_reasoning.trm@TinyRecursiveReasoningModel_ACTV1",
    )
)
