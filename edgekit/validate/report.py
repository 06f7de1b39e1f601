"""report.md: the verdict, the tables and the plots of one validation run, as Markdown."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..manifest import Manifest
from .plots import HALTING_PREFIX, halting_plot


def _cell(d: dict[str, Any], key: str, fmt: str = ".3f") -> str:
    """A table cell: the float at d[key] in `fmt`, or an en dash where there is none."""
    v = d.get(key)
    return format(v, fmt) if isinstance(v, float) else "–"


def _interval(g: dict) -> str:
    iv = g.get("interval")
    return f" (95 % interval {iv[0]:.4g} to {iv[1]:.4g})" if iv else ""


def _against(g: dict[str, Any]) -> str:
    return f" vs {g['against']}" if g.get("against", "reference") not in ("reference", "absolute") else ""


GLOSSARY = {
    "exact@budget": "share of examples whose every labelled position is right after the full step budget (16)",
    "exact@1": "the same after one step",
    "cell@budget": "share of labelled positions right after the full budget, averaged over examples",
    "exact (early halting)": "exact accuracy of the answer at each example's halting step (what a device "
    "returns when it stops as soon as the halting logit passes the threshold)",
    "halted before cap": "share of examples that halt before the step budget",
    "argmax agreement": "share of positions where a variant's answer equals the reference's",
    "same halting step": "share of examples halting at the same step in both variants",
    "relative Δlogits": "per example, the largest logit difference divided by that example's largest |logit| "
    "(median and 99th percentile); raw differences (max_abs_dlogits_last in results.json) can be large on a "
    "chaotic example while every answer agrees",
    "interval": "95 % Wilson interval of a share: how far the estimate can be from the truth at this sample size; "
    "for a drop gate, the paired interval of the accuracy difference on the same examples (Newcombe); for a "
    "latency gate, the distribution-free interval of the median over interleaved timing rounds",
}


def _is_onnx(e: dict[str, Any]) -> bool:
    """An ONNX variant's entry (its display string says what ran; results.json before `display` had only that)."""
    return str(e.get("display", e.get("name", ""))).startswith("onnx")


def _display(results: dict[str, Any], name: Any) -> str:
    """What the entry called `name` is, in words ("pytorch (float32)"), or the name where no entry says."""
    return next((str(e.get("display", name)) for e in results["variants"] if e.get("name") == name), str(name))


def _deployable(results: dict[str, Any]) -> dict[str, Any] | None:
    """The ONNX variant a device would use: every gate on it passed, smallest step graphs."""
    gates: dict[str, bool] = {}
    for g in results["gates"]:
        gates[g["variant"]] = gates.get(g["variant"], True) and g["passed"]
    onnx = [e for e in results["variants"] if _is_onnx(e) and gates.get(e["name"], True)]
    return min(onnx, key=lambda e: e.get("bytes", 0), default=None)


def _reading(results: dict[str, Any], manifest: Manifest | None) -> list[str]:
    """The verdict and one paragraph saying what it means."""
    failed = [g for g in results["gates"] if not g["passed"]]
    n = len(results["gates"])
    if failed:
        names = sorted({f"{g['name']} on {g['variant']}" for g in failed})
        head = f"**FAILED**: {len(failed)} of {n} gates failed ({'; '.join(names)})."
    else:
        head = f"**PASSED**: all {n} gates hold."
    best = _deployable(results)
    if best is None:
        return [head, "", "No ONNX variant passes its gates: none is fit to deploy.", ""]
    m = best["metrics"]
    cost = f"{best.get('bytes', 0) / 1e6:.2f} MB of step graphs"
    lo, hi = m.get("exact_full_interval", [None, None])
    interval = f" (95 % interval {lo:.3f}-{hi:.3f})" if lo is not None else ""
    full = f"exact accuracy {m['exact_full']:.3f}{interval} at the full budget"
    if m.get("exact_halted") is not None:  # the headline: the answer the device returns, at its halting step
        written = None if manifest is None else manifest.graph.halt_threshold
        thr = best.get("halt_threshold", 0 if written is None else written)
        hl, hh = m.get("exact_halted_interval", [None, None])
        hiv = f" (95 % interval {hl:.3f}-{hh:.3f})" if hl is not None else ""
        full = (
            f"exact accuracy {m['exact_halted']:.3f}{hiv} at its halting step after {m.get('mean_steps', 0):.2f} "
            f"steps on average (threshold {thr}), {m['exact_full']:.3f} at the full budget"
        )
    ref = _display(results, results["reference"]) if results.get("reference") else "the PyTorch reference"
    return [
        head,
        "",
        f"A device would use **{best['name']}**: {full}; {cost}. Measured on {results['data']}, against {ref}. "
        "Latency is measured on the "
        "device with `edgekit bench`, not here.",
        "",
    ]


