"""PyTorch reference rollouts, cached by content: the weights' hash, the model's configuration and precision, the
examples themselves, the step budget and the torch / edgekit versions. A second `edgekit export` or `edgekit
validate` with unchanged inputs reads them back instead of re-running PyTorch (the slowest part of the main job
on a CPU); anything that could change a number changes the key."""

from __future__ import annotations

import hashlib
import json

import numpy as np

from .. import __version__
from ..cache import cache_file, read_npz_cache, write_cache

ROLLOUT_VERSION = 1  # bump when rollout_predictions changes what it returns
MAX_CACHED_BYTES = 256 << 20  # larger rollouts (long sequences x many examples) are recomputed, not stored


def rollout_key(model, inputs: np.ndarray, weights_sha256: str) -> str:
    import torch

    h = hashlib.sha256(str(inputs.shape).encode() + str(inputs.dtype).encode())
    h.update(np.ascontiguousarray(inputs).tobytes())
    config = model.config.model_dump() if hasattr(model, "config") else repr(model)
    dtype = str(next(model.parameters()).dtype)
    parts = [ROLLOUT_VERSION, weights_sha256, config, dtype, h.hexdigest(), model.step_budget, torch.__version__,
             __version__]  # fmt: skip
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def reference_rollout(
    model, inputs: np.ndarray, batch: int, label: str, weights_sha256: str | None, log=None
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """rollout_predictions, read from the cache when this exact rollout was computed before."""
    from ..tasks.evaluate import rollout_predictions

    if not weights_sha256:
        return rollout_predictions(model, inputs, batch_size=batch, label=label)
    path = cache_file("reference", f"{rollout_key(model, inputs, weights_sha256)}.npz")
    cached = read_npz_cache(path, lambda z: (list(z["preds"]), list(z["halts"]), z["last"]))
    if cached is not None:
        if log:
            log(f"{label}: PyTorch rollout read from the cache ({path.name})")
        return cached
    preds, halts, last = rollout_predictions(model, inputs, batch_size=batch, label=label)
    stacked = np.stack(preds)
    halts_arr = np.stack(halts) if halts else np.zeros((0, len(inputs)), np.float32)
    if stacked.nbytes + halts_arr.nbytes + last.nbytes <= MAX_CACHED_BYTES:
        write_cache(path, lambda t: np.savez(t, preds=stacked, halts=halts_arr, last=last))
    return preds, halts, last
