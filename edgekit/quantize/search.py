"""Accuracy-aware mixed precision: the smallest set of layers to keep float so that full rollouts with early
halting stay within the recipe's budget.

NNCF's own accuracy control cannot be used: its restorer breaks on weights shared across recursion steps
(measured). So the search runs here, on the step graph: every candidate is an NNCF
quantization of the step with some layer groups ignored, scored on held-out samples the way a device runs it
(the runtime's host loop with early halting) by exact accuracy at each sample's halting step and by halting
agreement with the float32 model. Forward selection over layer groups (see `search`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import onnx

from .. import progress
from ..tasks.metrics import exact_and_cell


@dataclass
class Score:
    exact: float
    halting_agreement: float


@dataclass
class SearchResult:
    keep_float: list[str]  # layer groups kept float
    score: Score
    reference: Score
    trials: list[dict] = field(default_factory=list)
    passed: bool = False


def host_scorer(
    folder,
    inputs: np.ndarray,
    labels: np.ndarray,
    ref_steps: np.ndarray | None = None,
    batch: int = 64,
    puzzle_ids: np.ndarray | None = None,
) -> Callable[[onnx.ModelProto], tuple[Score, np.ndarray]]:
    """Score a step graph by deployment: the runtime's host loop with early halting and batch compaction over
    the artefact's float32 encode/readout graphs (halted samples leave the batch, so scoring is cheap)."""
    from ..runtime import Runner

    runner = Runner(folder, complete=False)  # an artefact being written: hashes come last

    def score(step: onnx.ModelProto) -> tuple[Score, np.ndarray]:
        runner.override("step", step.SerializeToString())
        sols = [
            runner.solve(
                inputs[i : i + batch], mode="host", puzzle_ids=None if puzzle_ids is None else puzzle_ids[i : i + batch]
            )
            for i in range(0, len(inputs), batch)
        ]
        preds = np.concatenate([s.preds for s in sols]).reshape(labels.shape)
        steps = np.concatenate([s.steps for s in sols])
        exact, _ = exact_and_cell(preds, labels)
        agree = 1.0 if ref_steps is None else float(np.mean(steps == ref_steps))
        return Score(exact, agree), steps

    return score


def deficit(s: Score, reference: Score, max_drop: float, min_agreement: float) -> float:
    """How far a candidate is from the budget (0 = within it). Accuracy *above* float32 earns nothing: at an
    early-halting threshold a drifting model can score higher by halting later, which is not closeness."""
    return max(0.0, reference.exact - max_drop - s.exact) + max(0.0, min_agreement - s.halting_agreement)


def search(
    quantize: Callable[[list[str]], onnx.ModelProto],
    groups: dict[str, list[str]],
    score: Callable[[onnx.ModelProto], tuple[Score, np.ndarray]],
    reference: Score,
    max_drop: float,
    min_agreement: float,
    log: Callable[[str], None] = lambda s: None,
) -> tuple[SearchResult, onnx.ModelProto]:
    """Forward selection: start from all-INT8; each round, try keeping each remaining group float in addition
    to those already kept, and keep the one that brings the candidate closest to the budget (ties: higher
    halting agreement, then accuracy). Stops at the first candidate within budget. Re-scoring every round
    (at most n(n+1)/2 candidates) instead of ranking groups once, because layer effects do not add up: in the
    TRM demo neither SwiGLU down projection alone recovers halting, both together do.
    `quantize(node_names_to_keep_float)` gives a quantized step; returns the first passing candidate."""

    def gap(s: Score) -> float:
        return deficit(s, reference, max_drop, min_agreement)

    def names(keys: list[str]) -> list[str]:
        return [n for k in keys for n in groups[k]]

    trials: list[dict] = []
    best = quantize([])
    s, _ = score(best)
    trials.append({"keep_float": [], "exact": s.exact, "halting_agreement": s.halting_agreement})
    log(
        f"all layers int8: exact {s.exact:.3f} (float32 {reference.exact:.3f}), "
        f"halting agreement {s.halting_agreement:.3f}"
    )
    keep: list[str] = []
    while gap(s) > 1e-9:
        remaining = [k for k in groups if k not in keep]
        if not remaining:
            return SearchResult(keep, s, reference, trials, False), best
        round_ = []
        for k in remaining:
            with progress.task(f"search: scoring {' + '.join(keep + [k])} float"):
                q = quantize(names(keep + [k]))
                sk, _ = score(q)
            trials.append({"keep_float": keep + [k], "exact": sk.exact, "halting_agreement": sk.halting_agreement})
            log(
                f"keep {' + '.join(keep + [k])} float: exact {sk.exact:.3f}, "
                f"halting agreement {sk.halting_agreement:.3f}"
            )
            round_.append(((gap(sk), -sk.halting_agreement, -sk.exact), k, sk, q))
            if gap(sk) <= 1e-9:
                break
        _, k, s, best = min(round_, key=lambda r: r[0])
        keep.append(k)
    return SearchResult(keep, s, reference, trials, True), best