def _validated(results: dict[str, Any], manifest: Manifest | None) -> list[str]:
    """What this report's numbers cover and what they do not: a device user must not read an fp16 TensorRT engine
    into a float32 validation."""
    onnx = [e["name"] for e in results["variants"] if _is_onnx(e)]
    precisions = ["float32"] if manifest is None else list(manifest.variants)
    lines = [
        "## What was validated, and what was not",
        "",
        f"- Validated here: {', '.join(onnx) or 'no ONNX variant'}, on onnxruntime's CPU provider, against "
        f"{_display(results, results.get('reference', 'PyTorch'))}.",
    ]
    tensorrt = results.get("target_build") is not None or results.get("target", "x86-cpu") != "x86-cpu"
    if tensorrt:
        fp16 = "float16" in precisions
        lines.append(
            "- Not validated here: TensorRT engines. They are built on the device (`edgekit plan` / `edgekit "
            "build`) in fp16 by default on targets that support it; "
            + (
                "the float16 variant above is the validated fp16 form."
                if fp16
                else "**fp16 was not validated**: add float16 to export.precisions, or build with `--precision fp32`."
            )  # fmt: skip
            + " `edgekit verify` on the device checks the engines against golden.npz."
        )
    ov = [e for e in results["variants"] if isinstance(e.get("openvino"), dict)]
    if ov:
        o = ov[0]["openvino"]
        graphs = ", ".join(dict.fromkeys(e["openvino"]["graphs"] for e in ov))
        lines.append(
            f"- OpenVINO ({', '.join(e['name'] for e in ov)}): the {graphs} graphs compiled by OpenVINO "
            f"{o['version']} for this machine's CPU ({o['device_name']}) at those inference precisions, run through "
            "the host loop a device runs with `--backend openvino --ov-precision`; their gates name the reference "
            "they compare with. An Intel GPU or NPU is not validated here: `edgekit verify --full` on the device."
        )
    lines.append(
        "- Latency: measured here only by latency gates and `edgekit tune` (on this machine); a device's own is "
        "`edgekit bench` there."
    )
    return lines + [""]


def _openvino(variants: list[dict[str, Any]]) -> list[str]:
    """validate.openvino's configurations: each against onnxruntime's float32 rollout of the same graphs, and the
    deployed host loop (early halting, compaction) against its own recorded rollout."""
    rows = [e for e in variants if isinstance(e.get("openvino"), dict)]
    if not rows:
        return []
    out = [
        "",
        "## OpenVINO configurations (validate.openvino)",
        "",
        "The float32 graphs on OpenVINO's CPU plugin at each inference precision (int8: the int8_weight_only "
        "graphs, activations quantized per token at run time). Against onnxruntime float32: its recorded rollout "
        "of the float32 graphs (not gated; the gates compare with PyTorch). Host loop: `solve` with early "
        "halting and compaction, as a device runs it, against the configuration's own recorded rollout.",
        "",
        "| configuration | exact@budget | exact (early halting) | same halting step / argmax agreement at the "
        "budget vs onnxruntime float32 | host loop: same halting step / same answer |",
        "|---|---|---|---|---|",
    ]
    for e in rows:
        m, vs, h = e["metrics"], e.get("vs_onnxruntime_float32", {}), e.get("host_loop", {})
        out.append(
            f"| {e['name']} | {_cell(m, 'exact_full')} | {_cell(m, 'exact_halted')} | "
            f"{_cell(vs, 'halting_step_agreement', '.4f')} / {_cell(vs, 'argmax_agreement_last', '.4f')} | "
            f"{_cell(h, 'same_halting_step_as_rollout', '.4f')} / {_cell(h, 'same_answer_as_rollout', '.4f')} |"
        )
    return out


def _tune_section(t: dict[str, Any]) -> list[str]:
    """What `edgekit tune` chose for its budget, and how the choice held on examples it never saw."""
    c = t.get("chosen")
    lines = ["", f"## Tuning for {t['budget_ms']:g} ms per puzzle at batch {t['batch']} (`edgekit tune`)", ""]
    if not c:
        f = t["fastest"]
        lines.append(f"No configuration meets the budget; the fastest is {f['latency_ms']:.2f} ms ({f['variant']}).")
    else:
        thr = "never" if c["threshold"] is None else f"{c['threshold']:g}"
        lines.append(
            f"Chosen: **{c['variant']}, halt threshold {thr}, step cap {c['cap']}**: {c['latency_ms']:.2f} ms per "
            f"puzzle (measured on {t['machine']}), exact {c['exact']:.3f} on the tuning set, out of "
            f"{t['configurations']} configurations ({len(t['front'])} on the front)."
        )
        ck = t.get("check")
        if ck:
            lines.append(
                f"Re-measured on {ck['n']} held-out examples ({ck['data']}): chosen {ck['chosen']['exact']:.3f} "
                f"(95 % interval {ck['chosen']['exact_interval'][0]:.3f} to {ck['chosen']['exact_interval'][1]:.3f}), "
                f"validated default {ck['default']['exact']:.3f}."
            )
    lines += ["", "![tune_front.png](tune_front.png)"]
    return lines + _depth_lines(t.get("depth"))


