"""Losses of the references' ACTLossHead (stablemax cross-entropy, halting BCE)."""

from __future__ import annotations

import torch


def _stablemax_s(x: torch.Tensor, eps: float = 1e-30) -> torch.Tensor:
    return torch.where(x < 0, 1 / (1 - x + eps), x + 1)


def stablemax_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-token stablemax CE in fp64, as the reference uses for Sudoku and Maze."""
    s = _stablemax_s(logits.to(torch.float64))
    logprobs = torch.log(s / s.sum(-1, keepdim=True))
    return -torch.gather(logprobs, -1, labels.long().unsqueeze(-1)).squeeze(-1)
