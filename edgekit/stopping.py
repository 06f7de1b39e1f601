"""How a recursion stops, as data: the one place export, validation and the runtime ask, instead of the model
family's name.

- `HaltLogit(threshold)`: an ACT model (HRM, TRM) stops a sample once its halting logit exceeds the threshold; the
  step graph's extra output is `halt` and the Loop form's control input `halt_threshold`.
- `FixedPoint(tol, solver)`: an equilibrium model (DEQ) stops once the relative residual |f(z) - z| / |f(z)| is
  within the tolerance; the extra output is `residual`, the control input `tol`, and the solver may carry a
  history (Anderson) that one-state-per-sample serving cannot.

Standard library only: the device runtime imports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class HaltLogit:
    """Stop where the halting logit is above `threshold` (the validated one, written into the Loop form)."""

    threshold: float = 0.0
    kind: ClassVar[str] = "halt_logit"
    signal: ClassVar[str] = "halt"  # the step graph's last output
    limit: ClassVar[str] = "halt_threshold"  # the Loop form's control input and the runtime option
    halting_head: ClassVar[bool] = True  # the readout also says whether to halt
    solver: ClassVar[str | None] = None

    @property
    def value(self) -> float:
        return self.threshold

    @property
    def settings(self) -> dict[str, Any]:
        return {}

    @property
    def description(self) -> str:
        """The manifest's `graph.halting`: how the recursion stops, for people."""
        return "halt > halt_threshold (TRM: q_halt; HRM: q_halt - q_continue)"

    def stops(self, signal: Any, limit: float) -> Any:
        return signal > limit


@dataclass(frozen=True)
class FixedPoint:
    """Stop where the relative residual is within `tol`; `solver` names the iteration (plain or Anderson) and
    `options` keeps the solver's other settings as the artefact wrote them."""

    tol: float = 1e-4
    solver: str | None = "fixed_point"
    options: Mapping[str, Any] = field(default_factory=dict, compare=False)
    kind: ClassVar[str] = "fixed_point"
    signal: ClassVar[str] = "residual"
    limit: ClassVar[str] = "tol"
    halting_head: ClassVar[bool] = False

    @property
    def value(self) -> float:
        return self.tol

    @property
    def settings(self) -> dict[str, Any]:
        return {**self.options, "name": self.solver, "tol": self.tol}

    @property
    def description(self) -> str:
        return f"residual = |f(z) - z| / |f(z)| <= tol ({self.solver} solver)"

    def stops(self, signal: Any, limit: float) -> Any:
        return signal <= limit


Stopping = HaltLogit | FixedPoint
KINDS: dict[str, type[HaltLogit] | type[FixedPoint]] = {"halt_logit": HaltLogit, "fixed_point": FixedPoint}


def halt_logit(threshold: float = 0.0) -> HaltLogit:
    return HaltLogit(float(threshold))


def fixed_point(tol: float = 1e-4, solver: str | None = "fixed_point", **options: Any) -> FixedPoint:
    return FixedPoint(float(tol), solver, options)


# artefacts written before `model.stopping` existed: their families' rules
_LEGACY = {"trm": "halt_logit", "hrm": "halt_logit", "deq": "fixed_point"}


def manifest_entry(family: str, kind: str) -> dict[str, Any]:
    """What a manifest's `model` section says about stopping: nothing for the families older artefacts imply
    (their manifests stay as they were), `{"stopping": {"kind": ...}}` for every other family."""
    return {} if _LEGACY.get(family) == kind else {"stopping": {"kind": kind}}


def legacy_kind(family: str) -> str:
    """The stopping kind a manifest without `model.stopping` implies for its family."""
    return _LEGACY.get(family, "halt_logit")


def make_rule(kind: str, threshold: float, solver: Mapping[str, Any] | None) -> Stopping:
    """The rule of `kind` with the values the graphs were exported with: the halting threshold, or the solver
    settings (`name`, `tol` and the solver's others)."""
    if kind == "fixed_point":
        settings = dict(solver or {})
        name = settings.pop("name", "fixed_point")
        return fixed_point(settings.pop("tol", 1e-4), name, **settings)
    return halt_logit(threshold)