def _depth_lines(d: dict[str, Any] | None) -> list[str]:
    """`edgekit tune --depth-factor`: per variant and halting rule, accuracy at the budget and the deepest cap, where
    it saturates, and what the steps past the budget cost."""
    if not d:
        return []
    at = d["budget"] - 1
    lines = ["", f"### Test-time depth: step caps up to {d['deepest']} ({d['factor']} x the trained budget)", ""]
    for c in d["curves"]:
        for r in c["rules"]:
            sat, g = r["saturates_at"], r["past_budget"]
            lines.append(
                f"- {c['variant']}, {r['rule']}: exact {r['exact'][at]:.3f} at cap {d['budget']} "
                f"({r['mean_steps'][at]:.2f} mean steps, {r['ms_per_puzzle'][at]:.2f} ms per puzzle), "
                f"{r['exact'][-1]:.3f} at cap {d['deepest']} ({r['mean_steps'][-1]:.2f} steps, "
                f"{r['ms_per_puzzle'][-1]:.2f} ms); saturates at cap {sat} ({r['exact'][sat - 1]:.3f}); past the "
                f"budget {g['exact_gain']:+.3f} exact for {g['extra_ms']:+.2f} ms per puzzle"
            )
    lines += ["", "![tune_depth.png](tune_depth.png)"]
    return lines


