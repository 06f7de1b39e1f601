"""Gates declared in a recipe, evaluated on results: each a (name, variant, value, limit, passed) record."""

from __future__ import annotations

BUDGET_GATES = ("max_size_mb", "max_latency_ms", "min_speedup_vs_float32")  # a failure is exit 4, not 3


def _gate(
    name: str,
    variant: str,
    value: float,
    limit: float,
    passed: bool,
    against: str = "reference",
    interval: list[float] | None = None,
) -> dict:
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


def exit_code(gates: list[dict]) -> int:
    """0 when every gate passed; 3 when an accuracy gate failed (it decides first); 4 when only budgets failed."""
    from ..errors import EXIT_ACCURACY_GATE, EXIT_BUDGET_GATE, EXIT_OK

    failed = [g for g in gates if not g["passed"]]
    if not failed:
        return EXIT_OK
    return EXIT_ACCURACY_GATE if any(g.get("kind") != "budget" for g in failed) else EXIT_BUDGET_GATE


def _pass2(entry: dict, family: str) -> float | None:
    """ARC pass@2 at the full budget, by the model family's reference definition (TRM fractional credit per test
    input, HRM all test inputs of a task right)."""
    arc = entry.get("task_metrics", {}).get("arc")
    if not arc:
        return None
    return float(arc["budget"]["pass@2"]["all_inputs" if family == "hrm" else "fractional"])


def evaluate_gates(gates, reference: dict, candidate: dict, family: str = "trm") -> list[dict]:
    """Compare a candidate variant's entry with the reference entry (both as written to results.json)."""
    out = []
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
    hv, against = (parent, "onnx float32") if parent and "halting_step_agreement" in parent else (vs, "reference")
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
        ms = lat["ms_per_puzzle"]
        out.append(_gate("max_latency_ms", name, ms, gates.max_latency_ms, ms <= gates.max_latency_ms, "absolute"))
    if getattr(gates, "min_speedup_vs_float32", None) is not None and lat and "speedup_vs_float32" in lat:
        sp = lat["speedup_vs_float32"]
        limit = gates.min_speedup_vs_float32
        out.append(_gate("min_speedup_vs_float32", name, sp, limit, sp >= limit, "onnx float32"))
    return out
