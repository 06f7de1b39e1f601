"""One interface for every recursive model edgekit handles.

A recursive model is four small functions: `encode` inputs once, make an `initial_state`, apply one recursion
`step`, and `readout` logits plus a halting logit. Export, quantization, the runtime and validation all work on
these pieces, never on a model's own training loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .config import SolverConfig

State = tuple[torch.Tensor, ...]


@dataclass
class Readout:
    """What a model says about a state: logits over the output vocabulary/classes and, for ACT models,
    a halting logit whose sign is the halting decision (halt when > 0)."""

    logits: torch.Tensor
    halt_logit: torch.Tensor | None = None


@dataclass
class Rollout:
    """Per-step record of a recursion: everything validation needs to compare two implementations step by step."""

    logits: list[torch.Tensor] = field(default_factory=list)
    halt_logits: list[torch.Tensor] = field(default_factory=list)
    states: list[State] = field(default_factory=list)
    residuals: list[torch.Tensor] = field(default_factory=list)


class RecursiveModel(nn.Module):
    """Base class; subclasses fill in the four pieces and declare their step budget."""

    family: str = "recursive"
    state_names: tuple[str, ...] = ("z",)
    solver: SolverConfig | None = None  # how a model whose family stops at a fixed point finds it (tol, iteration)

    @property
    def step_budget(self) -> int:
        raise NotImplementedError

    @property
    def forward_dtype(self) -> str:
        """The dtype the model computes in (the PyTorch reference runs in it)."""
        return "float32"

    def initial_vectors(self) -> dict[str, torch.Tensor]:
        """The vector each state starts from, broadcast over batch (and positions), by state name."""
        raise NotImplementedError

    def manifest_config(self) -> dict[str, Any]:
        """The manifest's `model.config`: what the runtime and later stages read about this model."""
        raise NotImplementedError

    def step_with_residual(self, state: State, x: torch.Tensor) -> tuple[State, torch.Tensor]:
        """One step and its relative residual |new - old| / |new| of the first state: the signal a fixed-point
        stopping rule stops on (a DEQ measures f(z) against z its solver's way instead)."""
        new = self.step(state, x)
        return new, relative_residual(new[0], state[0])

    def encode(self, inputs: torch.Tensor, puzzle_ids: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def initial_state(self, x: torch.Tensor) -> State:
        raise NotImplementedError

    def step(self, state: State, x: torch.Tensor) -> State:
        raise NotImplementedError

    def readout(self, state: State) -> Readout:
        raise NotImplementedError

    @torch.no_grad()
    def rollout(
        self,
        inputs: torch.Tensor,
        steps: int | None = None,
        puzzle_ids: torch.Tensor | None = None,
        keep_states: bool = False,
    ) -> Rollout:
        """Run `steps` recursion steps (default: the budget) without halting, recording every step.

        Like the references' eval mode, every sample runs all steps; early halting is applied afterwards
        from the recorded halting logits so that one rollout serves every budget and threshold.
        """
        steps = self.step_budget if steps is None else steps
        x = self.encode(inputs, puzzle_ids)
        state = self.initial_state(x)
        out = Rollout()
        for _ in range(steps):
            new_state = self.step(state, x)
            out.residuals.append(relative_residual(new_state[0], state[0]))
            state = new_state
            r = self.readout(state)
            out.logits.append(r.logits)
            if r.halt_logit is not None:
                out.halt_logits.append(r.halt_logit)
            if keep_states:
                out.states.append(state)
        return out


def relative_residual(new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """Per-sample ‖new − old‖ / ‖new‖ in fp32: the DEQ convergence measure, also useful for ACT states."""
    b = new.shape[0]
    diff = (new.float() - old.float()).reshape(b, -1).norm(dim=1)
    return diff / new.float().reshape(b, -1).norm(dim=1).clamp_min(1e-12)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
