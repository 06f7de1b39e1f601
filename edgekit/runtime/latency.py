"""The latency gates' measurement, shared by validation and `edgekit verify --full`: every variant's deployed host
loop (early halting, batch compaction) over the same examples, the variants timed in turn within each round
(float32, a, b, float32, a, b, ...), so load that comes and goes between rounds slows all of them alike.

Per variant: ms per puzzle as the median over rounds, with the distribution-free 95 % interval of that median; per
compressed variant: its speed-up over float32 as the median of the per-round ratios (float32's pass over its own
pass in the same round), with the same kind of interval. A gate whose interval straddles its limit cannot be
decided by that many rounds, and says so.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from .. import progress
from .gate_eval import median_interval

BASE = "float32"


def _pass(runner: Any, chunks: list[tuple[np.ndarray, np.ndarray | None]]) -> float:
    t0 = time.perf_counter()
    for x, ids in chunks:
        runner.solve(x, puzzle_ids=ids)
    return time.perf_counter() - t0


def interleaved_latency(
    runners: Mapping[str, Any],
    inputs: np.ndarray,
    puzzle_ids: np.ndarray | None,
    batch: int,
    rounds: int,
) -> dict[str, dict[str, Any]]:
    """Per variant: `ms_per_puzzle` (median over rounds) and its `interval`, `rounds`, and for every variant but
    float32, `speedup_vs_float32` (median of per-round ratios) and `speedup_interval`. One untimed warm-up round
    first. `puzzle_ids` go to runners whose model takes them."""
    if rounds < 1 or batch < 1 or len(inputs) == 0:
        raise ValueError("latency needs at least one round, one example and a batch of at least one")
    n = len(inputs)
    chunks = {
        name: [
            (inputs[i : i + batch], None if puzzle_ids is None or not r.takes_puzzle_ids else puzzle_ids[i : i + batch])
            for i in range(0, n, batch)
        ]
        for name, r in runners.items()
    }
    times: dict[str, list[float]] = {name: [] for name in runners}
    with progress.task(f"latency {', '.join(runners)} (batch {batch}, {rounds} rounds)", rounds + 1) as bar:
        for rnd in range(rounds + 1):
            for name, r in runners.items():
                t = _pass(r, chunks[name])
                if rnd:  # round 0 warms up every session
                    times[name].append(t * 1000 / n)
            bar.advance()
    out: dict[str, dict[str, Any]] = {}
    for name, ts in times.items():
        lo, hi = median_interval(ts)
        out[name] = {
            "ms_per_puzzle": round(float(np.median(ts)), 3),
            "interval": [round(lo, 3), round(hi, 3)],
            "rounds": rounds,
        }
        if name != BASE and BASE in times:
            ratios = [b / t for b, t in zip(times[BASE], ts)]
            lo, hi = median_interval(ratios)
            out[name]["speedup_vs_float32"] = round(float(np.median(ratios)), 3)
            out[name]["speedup_interval"] = [round(lo, 3), round(hi, 3)]
    return out
