"""Gates declared in a recipe, evaluated on results: each a (name, value, limit, passed) record."""
from __future__ import annotations


def evaluate_gates(gates, reference: dict, candidate: dict) -> list[dict]:
    """Compare a candidate variant's entry with the reference entry (both as written to results.json)."""
    out = []
    if gates.max_exact_drop is not None:
        drop = reference["metrics"]["exact_full"] - candidate["metrics"]["exact_full"]
        out.append({"name": "max_exact_drop", "variant": candidate["name"], "value": round(drop, 6),
                    "limit": gates.max_exact_drop, "passed": drop <= gates.max_exact_drop})
    if gates.min_argmax_agreement is not None:
        agr = candidate["vs_reference"]["argmax_agreement_last"]
        out.append({"name": "min_argmax_agreement", "variant": candidate["name"], "value": agr,
                    "limit": gates.min_argmax_agreement, "passed": agr >= gates.min_argmax_agreement})
    return out
