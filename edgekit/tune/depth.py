"""Test-time depth: step caps past the trained budget (up to MAX_DEPTH_FACTOR x `halt_max_steps`).

A recursive model trained with a budget of T steps may answer better when allowed more steps at test time. The
curve comes from one recorded rollout of factor x T steps per variant (the host loop, every step recorded, on
tune's executor), scored at every cap for two halting rules: the validated threshold (a puzzle stops where the
deployed model would, the cap only lets the undecided ones go on) and "never halt early" (every puzzle runs to the
cap). The cost of each cap is the latency model's replay of the host loop on those halting steps (or a device's
graph times). A few caps are then answered again through the host loop (Runner.solve with max_steps past the
budget) and the Loop form (its max_steps input), and compared with the recorded answers, so the curve is what a
deployed runtime returns.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..manifest import MAX_DEPTH_FACTOR
from ..tasks.metrics import exact_per_sample, halting_steps, wilson
from .front import answers
from .latency import StepTimes, predict_ms

__all__ = ["MAX_DEPTH_FACTOR", "check_forms", "depth_curve", "saturation", "shown_caps"]


def saturation(exact: list[float], n: int) -> int:
    """The smallest cap (1-based) past which no deeper cap answers more than one more example of `n` right: where
    exact accuracy stops rising, give or take one example's noise."""
    best_after = np.maximum.accumulate(np.asarray(exact, float)[::-1])[::-1]
    slack = 1.0 / max(n, 1) + 1e-12
    for i, e in enumerate(exact):
        if best_after[i] - e <= slack:
            return i + 1
    return len(exact)


def _rule(threshold: float) -> str:
    return "never halt early" if math.isinf(threshold) else f"halt threshold {threshold:g}"


def depth_curve(
    variant: str,
    preds: np.ndarray,
    halt: np.ndarray,
    labels: np.ndarray,
    threshold: float,
    budget: int,
    times: StepTimes,
    batch: int,
) -> dict[str, Any]:
    """Per halting rule (the validated threshold, never halt early) and per cap 1 .. len(preds): exact accuracy with
    its 95 % interval, mean steps and predicted ms per puzzle; where accuracy saturates; what the caps past the
    budget cost and bring."""
    n = len(labels)
    deepest = preds.shape[0]
    rules = []
    for thr in (threshold, math.inf):
        exact, interval, steps, ms = [], [], [], []
        for cap in range(1, deepest + 1):
            hs = halting_steps(halt[:cap], thr)
            ok = exact_per_sample(answers(preds, hs), labels)
            exact.append(float(ok.mean()))
            interval.append(wilson(int(ok.sum()), n))
            steps.append(float(hs.mean()))
            ms.append(predict_ms(times, hs, batch))
        sat = saturation(exact, n)
        at, last = budget - 1, deepest - 1
        extra_steps = steps[last] - steps[at]
        rules.append(
            {
                "threshold": None if math.isinf(thr) else thr,
                "rule": _rule(thr),
                "exact": exact,
                "exact_interval": interval,
                "mean_steps": steps,
                "ms_per_puzzle": ms,
                "saturates_at": sat,
                "best_cap": int(np.argmax(exact)) + 1,
                "past_budget": {
                    "exact_gain": exact[last] - exact[at],
                    "extra_mean_steps": extra_steps,
                    "extra_ms": ms[last] - ms[at],
                    "ms_per_extra_step": (ms[last] - ms[at]) / extra_steps if extra_steps > 0 else None,
                },
            }
        )
    return {"variant": variant, "budget": budget, "deepest": deepest, "examples": n, "batch": batch, "rules": rules}


def shown_caps(budget: int, deepest: int, marks: list[int]) -> list[int]:
    """The caps a table shows: 1, powers of two, multiples of the budget, and the marked ones (saturation)."""
    caps = {1, budget, deepest, *marks}
    caps |= {2**k for k in range(deepest.bit_length()) if 2**k <= deepest}
    caps |= {budget * k for k in range(1, deepest // budget + 1)}
    return sorted(c for c in caps if 1 <= c <= deepest)


def check_forms(runner, inputs: np.ndarray, preds: np.ndarray, halt: np.ndarray, caps_thresholds, batch: int) -> list:
    """The recorded curve against what a deployed runtime returns: each (cap, threshold) answered through the host
    loop (Runner.solve, max_steps past the budget) and, where the variant has it, the Loop form (its max_steps
    input); the share of examples with the recorded answer and halting step."""
    out = []
    for cap, thr in caps_thresholds:
        want_steps = halting_steps(halt[:cap, : len(inputs)], thr)
        want = answers(preds[:, : len(inputs)], want_steps).reshape(len(inputs), -1)
        row: dict[str, Any] = {"cap": cap, "threshold": None if math.isinf(thr) else thr, "examples": len(inputs)}
        modes = ["host"] + (["loop"] if "loop" in runner.graphs else [])
        for mode in modes:
            got_preds, got_steps = [], []
            for i in range(0, len(inputs), batch):
                sol = runner.solve(inputs[i : i + batch], mode=mode, max_steps=cap, threshold=thr)
                got_preds.append(sol.preds.reshape(len(sol.preds), -1))
                got_steps.append(np.asarray(sol.steps))
            gp, gs = np.concatenate(got_preds), np.concatenate(got_steps)
            label = "host_loop" if mode == "host" else "loop_form"
            row[f"{label}_same_answer"] = float((gp == want).all(-1).mean())
            row[f"{label}_same_steps"] = float((gs == want_steps).mean())
        if "loop" not in runner.graphs:
            row["loop_form"] = "not exported (export.forms has no loop)"
        out.append(row)
    return out