def _fidelity(variants: list[dict[str, Any]]) -> list[str]:
    """The label-free measure per compressed variant, and how well it predicted a changed halting step here."""
    rows = [(e["name"], e["trajectory_cosine_vs_onnx_float32"]) for e in variants
            if isinstance(e.get("trajectory_cosine_vs_onnx_float32"), dict)]  # fmt: skip
    if not rows:
        return []
    out = [
        "",
        "## Trajectory fidelity vs the float32 export (label-free)",
        "",
        "Cosine of each variant's carried state to the float32 state, each on its own trajectory from the same "
        "inputs, full budget. AUROC: how well 1 − (lowest cosine up to the float32 halting step) ranks the samples "
        "whose halting step changed (0.5 = chance).",
        "",
        "| variant | samples | cosine step 1 | cosine last step | 5th percentile last step | halting changed | AUROC |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, c in rows:
        pr = c.get("predicts_halting_change") or {}
        auc = pr.get("auroc")
        out.append(
            f"| {name} | {c.get('samples')} | {c['mean'][0]:.5f} | {c['mean'][-1]:.5f} | {c['p05'][-1]:.5f} | "
            f"{pr.get('halting_changed', '–')} | {'–' if auc is None else f'{auc:.2f}'} |"
        )
    return out


def _arc(results: dict[str, Any], manifest: Manifest | None) -> list[str]:
    """ARC pass@k after voting per variant, and the puzzle table the artefact keeps."""
    rows = [(e["name"], e["task_metrics"]["arc"]) for e in results["variants"] if "arc" in e.get("task_metrics", {})]
    if not rows:
        return []
    out = [
        "",
        "## ARC: pass@k after undoing augmentations and voting",
        "",
        f"{rows[0][1]['tasks']} tasks, {rows[0][1]['test_inputs']} test inputs, "
        f"{rows[0][1]['copies_per_test_input']} augmented copies each. Budget: every step, ties broken by the last "
        "step's halting logit (the reference evaluation); halt: each copy's answer at its halting step (the "
        "deployed runtime). TRM's definition: fractional credit per test input; HRM's: every test input of a task.",
        "",
        "| variant | pass@1 TRM / HRM (budget) | pass@2 TRM / HRM (budget) | pass@1 (halt) | pass@2 (halt) |",
        "|---|---|---|---|---|",
    ]
    for name, a in rows:
        b, h = a["budget"], a["halt"]

        def two(d: dict[str, Any]) -> str:
            return f"{d['fractional']:.3f} / {d['all_inputs']:.3f}"

        out.append(f"| {name} | {two(b['pass@1'])} | {two(b['pass@2'])} | {two(h['pass@1'])} | {two(h['pass@2'])} |")
    p = None if manifest is None else manifest.graph.puzzle_ids
    if p is not None and p.bytes_before is not None and p.bytes_after is not None:
        out += [
            "",
            f"Puzzle table: {p.rows:,} of {p.rows_before:,} identifiers kept "
            f"({p.bytes_before / 1e6:,.2f} MB -> {p.bytes_after / 1e6:,.2f} MB); answers in submission.json.",
        ]
    return out


def _halting_moves(variants: list[dict[str, Any]], plots: Sequence[str]) -> list[str]:
    """Per compressed variant, where its halting step moved from the float32 export's and how exact the answers are
    at each halting step (the plots halting_<variant>.png), counted from the transition matrix in results.json."""
    rows = [e for e in variants if (e.get("vs_onnx_float32") or {}).get("halting_step_transition")]
    if not rows:
        return []
    out = [
        "",
        "## Halting of the compressed variants vs the float32 export",
        "",
        "Left: examples by float32 halting step (rows) and the variant's halting step (columns); off the diagonal "
        "they halt elsewhere. Right: exact accuracy of the answer at each halting step, with the number of examples "
        "halting there. A drop at the steps examples moved to explains a failed halting or early-halting gate.",
        "",
    ]
    for e in rows:
        m = np.asarray(e["vs_onnx_float32"]["halting_step_transition"])
        n, same = int(m.sum()), int(np.trace(m))
        later, earlier = int(np.triu(m, 1).sum()), int(np.tril(m, -1).sum())
        out.append(
            f"- {e['name']}: same halting step on {same} of {n} examples; {later} halt later, {earlier} earlier."
        )
        name = halting_plot(e["name"])
        if name in plots:
            out += ["", f"![{name}]({name})", ""]
    return out


def report_markdown(
    results: dict[str, Any], manifest: Manifest | None, plots: Sequence[str] = (), tune: dict[str, Any] | None = None
) -> str:
    """report.md of `results` (results.json's document) for the artefact whose `manifest` it is (None: a report of
    results alone)."""
    lines = [
        f"# edgekit report: {results['recipe']}",
        "",
        *_reading(results, manifest),
        f"Target: {results['target']}. Data: {results['data']}.",
        *(f"\n**Warning**: {w}." for w in results.get("warnings") or []),
    ]
    src = results.get("data_source")
    if src:
        lines.append(f"Data file: `{src['data']}`, split `{src['split']}`, examples {src['examples']} of {src['of']}.")
    from ..scale.settings import report_lines  # where the rollouts ran (executor, workers, reference device)

    lines += report_lines(results.get("scale"))
    lines += ["", *_validated(results, manifest)]
    lines += [
        "",
        "| variant | what ran | exact@1 | exact@budget | cell@budget | exact (early halting) | halted before cap "
        "| argmax agreement vs reference | relative Δlogits median / p99 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for e in results["variants"]:
        m = e["metrics"]
        cells = [_cell(m, k) for k in ("exact_1", "exact_full", "cell_full", "exact_halted", "halted_before_cap")]
        vs = e.get("vs_reference", {})
        rel = f"{_cell(vs, 'dlogits_rel_median', '.1e')} / {_cell(vs, 'dlogits_rel_p99', '.1e')}"
        what = e.get("display", "–")
        lines.append(
            f"| {e['name']} | {what} | {' | '.join(cells)} | {_cell(vs, 'argmax_agreement_last', '.4f')} | {rel} |"
        )
    own = [(e["name"], e["halt_threshold"]) for e in results["variants"] if e.get("halt_threshold") is not None]
    if len({t for _, t in own}) > 1:  # compressed variants calibrated their own (halt_threshold: auto)
        lines += ["", "Halting thresholds (each variant's own, calibrated on held-out data so its exact accuracy at "
                  "halting stays within the limit of float32's in the fewest steps): "
                  + ", ".join(f"{n} {t:g}" for n, t in own) + "."]  # fmt: skip
    lines += ["", "## Gates", ""]
    import re

    from ..runtime.gate_eval import undecided_note

    count = re.search(r"(\d+)", str(results.get("data", "")))  # 'the first 256 examples of ...'
    for g in results["gates"]:
        note = undecided_note(g, int(count.group(1)) if count else None)
        lines.append(
            f"- {g['name']} on {g['variant']}{_against(g)}: {g['value']}{_interval(g)} (limit {g['limit']}) → "
            f"{'passed' if g['passed'] else 'FAILED'}" + (f"; {note}" if note else "")
        )
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
    lines += _fidelity(results["variants"])
    lines += _openvino(results["variants"])
    lines += _arc(results, manifest)
    lines += _halting_moves(results["variants"], plots)
    lines += ["", f"Overall: {'PASSED' if results['passed'] else 'FAILED'}", ""]
    lines += [f"![{p}]({p})" for p in plots if not p.startswith(HALTING_PREFIX)]
    if tune:
        lines += _tune_section(tune)
    lines += ["", "## Glossary", ""] + [f"- **{k}**: {v}." for k, v in GLOSSARY.items()]
    return "\n".join(lines) + "\n"
