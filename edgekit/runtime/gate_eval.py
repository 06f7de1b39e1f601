"""Gates and the statistics behind them, in numpy and the standard library only: the validation stage on the
workstation and `edgekit verify --full` on a device evaluate the same gates with this one implementation, so the
device's numbers are comparable with results.json digit for digit.

A gate is a (name, variant, value, limit, passed, against, kind[, interval]) record; `evaluate_gates` makes them
from a reference entry and a candidate entry shaped as results.json writes them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

BUDGET_GATES = ("max_size_mb", "max_latency_ms", "min_speedup_vs_float32")  # a failure is exit 4, not 3


# -- per-example statistics --------------------------------------------------------------------------------------------
def exact_per_sample(pred: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per sample: every supervised position right (negative labels are unsupervised)."""
    if labels.ndim == 1:
        return np.asarray(np.reshape(pred, labels.shape) == labels)
    pred = np.reshape(pred, labels.shape)
    return np.asarray(((pred == labels) | (labels < 0)).all(-1))


def halting_steps(q: np.ndarray, threshold: float = 0.0) -> np.ndarray:
    """q: [T, B] halting logits -> first 1-based step with q > threshold, T where none."""
    halted = q > threshold
    return np.asarray(np.where(halted.any(0), halted.argmax(0) + 1, q.shape[0]))


def wilson(successes: int, n: int, z: float = 1.96, digits: int | None = 4) -> list[float]:
    """95 % Wilson score interval of a share: how far a gate's estimate can be from the truth at this n."""
    if n == 0:
        return [0.0, 1.0]
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    lo, hi = float(max(0.0, centre - half)), float(min(1.0, centre + half))
    return [lo, hi] if digits is None else [round(lo, digits), round(hi, digits)]


