"""Input contracts: what a model's encode graph takes, named by kind so that tasks declare the inputs they fit and
model families the inputs they take, and neither names the other.

Standard library only (tasks, the runtime and the models import it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TOKENS = "tokens"  # int64 token ids [batch, seq_len] with an id range (HRM, TRM)
FEATURES = "features"  # float32 vectors [batch, features] (DEQ)
CONTRACTS = {TOKENS: "int64", FEATURES: "float32"}  # kind -> the dtype the manifest's `graph.input` records


def contract_of(input_spec: Mapping[str, Any]) -> str | None:
    """The kind of a manifest's `graph.input` (by its dtype), None for inputs no kind describes."""
    dtype = input_spec.get("dtype")
    return next((kind for kind, d in CONTRACTS.items() if d == dtype), None)
