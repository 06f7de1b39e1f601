"""Gates declared in a recipe, evaluated on results: each a (name, variant, value, limit, passed) record."""

from __future__ import annotations


def _gate(name: str, variant: str, value: float, limit: float, passed: bool, against: str = "reference") -> dict:
    return {
        "name": name,
        "variant": variant,
        "value": round(float(value), 6),
        "limit": limit,
        "passed": bool(passed),
        "against": against,
    }


def evaluate_gates(gates, reference: dict, candidate: dict) -> list[dict]:
    """Compare a candidate variant's entry with the reference entry (both as written to results.json)."""
    out = []
    ref, cand, name = reference["metrics"], candidate["metrics"], candidate["name"]
    vs = candidate.get("vs_reference", {})
    if getattr(gates, "min_exact", None) is not None:
        acc = cand["exact_full"]
        out.append(_gate("min_exact", name, acc, gates.min_exact, acc >= gates.min_exact - 1e-12, "absolute"))
    if gates.max_exact_drop is not None:
        drop = ref["exact_full"] - cand["exact_full"]
        out.append(_gate("max_exact_drop", name, drop, gates.max_exact_drop, drop <= gates.max_exact_drop + 1e-12))
    if gates.max_exact_halted_drop is not None and ref.get("exact_halted") is not None:
        drop = ref["exact_halted"] - cand["exact_halted"]
        out.append(
            _gate(
                "max_exact_halted_drop",
                name,
                drop,
                gates.max_exact_halted_drop,
                drop <= gates.max_exact_halted_drop + 1e-12,
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
            )
        )
    fp = candidate.get("fixed_point")
    if gates.max_residual is not None and fp is not None:
        r = fp["residual_under_original_max"]
        ok = r is not None and r <= gates.max_residual and fp["nan_or_inf_samples"] == 0
        out.append(_gate("max_residual", name, r if r is not None else float("inf"), gates.max_residual, ok))
    return out
