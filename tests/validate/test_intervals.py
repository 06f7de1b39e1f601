"""The intervals results.json reports next to each gate: Wilson for shares, Newcombe's paired interval for drops."""

from __future__ import annotations

import numpy as np

from edgekit.tasks.metrics import paired_drop_interval, wilson


def _coverage(n: int, p_both: float, p_ref_only: float, p_cand_only: float, trials: int = 2000) -> float:
    rng = np.random.default_rng(0)
    truth = p_ref_only - p_cand_only
    hits = 0
    for _ in range(trials):
        u = rng.random(n)
        ref = u < p_both + p_ref_only
        cand = (u < p_both) | ((u >= p_both + p_ref_only) & (u < p_both + p_ref_only + p_cand_only))
        lo, hi = paired_drop_interval(ref, cand)
        hits += lo <= truth <= hi
    return hits / trials


def test_paired_interval_covers_the_true_drop_about_95_percent_of_the_time():
    """Simulated paired correctness (a quantized variant losing 3 samples in 100, gaining 1): the interval holds
    the true drop in >= 93 % of draws (Newcombe's method is slightly conservative), at the demo's n = 256."""
    assert _coverage(256, 0.9, 0.03, 0.01) >= 0.93
    assert _coverage(64, 0.7, 0.05, 0.0) >= 0.93


def test_paired_interval_is_narrow_when_variants_agree_and_contains_the_estimate():
    ref = np.ones(256, bool)
    ref[:2] = False  # 254 / 256 right
    cand = ref.copy()
    cand[2] = False  # one sample lost
    lo, hi = paired_drop_interval(ref, cand)
    assert lo <= 1 / 256 <= hi
    w_ref, w_cand = wilson(int(ref.sum()), 256), wilson(int(cand.sum()), 256)
    unpaired = (w_ref[1] - w_cand[0]) - (w_ref[0] - w_cand[1])
    assert hi - lo < unpaired, "pairing must narrow the interval when the variants agree on nearly every sample"
    assert paired_drop_interval(ref, ref)[0] < 0 < paired_drop_interval(ref, ref)[1]
    lo_all, hi_all = paired_drop_interval(np.ones(10, bool), np.zeros(10, bool))
    assert 0.6 < lo_all < 1.0 and hi_all == 1.0
