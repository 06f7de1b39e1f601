"""Parity of the deployment forms (ONNX Loop, unrolled) with the recorded host-loop run of the same graphs.

The host run records every step; from it follow, per sample, the halting step and the answer there (ACT) or
the last-step logits (unrolled). The Loop form must reproduce those exactly: same halting step, same answer.
For DEQs the Loop's per-sample iteration counts are compared with the PyTorch solver's.
"""

from __future__ import annotations

import time

import numpy as np

from .. import progress
from ..tasks.metrics import exact_and_cell, halting_steps
from .compare import Variant


def _chunks(n: int, batch: int, expected: np.ndarray | None = None) -> list[np.ndarray]:
    """Batches of at most `batch` sample indices; with `expected` step counts, samples of one expected count
    together. The Loop form runs a batch until its slowest sample stops, so batches of like steps (known from the
    host record) cost the mean step count instead of the budget; a sample's answer does not depend on its batch
    mates."""
    if expected is None:
        return [np.arange(i, min(i + batch, n)) for i in range(0, n, batch)]
    out = []
    for value in np.unique(expected):
        idx = np.flatnonzero(expected == value)
        out += [idx[i : i + batch] for i in range(0, len(idx), batch)]
    return out


def _batches(runner, inputs: np.ndarray, chunks: list[np.ndarray], ids: np.ndarray | None = None, **kw):
    """The form's answers for every input, chunk by chunk, returned in input order."""
    outs = []
    with progress.task(f"{kw.get('mode', 'host')} form parity", len(inputs)) as bar:
        for idx in chunks:
            outs.append(runner.solve(inputs[idx], puzzle_ids=None if ids is None else ids[idx], **kw))
            bar.advance(len(idx))
    back = np.argsort(np.concatenate(chunks))
    return (
        np.concatenate([o.logits for o in outs])[back],
        np.concatenate([o.steps for o in outs])[back],
        np.concatenate([o.done for o in outs])[back],
    )


def _cached_loop(
    runner, inputs: np.ndarray, ids: np.ndarray | None, batch: int, expected: np.ndarray | None, threshold: float
):
    """_batches of the Loop form, read back when these graph bytes ran on these inputs at this threshold before."""
    from ..cache import entry
    from .reference import cached_arrays, keyed, onnx_rollout_key

    files = [runner.file(runner.graphs["loop"])] + ([runner.file("puzzle_ids")] if ids is not None else [])
    key = onnx_rollout_key(files, keyed(inputs, ids), 0, ["loop", threshold, batch, list(runner.providers)])

    def compute() -> tuple[np.ndarray, ...]:
        chunks = _chunks(len(inputs), batch, expected)
        return _batches(runner, inputs, chunks, ids, mode="loop", threshold=threshold)

    return cached_arrays(entry("onnx", f"loop-{key}"), ("logits", "steps", "done"), compute)


def loop_parity(
    runner,
    inputs: np.ndarray,
    ids: np.ndarray | None,
    labels: np.ndarray,
    host: Variant,
    batch: int,
    threshold: float,
    solver_iterations: np.ndarray | None = None,
) -> dict:
    t0 = time.time()
    hs = halting_steps(np.stack(host.halt), threshold) if host.halt else None
    expected = hs if hs is not None else solver_iterations
    (logits, steps, done), hit = _cached_loop(runner, inputs, ids, batch, expected, threshold)
    seconds = time.time() - t0
    preds = logits.argmax(-1).reshape(labels.shape)
    exact, cell = exact_and_cell(preds, labels)
    out = {
        "exact": exact,
        "cell": cell,
        "mean_steps": float(steps.mean()),
        "done": float(done.mean()),
        "seconds": round(seconds, 3),
    }
    if hit:
        out["from_cache"] = True
    if hs is not None:  # ACT: the host record decides halting step and answer per sample
        want = np.stack(host.preds)[hs - 1, np.arange(len(hs))].reshape(labels.shape)
        out["same_halting_step_as_host"] = float(np.mean(steps == hs))
        out["same_answer_as_host"] = float(np.mean(preds == want))
    if solver_iterations is not None:
        out["same_iterations_as_pytorch_solver"] = float(np.mean(steps == solver_iterations))
    return out


def unrolled_parity(
    runner, inputs: np.ndarray, ids: np.ndarray | None, labels: np.ndarray, host: Variant, batch: int
) -> dict:
    t0 = time.time()
    logits, _, _ = _batches(runner, inputs, _chunks(len(inputs), batch), ids, mode="unrolled")
    seconds = time.time() - t0
    preds = logits.argmax(-1)
    exact, cell = exact_and_cell(preds.reshape(labels.shape), labels)
    out = {
        "exact": exact,
        "cell": cell,
        "argmax_agreement_with_host_last": float(np.mean(preds == host.preds[-1])),
        "seconds": round(seconds, 3),
    }
    if host.last_logits is not None:
        out["max_abs_dlogits_vs_host_last"] = float(np.abs(logits.astype(np.float64) - host.last_logits).max())
    return out
