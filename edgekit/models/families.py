"""Model families, registered one file each (`family_<name>.py`), as Optimum registers an exporter config per
model type: which reference `arch.name`s a family loads (exact module paths, never substrings), how its model is
built from its config, which state-dict key prefixes its checkpoints carry, the input contract it takes and the
stopping rule it follows (`edgekit.stopping`). Export, validation, tasks and the runtime read these, not names.

Plain Python: registrations are looked up before any model is built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..contracts import CONTRACTS, FEATURES
from ..errors import CheckpointError
from ..stopping import KINDS, FixedPoint, HaltLogit, Stopping, make_rule

# reference architectures edgekit cannot map yet, by exact module path: a clear refusal, not "unknown"
UNSUPPORTED = {
    "recursive_reasoning.trm_singlez": "single-z TRM",
    "recursive_reasoning.trm_hier6": "six-z TRM",
    "recursive_reasoning.transformers_baseline": "transformer baseline",
}


@dataclass(frozen=True)
class Family:
    """One model family. `arch_names`: reference `arch.name` module paths (the part before '@') it loads;
    `build`: config -> model; `saved_arch_name`: config -> the `arch.name` a saved checkpoint gets;
    `zero_initial_state`: its states start from zeros (no initial_state.npz); `precisions`: the float precisions
    its graphs export in."""

    name: str
    arch_names: tuple[str, ...]
    build: Callable[[Any], Any]
    stopping: str
    contract: str
    checkpoint_prefixes: tuple[str, ...] = ()
    saved_arch_name: Callable[[Any], str] | None = None
    zero_initial_state: bool = False
    precisions: tuple[str, ...] = ("float32", "float16")

    def input_spec(self, model: Any) -> dict[str, Any]:
        """The manifest's `graph.input` for one of this family's models: what the runtime checks inputs against."""
        if self.contract == FEATURES:
            return {"dtype": "float32", "shape": ["batch", model.encoder.in_features]}
        c = model.config
        return {"dtype": "int64", "shape": ["batch", c.seq_len], "range": [0, c.vocab_size - 1]}

    def example_inputs(self, model: Any, batch: int = 2) -> Any:
        """Inputs a graph export traces with, drawn within the input contract (token ids above the blank 0)."""
        import torch

        spec = self.input_spec(model)
        if self.contract == FEATURES:
            return torch.rand(batch, spec["shape"][1])
        low, high = spec["range"]
        return torch.randint(low + 1, high + 1, (batch, spec["shape"][1]), dtype=torch.long)

    def rule(self, model: Any, threshold: float = 0.0) -> Stopping:
        """The stopping rule one of this family's models is exported with: the halting threshold, or the model's
        solver settings."""
        solver = None if model.solver is None else model.solver.model_dump()
        return make_rule(self.stopping, threshold, solver)

    def __post_init__(self) -> None:
        if self.stopping not in KINDS:
            raise ValueError(f"family {self.name}: stopping {self.stopping!r} is not one of {', '.join(KINDS)}")
        if self.contract not in CONTRACTS:
            raise ValueError(f"family {self.name}: contract {self.contract!r} is not one of {', '.join(CONTRACTS)}")


FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    """Add a family; a name or arch name claimed twice is a programming error."""
    if family.name in FAMILIES:
        raise ValueError(f"model family {family.name!r} is registered twice")
    taken = {a: f.name for f in FAMILIES.values() for a in f.arch_names}
    clash = [a for a in family.arch_names if a in taken or a in UNSUPPORTED]
    if clash:
        raise ValueError(f"family {family.name}: arch name {clash[0]!r} is already taken")
    FAMILIES[family.name] = family
    return family


def get_family(name: str) -> Family:
    if name not in FAMILIES:
        raise CheckpointError(f"unknown model family {name!r}", f"supported: {', '.join(sorted(FAMILIES))}")
    return FAMILIES[name]


def stopping_rule(name: str) -> type[HaltLogit] | type[FixedPoint]:
    """The stopping rule (its class: graph output, control input, whether the readout halts) of family `name`."""
    return KINDS[get_family(name).stopping]


def supported_arch_names() -> list[str]:
    return sorted(a for f in FAMILIES.values() for a in f.arch_names)


def family_for_arch(arch_name: str) -> Family:
    """The family whose reference module path is exactly `arch_name`'s (`module@Class`); anything else is one
    line naming the supported ones (`hrm_v2` is not HRM)."""
    module = str(arch_name).partition("@")[0].strip()
    supported = f"supported: {', '.join(supported_arch_names())}"
    if module in UNSUPPORTED:
        raise CheckpointError(f"architecture {arch_name!r} ({UNSUPPORTED[module]}) is not supported yet", supported)
    for family in FAMILIES.values():
        if module in family.arch_names:
            return family
    raise CheckpointError(f"unknown architecture name {str(arch_name)[:200]!r} in arch.name", supported)