def median_interval(values: list[float] | np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Distribution-free interval of a median from order statistics: the k-th smallest and k-th largest value with
    k the largest rank whose binomial(n, 1/2) tail keeps the coverage at `level` or above. Below 6 values no pair
    reaches 95 % and the whole range is returned (5 values: 94 %). Used for the per-round ratios of timings, whose
    distribution on a busy machine is anything but normal."""
    v = sorted(float(x) for x in values)
    n = len(v)
    if n == 0:
        return (float("nan"), float("nan"))
    tail, k, term = 0.0, 0, 0.5**n  # term: P(Bin(n, 1/2) = j)
    for j in range(n // 2):
        tail += term
        if 2 * tail > 1 - level:
            break
        k = j + 1  # P(fewer than k+1 values below the median) <= (1 - level) / 2: rank j+1 is a lower bound
        term = term * (n - j) / (j + 1)
    k = max(k, 1)
    return (v[k - 1], v[n - k])


def paired_drop_interval(ref_ok: np.ndarray, cand_ok: np.ndarray, z: float = 1.96) -> list[float]:
    """95 % interval of accuracy(ref) - accuracy(cand) on the same samples (Newcombe 1998, method 10: Wilson
    intervals of both shares combined with their correlation). Paired samples make it far narrower than the two
    accuracies' own intervals when the variants agree on most samples, which is what a drop gate needs."""
    n = len(ref_ok)
    if n == 0:
        return [-1.0, 1.0]
    a = int(np.sum(ref_ok & cand_ok))
    b = int(np.sum(ref_ok & ~cand_ok))
    c = int(np.sum(~ref_ok & cand_ok))
    d = n - a - b - c
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson(a + b, n, z, digits=None)
    l2, u2 = wilson(a + c, n, z, digits=None)
    denom = float(np.sqrt(float(a + b) * (c + d) * (a + c) * (b + d)))
    num = float(a * d - b * c)
    if num > 0:  # Newcombe's continuity correction of the correlation
        num = max(num - n / 2, 0.0)
    phi = num / denom if denom > 0 else 0.0
    dlow = np.sqrt(max((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2, 0.0))
    dhigh = np.sqrt(max((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2, 0.0))
    diff = p1 - p2
    return [round(float(max(-1.0, diff - dlow)), 4), round(float(min(1.0, diff + dhigh)), 4)]


# -- gates ---------------------------------------------------------------------------------------------------------
def _gate(
    name: str,
    variant: str,
    value: float,
    limit: float,
    passed: bool,
    against: str = "reference",
    interval: list[float] | None = None,
) -> dict[str, Any]:
    """`interval`: the 95 % interval of the estimate at this sample size (a gate passed by its point estimate
    whose interval crosses the limit is a pass that more samples could overturn)."""
    g = {
        "name": name,
        "variant": variant,
        "value": round(float(value), 6),
        "limit": limit,
        "passed": bool(passed),
        "against": against,
        "kind": "budget" if name in BUDGET_GATES else "accuracy",
    }
    if interval is not None:
        g["interval"] = interval
    return g


def straddles(g: dict[str, Any]) -> bool:
    """The gate's 95 % interval straddles its limit: more examples (or, for a latency gate, more timed rounds)
    could turn the verdict. `max_*` gates are upper bounds, every other gate a lower bound."""
    iv = g.get("interval")
    if not iv or g.get("limit") is None:
        return False
    lo, hi, limit = float(iv[0]), float(iv[1]), float(g["limit"])
    return lo <= limit < hi if str(g["name"]).startswith("max_") else lo < limit <= hi


def undecided_note(g: dict[str, Any], examples: int | None = None) -> str | None:
    """'N rounds cannot decide this limit' (latency gates) or 'N examples ...' where the interval straddles the
    limit, with what to raise; None where the interval decides."""
    if not straddles(g):
        return None
    if g.get("rounds") is not None:
        return f"{g['rounds']} rounds cannot decide this limit (interval straddles it; raise validate.latency_rounds)"
    size = f"{examples} examples" if examples else "these examples"
    return f"{size} cannot decide this limit (interval straddles it; raise task.n)"


def exit_code(gates: list[dict[str, Any]]) -> int:
    """0 when every gate passed; 3 when an accuracy gate failed (it decides first); 4 when only budgets failed."""
    from ..errors import EXIT_ACCURACY_GATE, EXIT_BUDGET_GATE, EXIT_OK

    failed = [g for g in gates if not g["passed"]]
    if not failed:
        return EXIT_OK
    return EXIT_ACCURACY_GATE if any(g.get("kind") != "budget" for g in failed) else EXIT_BUDGET_GATE


def _pass2(entry: dict[str, Any], family: str) -> float | None:
    """ARC pass@2 at the full budget, by the model family's reference definition (TRM fractional credit per test
    input, HRM all test inputs of a task right)."""
    arc = entry.get("task_metrics", {}).get("arc")
    if not arc:
        return None
    return float(arc["budget"]["pass@2"]["all_inputs" if family == "hrm" else "fractional"])


def evaluate_gates(
    gates: Any, reference: dict[str, Any], candidate: dict[str, Any], family: str = "trm"
) -> list[dict[str, Any]]:
    """Compare a candidate variant's entry with the reference entry (both as written to results.json). `gates`:
    the recipe's gates section, or any object with those attributes (the device reads them from the artefact)."""
    out: list[dict[str, Any]] = []
    if getattr(gates, "max_pass2_drop", None) is not None:
        ref2, cand2 = _pass2(reference, family), _pass2(candidate, family)
        if ref2 is not None and cand2 is not None:
            drop = ref2 - cand2
            out.append(
                _gate(
                    "max_pass2_drop",
                    candidate["name"],
                    drop,
                    gates.max_pass2_drop,
                    drop <= gates.max_pass2_drop + 1e-12,
                )
            )
    ref, cand, name = reference["metrics"], candidate["metrics"], candidate["name"]
    vs = candidate.get("vs_reference", {})
    if getattr(gates, "min_exact", None) is not None:
        acc = cand["exact_full"]
        ok = acc >= gates.min_exact - 1e-12
        out.append(_gate("min_exact", name, acc, gates.min_exact, ok, "absolute", cand.get("exact_full_interval")))
    if gates.max_exact_drop is not None:
        drop = ref["exact_full"] - cand["exact_full"]
        ok = drop <= gates.max_exact_drop + 1e-12
        out.append(
            _gate("max_exact_drop", name, drop, gates.max_exact_drop, ok, interval=vs.get("exact_drop_interval"))
        )
    if gates.max_exact_halted_drop is not None and ref.get("exact_halted") is not None:
        drop = ref["exact_halted"] - cand["exact_halted"]
        out.append(
            _gate(
                "max_exact_halted_drop",
                name,
                drop,
                gates.max_exact_halted_drop,
                drop <= gates.max_exact_halted_drop + 1e-12,
                interval=vs.get("exact_halted_drop_interval"),
            )
        )
    if gates.min_argmax_agreement is not None:
        agr = vs["argmax_agreement_last"]
        out.append(
            _gate("min_argmax_agreement", name, agr, gates.min_argmax_agreement, agr >= gates.min_argmax_agreement)
        )
    # halting agreement of a compressed variant is measured against the float32 export it was compressed from
    # (the float32 variant's own gate covers export drift against the reference); both drifts are gated
    parent = candidate.get("vs_onnx_float32")
    hv, against = (parent, "float32") if parent and "halting_step_agreement" in parent else (vs, "reference")
    if gates.min_halting_agreement is not None and "halting_step_agreement" in hv:
        agr = hv["halting_step_agreement"]
        out.append(
            _gate(
                "min_halting_agreement",
                name,
                agr,
                gates.min_halting_agreement,
                agr >= gates.min_halting_agreement,
                against,
                hv.get("halting_step_agreement_interval"),
            )
        )
    fp = candidate.get("fixed_point")
    if gates.max_residual is not None and fp is not None:
        r = fp["residual_under_original_max"]
        ok = r is not None and r <= gates.max_residual and fp["nan_or_inf_samples"] == 0
        out.append(_gate("max_residual", name, r if r is not None else float("inf"), gates.max_residual, ok))
    if getattr(gates, "max_size_mb", None) is not None and "bytes" in candidate:
        mb = candidate["bytes"] / 1e6
        out.append(_gate("max_size_mb", name, mb, gates.max_size_mb, mb <= gates.max_size_mb, "absolute"))
    lat = candidate.get("latency")
    if getattr(gates, "max_latency_ms", None) is not None and lat:
        ms, limit = lat["ms_per_puzzle"], gates.max_latency_ms
        g = _gate("max_latency_ms", name, ms, limit, ms <= limit, "absolute", lat.get("interval"))
        out.append(_rounds(g, lat))
    if getattr(gates, "min_speedup_vs_float32", None) is not None and lat and "speedup_vs_float32" in lat:
        sp, limit = lat["speedup_vs_float32"], gates.min_speedup_vs_float32
        g = _gate("min_speedup_vs_float32", name, sp, limit, sp >= limit, "float32", lat.get("speedup_interval"))
        out.append(_rounds(g, lat))
    return out


def _rounds(gate: dict[str, Any], latency: dict[str, Any]) -> dict[str, Any]:
    """A latency gate's sample is its timed rounds, not the examples: recorded so the verdict can say how many."""
    if latency.get("rounds") is not None:
        gate["rounds"] = int(latency["rounds"])
    return gate
