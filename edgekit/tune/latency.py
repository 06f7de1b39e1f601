"""Per-puzzle latency of a configuration on this machine: measured end to end, or predicted from step timings.

Measuring every (variant, threshold, cap) configuration end to end would take minutes each on a CPU, so the grid is
predicted: each graph (encode, step, readout) of a variant is timed once per batch size 1, 2, 4, ..., B, and the
host loop with batch compaction is replayed on the tuning set's recorded halting steps (per chunk of B samples,
step t runs on the samples still active). The prediction is then scaled by one factor per variant, the ratio of
a measured end-to-end run of the validated default configuration to its prediction, which absorbs the host
loop's own overhead; the front's chosen point and its neighbours are measured end to end.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial

import numpy as np

from .. import progress


@dataclass
class StepTimes:
    """Median ms per call of each graph at each measured batch size."""

    sizes: list[int]
    encode: list[float]
    step: list[float]
    readout: list[float]
    scale: float = 1.0  # measured / predicted, from the default configuration

    def at(self, graph: str, b: int) -> float:
        if b <= 0:
            return 0.0
        return float(np.interp(b, self.sizes, getattr(self, graph)))


def _median_ms(fn, reps: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.median(times))


def time_graphs(runner, inputs: np.ndarray, batch: int, reps: int = 3) -> StepTimes:
    """Time encode / step / readout of the runner's variant at batch sizes 1, 2, 4, ..., batch on real inputs."""
    sizes = sorted({min(2**k, batch) for k in range(0, int(np.ceil(np.log2(max(batch, 1)))) + 1)})
    enc, stp, rd = [], [], []
    with progress.task(f"timing {runner.variant} graphs", len(sizes)) as bar:
        for b in sizes:
            x_in = runner.check_inputs(np.resize(inputs, (b, *inputs.shape[1:])))
            x = runner.call("encode", {"inputs": x_in})[0]
            feeds = {**dict(zip(runner.state_names, runner.initial_state(x))), "x": x}
            new = runner.call("step", feeds)[:-1]
            step_feeds = {**dict(zip(runner.state_names, new)), "x": x}  # a state past step 1, as served
            head = dict(zip(runner.state_names, new))
            enc.append(_median_ms(partial(runner.call, "encode", {"inputs": x_in}), reps))
            stp.append(_median_ms(partial(runner.call, "step", step_feeds), reps))
            rd.append(_median_ms(partial(runner.call, "readout", head), reps))
            bar.advance()
    return StepTimes(sizes, enc, stp, rd)


def predict_ms(times: StepTimes, steps: np.ndarray, batch: int) -> float:
    """Predicted ms per puzzle of the host loop with compaction, for samples answering at `steps`, in chunks of
    `batch` in order."""
    total = 0.0
    for i in range(0, len(steps), batch):
        s = steps[i : i + batch]
        total += times.at("encode", len(s))
        for t in range(1, int(s.max()) + 1):
            total += times.at("step", int(np.sum(s >= t))) + times.at("readout", int(np.sum(s == t)))
    return times.scale * total / len(steps)


def measure_ms(runner, inputs: np.ndarray, batch: int, threshold: float, cap: int, reps: int = 2) -> float:
    """Measured ms per puzzle: Runner.solve (host loop, early halting, compaction) in chunks of `batch`, median of
    `reps` passes after a warm-up pass."""

    def run() -> None:
        for i in range(0, len(inputs), batch):
            runner.solve(inputs[i : i + batch], max_steps=cap, threshold=threshold)

    return _median_ms(run, reps) / len(inputs)
