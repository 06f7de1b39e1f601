"""The three graphs every recursive model is exported as: encode, step, readout.

They are the unit the host-loop runtime, quantization and TensorRT step engines use (the unrolled
and ONNX-Loop forms are built on top of the step graph). Names of inputs/outputs are fixed so the runtime needs no
model-specific code:

  encode:  inputs [B, S] (int64 tokens, or float features for DEQ)
           [, puzzle_ids [B] int64: rows of the puzzle-embedding table]  -> x
  step:    <state names...>, x                                          -> <state names>_next..., the stopping
                                                                           rule's signal: halt (halting logit) |
                                                                           residual (fixed point; a DEQ's is the
                                                                           solver's stop measure of f(z) against z)
  readout: <state names...>                                             -> logits[, halt]
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..models.act import ACTModel
from ..models.base import Readout, RecursiveModel, State
from ..models.deq import DEQModel
from ..models.families import stopping_rule


def _outputs(r: Readout) -> tuple[torch.Tensor, ...]:
    """Graph outputs of a readout: logits, plus the halting logit for ACT models."""
    return (r.logits.float(),) if r.halt_logit is None else (r.logits.float(), r.halt_logit.float())


class EncodeGraph(nn.Module):
    def __init__(self, model: RecursiveModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: torch.Tensor, puzzle_ids: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.encode(inputs, puzzle_ids)  # in the model's compute dtype, like the state


def takes_puzzle_ids(model: RecursiveModel) -> bool:
    """HRM / TRM with a puzzle-embedding table of more than the blank row (ARC): their encode graph takes the
    table rows as a second input. A blank-only table (Sudoku, Maze) is a constant of the graph, as before."""
    return isinstance(model, ACTModel) and model.config.puzzle_emb_ndim > 0 and model.config.num_puzzle_identifiers > 1


def _halt(model: RecursiveModel, state: State, x: torch.Tensor) -> tuple[State, torch.Tensor]:
    """One step and the halting logit of the new state's readout."""
    new = model.step(state, x)
    halt = model.readout(new).halt_logit
    assert halt is not None, "a halting-logit family's readout carries a halting logit"
    return new, halt


def _residual(model: RecursiveModel, state: State, x: torch.Tensor) -> tuple[State, torch.Tensor]:
    return model.step_with_residual(state, x)


# the stopping rule's signal (the step graph's last output) -> how a step computes it
SIGNALS: dict[str, Callable[[RecursiveModel, State, torch.Tensor], tuple[State, torch.Tensor]]] = {
    "halt": _halt,
    "residual": _residual,
}


class StepGraph(nn.Module):
    def __init__(self, model: ACTModel | DEQModel) -> None:
        super().__init__()
        self.model = model
        self.signal = SIGNALS[stopping_rule(model.family).signal]

    def forward(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        *state, x = args
        new, extra = self.signal(self.model, tuple(state), x)
        return (*new, extra)


class ReadoutGraph(nn.Module):
    def __init__(self, model: RecursiveModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return _outputs(self.model.readout(tuple(state)))


def solve_spd(A: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Solve A w = b for a batch of small symmetric positive-definite systems by Gauss-Jordan elimination
    without pivoting (safe for SPD matrices), unrolled over the static size so it exports to plain ONNX ops."""
    m = A.shape[-1]
    eye = torch.eye(m, dtype=A.dtype)
    for i in range(m):
        e = eye[i]  # [m] one-hot of the pivot row
        piv = A[:, i, i : i + 1]  # [B, 1]
        row = A[:, i, :] / piv  # normalised pivot row [B, m]
        bi = b[:, i : i + 1] / piv  # [B, 1]
        col = A[:, :, i] * (1 - e)  # multipliers for every other row [B, m]
        A = A - col[:, :, None] * row[:, None, :]
        b = b - col * bi
        A = A * (1 - e)[None, :, None] + e[None, :, None] * row[:, None, :]
        b = b * (1 - e) + e * bi
    return b


class AndersonUpdate(nn.Module):
    """One Anderson-acceleration update on a fixed m-slot history, the math of `models.deq.anderson` in
    plain ops: push (z, f(z)), solve alpha = A^-1 1 / (1^T A^-1 1) over the valid slots with
    A = G G^T + lam * mean(diag) * I, then mix. Unused slots are masked to identity rows with zero right-hand
    side, so they get alpha = 0 and the first iteration reduces to plain damped iteration."""

    def __init__(self, m: int, lam: float, beta: float) -> None:
        super().__init__()
        self.m, self.lam, self.beta = m, lam, beta

    def forward(self, X: torch.Tensor, F: torch.Tensor, z: torch.Tensor, fz: torch.Tensor, k: torch.Tensor):
        m = self.m
        X = torch.cat([X[:, 1:], z[:, None]], 1)
        F = torch.cat([F[:, 1:], fz[:, None]], 1)
        n = torch.minimum(k + 1, torch.tensor(m, dtype=k.dtype))
        mask = (torch.arange(m) >= (m - n)).to(z.dtype)  # valid (most recent n) slots
        G = (F - X) * mask[None, :, None]
        GG = G @ G.transpose(1, 2)
        eye = torch.eye(m, dtype=z.dtype)
        scale = ((GG * eye).sum((1, 2)) / n.to(z.dtype)).clamp_min(1e-30)  # mean of the valid diagonal
        A = (GG + self.lam * scale[:, None, None] * eye) * (mask[:, None] * mask[None, :]) + eye * (1 - mask)
        w = solve_spd(A, mask.expand(z.shape[0], m))
        alpha = (w / w.sum(-1, keepdim=True))[..., None]
        fx = (alpha * F).sum(1)
        xx = (alpha * X).sum(1)
        return X, F, self.beta * fx + (1 - self.beta) * xx
