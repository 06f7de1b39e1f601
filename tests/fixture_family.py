"""A model family added the way a newcomer would, as a test fixture: an ACT model on token inputs (TRM's body)
whose recursion stops at a fixed point (relative residual within a tolerance) instead of on a halting logit, as
newer recursive reasoners do. One registration, nothing else edited."""

from __future__ import annotations

from edgekit.contracts import TOKENS
from edgekit.models.act import TRM
from edgekit.models.checkpoint import PREFIXES
from edgekit.models.families import Family

ACT_FIXED_POINT = Family(
    name="act_fixed_point",
    arch_names=("tests.act_fixed_point",),
    build=TRM,
    stopping="fixed_point",
    contract=TOKENS,
    checkpoint_prefixes=PREFIXES,
    saved_arch_name=lambda config: "tests.act_fixed_point@ACTFixedPoint",
)
