"""Rollouts cached by content, so a second `edgekit export` or `edgekit validate` with unchanged inputs reads them
back instead of recomputing (the rollouts are nearly all of the main job's time on a CPU).

- PyTorch reference rollouts: keyed by the weights' hash, the model's configuration and precision, the examples,
  the step budget and the torch / edgekit versions.
- ONNX rollouts of an artefact's variant: keyed by the bytes of the graphs it runs (encode / step / readout, and
  the initial state), the examples, the step budget and the onnxruntime / edgekit versions and providers. A
  re-export that writes byte-identical graphs is a hit; any change to a graph, a weight or a threshold baked into
  it is a miss.

Anything that could change a number changes the key."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .. import __version__
from ..cache import Entry, entry, read_arrays, write_arrays

ROLLOUT_VERSION = 2  # bump when rollout_predictions or Runner.run change what they return
MAX_CACHED_BYTES = 256 << 20  # larger rollouts (long sequences x many examples) are recomputed, not stored

Rollout = tuple[list[np.ndarray], list[np.ndarray], np.ndarray]


def _inputs_digest(inputs: np.ndarray) -> str:
    h = hashlib.sha256(str(inputs.shape).encode() + str(inputs.dtype).encode())
    h.update(np.ascontiguousarray(inputs).tobytes())
    return h.hexdigest()


def _key(parts: list) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def keyed(inputs: np.ndarray, puzzle_ids: np.ndarray | None) -> np.ndarray:
    """The examples as a cache key sees them: inputs, and the puzzle identifiers they are answered under."""
    return inputs if puzzle_ids is None else np.concatenate([inputs, np.asarray(puzzle_ids)[:, None]], 1)


def rollout_key(model, inputs: np.ndarray, weights_sha256: str) -> str:
    import torch

    config = model.config.model_dump() if hasattr(model, "config") else repr(model)
    dtype = str(next(model.parameters()).dtype)
    return _key([ROLLOUT_VERSION, weights_sha256, config, dtype, _inputs_digest(inputs), model.step_budget,
                 torch.__version__, __version__])  # fmt: skip


def onnx_rollout_key(files: list[Path], inputs: np.ndarray, steps: int, settings: list) -> str:
    """`settings`: what else decides the numbers (providers, the manifest's state layout and initial state)."""
    import onnxruntime as ort

    graphs = []
    for f in files:
        h = hashlib.sha256()
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        graphs.append(h.hexdigest())
    return _key([ROLLOUT_VERSION, "onnx", graphs, _inputs_digest(inputs), steps, settings, ort.__version__,
                 __version__])  # fmt: skip


def cached_arrays(
    e: Entry, names: tuple[str, ...], compute: Callable[[], tuple[np.ndarray, ...]]
) -> tuple[tuple[np.ndarray, ...], bool]:
    """(compute(), False), or (the arrays stored under `names` in entry `e`, True) when they were computed before
    (the entry's key and content checked: see edgekit/cache.py); results over MAX_CACHED_BYTES are returned
    without being stored."""
    cached = read_arrays(e, lambda z: tuple(z[n] for n in names))
    if cached is not None:
        return cached, True
    arrays = compute()
    if sum(a.nbytes for a in arrays) <= MAX_CACHED_BYTES:
        write_arrays(e, dict(zip(names, arrays)))
    return arrays, False


def cached_rollout(kind: str, key: str, compute: Callable[[], Rollout], label: str, log=None) -> tuple[Rollout, bool]:
    """(compute(), False), or (the stored result, True) when the key was computed before."""
    e = entry(kind, key)

    def stacked() -> tuple[np.ndarray, ...]:
        preds, halts, last = compute()
        return np.stack(preds), np.stack(halts) if halts else np.zeros((0, len(last)), np.float32), last

    (preds, halts, last), hit = cached_arrays(e, ("preds", "halts", "last"), stacked)
    if hit and log:
        log(f"{label}: read from the cache ({e.path.name if e.path else key})")
    return (list(preds), list(halts), last), hit


def reference_rollout(
    model,
    inputs: np.ndarray,
    batch: int,
    label: str,
    weights_sha256: str | None,
    log=None,
    puzzle_ids: np.ndarray | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """rollout_predictions, read from the cache when this exact rollout was computed before."""
    from ..tasks.evaluate import rollout_predictions

    def compute() -> Rollout:
        return rollout_predictions(model, inputs, batch_size=batch, label=label, puzzle_ids=puzzle_ids)

    if not weights_sha256:
        return compute()
    key = rollout_key(model, keyed(inputs, puzzle_ids), weights_sha256)
    return cached_rollout("reference", key, compute, label, log)[0]
