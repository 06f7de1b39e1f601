"""Configurations of a deployed recursive model and the accuracy-latency front over them (pure numpy).

A configuration is (variant, halting threshold, step cap). Its accuracy follows, without running anything, from
one recorded rollout of the variant (every step's answer and halting logit): each sample stops at the first step
whose halting logit passes the threshold, or at the cap, and answers there.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..tasks.metrics import exact_per_sample, halting_steps, wilson


@dataclass
class Config:
    variant: str
    threshold: float  # halting-logit threshold; +inf: never halt early (run to the cap)
    cap: int  # step cap
    exact: float = 0.0  # exact accuracy of the answers it returns
    exact_interval: list[float] = field(default_factory=list)
    mean_steps: float = 0.0
    same_answer_as_default: float = 0.0  # share of samples answered as the validated default configuration does
    latency_ms: float = 0.0  # per puzzle at the tuning batch size
    latency_source: str = "model"  # "model" (predicted from step timings) or "measured" (run end to end)
    halting_steps: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("halting_steps")
        d["threshold"] = None if math.isinf(self.threshold) else self.threshold
        return d


def answers(preds: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """preds: [T, B, ...] recorded answers -> each sample's answer at its step."""
    return preds[steps - 1, np.arange(preds.shape[1])]


def thresholds_for(halt: np.ndarray, default: float, k: int = 12) -> list[float]:
    """Candidate thresholds: the validated default, quantiles of the recorded halting logits, and +inf."""
    finite = halt[np.isfinite(halt)]
    qs = np.quantile(finite, np.linspace(0.05, 0.95, k)) if finite.size else np.array([])
    return sorted({round(float(default), 4), *(round(float(q), 4) for q in qs)}) + [math.inf]


def grid(
    variant: str,
    preds: np.ndarray,
    halt: np.ndarray,
    labels: np.ndarray,
    default_answers: np.ndarray,
    thresholds: list[float],
) -> list[Config]:
    """Every (threshold, cap) configuration of one variant, scored from its recorded rollout."""
    out = []
    n = len(labels)
    budget = preds.shape[0]
    for cap in range(1, budget + 1):
        for thr in thresholds:
            hs = halting_steps(halt[:cap], thr)  # first step past the threshold, else the cap
            ans = answers(preds, hs)
            ok = exact_per_sample(ans, labels)
            same = (ans.reshape(n, -1) == default_answers.reshape(n, -1)).all(-1)
            out.append(
                Config(
                    variant,
                    thr,
                    cap,
                    float(ok.mean()),
                    wilson(int(ok.sum()), n),
                    float(hs.mean()),
                    float(same.mean()),
                    halting_steps=hs,
                )
            )
    return out


def pareto_front(configs: list[Config]) -> list[Config]:
    """Configurations no other one beats on both accuracy (higher) and latency (lower), fastest first."""
    front: list[Config] = []
    for c in sorted(configs, key=lambda c: (c.latency_ms, -c.exact)):
        if not front or c.exact > front[-1].exact:
            front.append(c)
    return front


def meets(c: Config, floor: float) -> bool:
    """At or above the accuracy floor (a hair of float slack: exact accuracies are ratios of small integers)."""
    return c.exact >= floor - 1e-9


def choose(front: list[Config], budget_ms: float, floor: float = 0.0) -> Config | None:
    """The most accurate configuration within the latency budget and at or above the accuracy floor (the fastest
    of equally accurate ones); None when no configuration is both."""
    fits = [c for c in front if c.latency_ms <= budget_ms and meets(c, floor)]
    return max(fits, key=lambda c: (c.exact, -c.latency_ms)) if fits else None


def fastest_meeting(configs: list[Config], floor: float) -> Config | None:
    """The fastest configuration at or above the floor, whatever the budget: what a budget would have to allow."""
    ok = [c for c in configs if meets(c, floor)]
    return min(ok, key=lambda c: (c.latency_ms, -c.exact)) if ok else None
