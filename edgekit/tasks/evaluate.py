"""Evaluate a PyTorch recursive model on task data, step by step."""

from __future__ import annotations

import numpy as np
import torch

from .. import progress
from ..models.base import RecursiveModel
from .metrics import StepMetrics, step_metrics


@torch.no_grad()
def rollout_predictions(
    model: RecursiveModel,
    inputs: np.ndarray,
    steps: int | None = None,
    batch_size: int = 256,
    label: str = "PyTorch rollout",
    puzzle_ids: np.ndarray | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Argmax predictions and halting logits after every step, and the last step's logits; batched to bound memory.
    Reports progress (samples done) under `label`."""
    preds: list[list[np.ndarray]] = []
    halts: list[list[np.ndarray]] = []
    last: list[np.ndarray] = []
    dev = next(model.parameters()).device
    with progress.task(label, len(inputs)) as bar:
        for i in range(0, len(inputs), batch_size):
            ids = None if puzzle_ids is None else torch.from_numpy(puzzle_ids[i : i + batch_size]).to(dev)
            r = model.rollout(torch.from_numpy(inputs[i : i + batch_size]).to(dev), steps, puzzle_ids=ids)
            preds.append([lg.float().argmax(-1).cpu().numpy() for lg in r.logits])
            halts.append([h.float().cpu().numpy() for h in r.halt_logits])
            last.append(r.logits[-1].float().cpu().numpy())
            bar.advance(len(inputs[i : i + batch_size]))
    n_steps = len(preds[0])
    p = [np.concatenate([chunk[t] for chunk in preds]) for t in range(n_steps)]
    h = [np.concatenate([chunk[t] for chunk in halts]) for t in range(n_steps)] if halts[0] else []
    return p, h, np.concatenate(last)


def evaluate(model: RecursiveModel, inputs: np.ndarray, labels: np.ndarray, steps: int | None = None) -> StepMetrics:
    was_training = model.training
    model.eval()
    p, h, _ = rollout_predictions(model, inputs, steps)
    model.train(was_training)
    return step_metrics(p, labels, h or None)
