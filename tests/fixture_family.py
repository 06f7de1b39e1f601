"""A model family added the way a newcomer would, as a test fixture: an ACT model on token inputs (TRM's body)
whose recursion stops at a fixed point (relative residual of its state within a tolerance) instead of on a halting
logit, as newer recursive reasoners do. One registration, nothing else edited: export, the manifest and the
runtime's host loop follow its stopping rule."""

from __future__ import annotations

from edgekit.contracts import TOKENS
from edgekit.models.act import TRM
from edgekit.models.checkpoint import PREFIXES
from edgekit.models.config import ACTConfig, SolverConfig
from edgekit.models.families import Family


def build(config: ACTConfig) -> TRM:
    """TRM's body, iterated until its state moves less than `tol` (relative), at most the step budget."""
    model = TRM(config)
    model.solver = SolverConfig(name="fixed_point", max_iter=config.halt_max_steps, tol=1e-3)
    return model


ACT_FIXED_POINT = Family(
    name="act_fixed_point",
    arch_names=("tests.act_fixed_point",),
    build=build,
    stopping="fixed_point",
    contract=TOKENS,
    checkpoint_prefixes=PREFIXES,
    saved_arch_name=lambda config: "tests.act_fixed_point@ACTFixedPoint",
)
