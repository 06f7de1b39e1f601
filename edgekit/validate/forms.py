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


def _batches(runner, inputs: np.ndarray, batch: int, **kw):
    outs = []
    with progress.task(f"{kw.get('mode', 'host')} form parity", len(inputs)) as bar:
        for i in range(0, len(inputs), batch):
            outs.append(runner.solve(inputs[i : i + batch], **kw))
            bar.advance(len(outs[-1].logits))
    return (
        np.concatenate([o.logits for o in outs]),
        np.concatenate([o.steps for o in outs]),
        np.concatenate([o.done for o in outs]),
    )


def loop_parity(
    runner,
    inputs: np.ndarray,
    labels: np.ndarray,
    host: Variant,
    batch: int,
    threshold: float,
    solver_iterations: np.ndarray | None = None,
) -> dict:
    t0 = time.time()
    logits, steps, done = _batches(runner, inputs, batch, mode="loop", threshold=threshold)
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
    if host.halt:  # ACT: the host record decides halting step and answer per sample
        hs = halting_steps(np.stack(host.halt), threshold)
        want = np.stack(host.preds)[hs - 1, np.arange(len(hs))].reshape(labels.shape)
        out["same_halting_step_as_host"] = float(np.mean(steps == hs))
        out["same_answer_as_host"] = float(np.mean(preds == want))
    if solver_iterations is not None:
        out["same_iterations_as_pytorch_solver"] = float(np.mean(steps == solver_iterations))
    return out


def unrolled_parity(runner, inputs: np.ndarray, labels: np.ndarray, host: Variant, batch: int) -> dict:
    t0 = time.time()
    logits, _, _ = _batches(runner, inputs, batch, mode="unrolled")
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
