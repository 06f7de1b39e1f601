"""Per-puzzle latency of a configuration on this machine: measured end to end, or predicted from step timings.

Measuring every (variant, threshold, cap) configuration end to end would take minutes each on a CPU, so the grid is
predicted: each graph (encode, step, readout) of a variant is timed once per batch size 1, 2, 4, ..., B, and the
host loop with batch compaction is replayed on the tuning set's recorded halting steps (per chunk of B samples,
step t runs on the samples still active). The prediction is then scaled by one factor per variant, the ratio of
a measured end-to-end run of the validated default configuration to its prediction, which absorbs the host
loop's own overhead; the front's chosen point and its neighbours are measured end to end.
"""

from __future__ import annotations

import numpy as np

from ..runtime.graph_times import StepTimes, _median_ms, time_graphs  # noqa: F401  (re-exported for tune)


def predict_ms(times: StepTimes, steps: np.ndarray, batch: int) -> float:
    """Predicted ms per puzzle of the host loop with compaction, for samples answering at `steps`, in chunks of
    `batch` in order."""
    total = 0.0
    for i in range(0, len(steps), batch):
        s = np.asarray(steps[i : i + batch], np.int64)
        ending = np.bincount(s, minlength=int(s.max()) + 1)[1:]  # samples answering at step t = 1 .. max
        active = np.cumsum(ending[::-1])[::-1]  # samples still in the batch at step t
        total += times.at("encode", len(s)) + _sum_at(times, "step", active) + _sum_at(times, "readout", ending)
    return times.scale * total / len(steps)


def _sum_at(times: StepTimes, graph: str, batches: np.ndarray) -> float:
    """Sum of `times.at(graph, b)` over `batches` in one numpy call (deep caps replay hundreds of steps per chunk
    for each of thousands of configurations)."""
    b = batches[batches > 0]
    return float(np.interp(b, times.sizes, getattr(times, graph)).sum()) if b.size else 0.0


def measure_ms(runner, inputs: np.ndarray, batch: int, threshold: float, cap: int, reps: int = 2) -> float:
    """Measured ms per puzzle: Runner.solve (host loop, early halting, compaction) in chunks of `batch`, median of
    `reps` passes after a warm-up pass."""

    def run() -> None:
        for i in range(0, len(inputs), batch):
            runner.solve(inputs[i : i + batch], max_steps=cap, threshold=threshold)

    return _median_ms(run, reps) / len(inputs)
