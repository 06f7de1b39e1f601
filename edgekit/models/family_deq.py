"""DEQ (a deep equilibrium model, saved with deq_config.yaml rather than a reference arch section): feature-vector
inputs, stops at a fixed point of its cell within the solver's tolerance."""

from __future__ import annotations

from ..contracts import FEATURES
from .deq import build_deq
from .families import Family, register_family

register_family(
    Family(
        name="deq",
        arch_names=(),
        build=build_deq,
        stopping="fixed_point",
        contract=FEATURES,
        zero_initial_state=True,
        precisions=("float32",),
    )
)
