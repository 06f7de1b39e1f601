"""Calibration data from full recursion trajectories, cached by content hash.

A step graph sees very different states at step 1 (the fixed initial state) and step 16 (near a fixed point),
so calibrating on first steps only mis-sizes the ranges the later steps need. Each item is one step's graph
inputs for a small batch, gathered from PyTorch float32 rollouts over every step.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import torch

from .. import progress
from ..cache import entry, read_arrays, write_arrays
from ..models.base import RecursiveModel


def cache_key(*parts: object) -> str:
    """Content hash over everything that changes the result (model hash, data, settings, versions)."""
    import nncf
    import onnx

    blob = json.dumps([*map(str, parts), torch.__version__, onnx.__version__, nncf.__version__], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


@torch.no_grad()
def trajectory_items(
    model: RecursiveModel, inputs: np.ndarray, batch: int, puzzle_ids: np.ndarray | None = None
) -> list[dict[str, np.ndarray]]:
    """Step-graph feeds {state..., x} at every recursion step of every sample (float32)."""
    items: list[dict[str, np.ndarray]] = []
    names = list(model.state_names)
    with progress.task("calibration trajectories", len(inputs)) as bar:
        for i in range(0, len(inputs), batch):
            ids = None if puzzle_ids is None else torch.from_numpy(puzzle_ids[i : i + batch])
            x = model.encode(torch.from_numpy(inputs[i : i + batch]), ids)
            state = model.initial_state(x)
            for _ in range(model.step_budget):
                items.append({**{n: s.float().numpy() for n, s in zip(names, state)}, "x": x.float().numpy()})
                state = model.step(state, x)
            bar.advance(len(inputs[i : i + batch]))
    return items


def cached_items(key: str, make) -> tuple[list[dict[str, np.ndarray]], bool]:
    """Load calibration items for `key` from the cache, or make and store them. Returns (items, was_cached)."""
    e = entry("calibration", key)  # the key covers the checkpoint, the data, the settings and the versions

    def decode(z: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
        names = [str(s) for s in z["names"]]
        return [{k: z[f"{j}/{k}"] for k in names} for j in range(int(z["count"]))]

    cached = read_arrays(e, decode)
    if cached is not None:
        return cached, True
    items = make()
    arrays = {f"{j}/{k}": v for j, it in enumerate(items) for k, v in it.items()}
    write_arrays(e, {"count": np.array(len(items)), "names": np.array(list(items[0])), **arrays})
    return items, False
