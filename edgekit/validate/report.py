"""report.md: the verdict, the tables and the plots of one validation run, as Markdown."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _cell(d: dict[str, Any], key: str, fmt: str = ".3f") -> str:
    """A table cell: the float at d[key] in `fmt`, or an en dash where there is none."""
    v = d.get(key)
    return format(v, fmt) if isinstance(v, float) else "–"


def _against(g: dict[str, Any]) -> str:
    return f" vs {g['against']}" if g.get("against", "reference") not in ("reference", "absolute") else ""


def report_markdown(results: dict[str, Any], manifest: dict[str, Any], plots: Sequence[str] = ()) -> str:
    lines = [
        f"# edgekit report: {results['recipe']}",
        "",
        f"Target: {results['target']}. Data: {results['data']}.",
        "",
        "| variant | exact@1 | exact@budget | cell@budget | exact (early halting) | halted before cap "
        "| argmax agreement vs reference |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in results["variants"]:
        m = e["metrics"]
        cells = [_cell(m, k) for k in ("exact_1", "exact_full", "cell_full", "exact_halted", "halted_before_cap")]
        lines.append(
            f"| {e['name']} | {' | '.join(cells)} | "
            f"{_cell(e.get('vs_reference', {}), 'argmax_agreement_last', '.4f')} |"
        )
    lines += ["", "## Gates", ""]
    lines += [
        f"- {g['name']} on {g['variant']}{_against(g)}: {g['value']} (limit {g['limit']}) → "
        f"{'passed' if g['passed'] else 'FAILED'}"
        for g in results["gates"]
    ]
    forms = [(e["name"], k, e[k]) for e in results["variants"] for k in ("loop", "unrolled") if k in e]
    if forms:
        lines += [
            "",
            "## Deployment forms (same graphs, other execution)",
            "",
            "| variant | form | exact | mean steps | same halting step as host | same answer as host | seconds |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, k, f in forms:
            same = f.get("same_answer_as_host", f.get("argmax_agreement_with_host_last"))
            cells = [
                _cell(f, "exact"),
                _cell(f, "mean_steps"),
                _cell(f, "same_halting_step_as_host"),
                "–" if same is None else f"{same:.4f}",
                _cell(f, "seconds"),
            ]
            lines.append(f"| {name} | {k} | {' | '.join(cells)} |")
    quant = [(e["name"], e["quantization"]) for e in results["variants"] if e.get("quantization")]
    if quant:
        lines += ["", "## Quantization", ""]
        for name, q in quant:
            lines.append(
                f"- {name}: {q.get('method')}; {q.get('quantize_linear_nodes', 0)} QuantizeLinear nodes; step "
                f"graph {q.get('step_bytes', 0) / 1e6:.2f} MB; kept float: {q.get('keep_float')}"
            )
    lines += ["", f"Overall: {'PASSED' if results['passed'] else 'FAILED'}", ""]
    lines += [f"![{p}]({p})" for p in plots]
    return "\n".join(lines)
