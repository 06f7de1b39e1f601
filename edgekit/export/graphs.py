"""The three graphs every recursive model is exported as: encode, step, readout.

They are the unit the host-loop runtime, quantization and TensorRT step engines use (issue #3 builds unrolled
and ONNX-Loop forms on top of the step graph). Names of inputs/outputs are fixed so the runtime needs no
model-specific code:

  encode:  inputs [B, S] (int64 tokens, or float features for DEQ)      -> x
  step:    <state names...>, x                                          -> <state names>_next..., halt (ACT) | residual (DEQ)
  readout: <state names...>                                             -> logits[, halt]
"""
from __future__ import annotations

import torch
from torch import nn

from ..models.base import Readout, RecursiveModel, relative_residual


def _outputs(r: Readout) -> tuple[torch.Tensor, ...]:
    """Graph outputs of a readout: logits, plus the halting logit for ACT models."""
    return (r.logits.float(),) if r.halt_logit is None else (r.logits.float(), r.halt_logit.float())


class EncodeGraph(nn.Module):
    def __init__(self, model: RecursiveModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.model.encode(inputs).float()


class StepGraph(nn.Module):
    def __init__(self, model: RecursiveModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        *state, x = args
        new = self.model.step(tuple(state), x)
        if self.model.family == "deq":
            extra = relative_residual(new[0], state[0])
        else:
            extra = self.model.readout(new).halt_logit
        return (*new, extra)


class ReadoutGraph(nn.Module):
    def __init__(self, model: RecursiveModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return _outputs(self.model.readout(tuple(state)))


class UnrolledGraph(nn.Module):
    """inputs -> logits (and halting logit / residual) after a fixed budget of K steps: the static form every
    ONNX consumer accepts. The references evaluate ACT models with K = 16."""

    def __init__(self, model: RecursiveModel, steps: int) -> None:
        super().__init__()
        self.model = model
        self.steps = steps

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.model.encode(inputs)
        state = self.model.initial_state(x)
        for _ in range(self.steps):
            state = self.model.step(state, x)
        return _outputs(self.model.readout(state))
