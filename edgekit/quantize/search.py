"""Accuracy-aware mixed precision: the smallest set of layers to keep float so that full rollouts with early
halting stay within the recipe's budget.

NNCF's own accuracy control cannot be used: its restorer breaks on weights shared across recursion steps
(shared/research/probe.md §5). So the search runs here, on the step graph: every candidate is an NNCF
quantization of the step with some layer groups ignored, scored on held-out samples the way a device runs it
(the runtime's host loop with early halting) by exact accuracy at each sample's halting step and by halting
agreement with the float32 model. Greedy: rank groups by how much keeping each one float alone recovers, then add groups in
that order until the budget holds.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import onnx

from ..tasks.metrics import exact_and_cell


@dataclass
class Score:
    exact: float
    halting_agreement: float


@dataclass
class SearchResult:
    keep_float: list[str]                 # layer groups kept float
    score: Score
    reference: Score
    trials: list[dict] = field(default_factory=list)
    passed: bool = False


def host_scorer(folder, inputs: np.ndarray, labels: np.ndarray, ref_steps: np.ndarray | None = None,
                batch: int = 64) -> Callable[[onnx.ModelProto], tuple[Score, np.ndarray]]:
    """Score a step graph by deployment: the runtime's host loop with early halting and batch compaction over
    the artefact's float32 encode/readout graphs (halted samples leave the batch, so scoring is cheap)."""
    from ..runtime import Runner

    runner = Runner(folder)

    def score(step: onnx.ModelProto) -> tuple[Score, np.ndarray]:
        runner.override("step", step.SerializeToString())
        sols = [runner.solve(inputs[i:i + batch], mode="host") for i in range(0, len(inputs), batch)]
        preds = np.concatenate([s.preds for s in sols]).reshape(labels.shape)
        steps = np.concatenate([s.steps for s in sols])
        exact, _ = exact_and_cell(preds, labels)
        agree = 1.0 if ref_steps is None else float(np.mean(steps == ref_steps))
        return Score(exact, agree), steps

    return score


def search(quantize: Callable[[list[str]], onnx.ModelProto], groups: dict[str, list[str]],
           score: Callable[[onnx.ModelProto], tuple[Score, np.ndarray]], reference: Score,
           max_drop: float, min_agreement: float, log: Callable[[str], None] = lambda s: None) -> tuple[SearchResult, onnx.ModelProto]:
    """`quantize(node_names_to_keep_float)` gives a quantized step; returns the first passing candidate."""
    def ok(s: Score) -> bool:
        return reference.exact - s.exact <= max_drop + 1e-9 and s.halting_agreement >= min_agreement

    def names(keys: list[str]) -> list[str]:
        return [n for k in keys for n in groups[k]]

    trials: list[dict] = []
    best = quantize([])
    s, _ = score(best)
    trials.append({"keep_float": [], "exact": s.exact, "halting_agreement": s.halting_agreement})
    log(f"all layers int8: exact {s.exact:.3f} (float32 {reference.exact:.3f}), halting agreement {s.halting_agreement:.3f}")
    if ok(s):
        return SearchResult([], s, reference, trials, True), best
    gains = []
    for k in groups:
        q = quantize(names([k]))
        sk, _ = score(q)
        trials.append({"keep_float": [k], "exact": sk.exact, "halting_agreement": sk.halting_agreement})
        log(f"keep {k} float: exact {sk.exact:.3f}, halting agreement {sk.halting_agreement:.3f}")
        if ok(sk):
            return SearchResult([k], sk, reference, trials, True), q
        gains.append(((sk.exact - s.exact) + (sk.halting_agreement - s.halting_agreement), k))
    order = [k for _, k in sorted(gains, reverse=True)]
    keep: list[str] = []
    q, sk = best, s
    for k in order[:-1] if len(order) > 1 else order:
        keep.append(k)
        if len(keep) == 1:
            continue  # already scored alone above
        q = quantize(names(keep))
        sk, _ = score(q)
        trials.append({"keep_float": list(keep), "exact": sk.exact, "halting_agreement": sk.halting_agreement})
        log(f"keep {len(keep)} groups float: exact {sk.exact:.3f}, halting agreement {sk.halting_agreement:.3f}")
        if ok(sk):
            return SearchResult(keep, sk, reference, trials, True), q
    return SearchResult(keep, sk, reference, trials, False), q
