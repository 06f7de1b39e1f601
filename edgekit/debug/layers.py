"""Layer-wise debugging of a compressed variant along the float32 trajectory: which quantized layer moves the
halting decision at recursion step K.

Why: a recursive model's compressed variant can keep its answers and still halt at other steps, and the cause is
usually one kind of layer (in the TRM demo, the SwiGLU down projections). Polygraphy compares a graph layer by
layer on one input; here the input is the float32 model's own state at step K (so earlier steps' drift is not
mixed in), and the question is the halting logit. For every layer (a weight and all its calls in the step):

- output error: the variant's output of that layer against float32's, both fed float32's step-K state (errors of
  earlier layers in the same step included, as Polygraphy reports them);
- only quantized: the float32 step with just this layer compressed the variant's way; the change of the halting
  logit, and the share of puzzles whose halting decision flips;
- only restored: the variant's way everywhere except this layer; how much of the variant's halting change that
  layer alone accounts for.

Hybrids are rebuilt from the float32 step graph with the variant's own mode and settings (manifest
`quantization`), calibrated where the mode needs it on the float32 ONNX trajectory of the debug inputs: they are
the variant's method applied to one layer, not byte-for-byte the variant's graph.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ..errors import EdgekitError, InputError
from ..quantize.modes import MODES

CALIBRATION_SAMPLES = 16  # puzzles whose whole float32 trajectory calibrates / smooths the rebuilt hybrids
MAX_LAYERS = 256  # bound on the hybrids one run builds (two per layer)


class DebugError(EdgekitError):
    """The artefact or variant cannot be debugged (one line, exit 2)."""


@dataclass
class LayerRow:
    """One layer (module path of a weight; all its calls in the step)."""

    layer: str
    calls: int
    output_error: float | None  # mean relative L2 error of the variant's output vs float32 (None: not comparable)
    only_quantized_halt_change: float  # mean |halting logit - float32's| with only this layer quantized
    only_quantized_flips: float  # share of puzzles whose halting decision flips
    only_restored_halt_change: float  # the same with every quantized layer but this one
    only_restored_flips: float
    rank: int = 0


@dataclass
class DebugReport:
    variant: str
    mode: str
    step: int
    samples: int
    threshold: float
    variant_halt_change: float  # the whole variant, fed float32's step-K state
    variant_flips: float
    layers: list[LayerRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# -- partial quantizers: the variant's own method on a chosen set of MatMul nodes -----------------------------------

Partial = Callable[[onnx.ModelProto, list[dict[str, np.ndarray]], dict[str, Any], list[str]], onnx.ModelProto]

# each mode's own partial rebuild, declared in its file (edgekit/quantize/modes/)
PARTIAL: dict[str, Partial] = {name: m.partial for name, m in MODES.items() if m.partial is not None}


# -- graph helpers ----------------------------------------------------------------------------------------------------


INTEGER_OPS = {"MatMulInteger", "MatMulIntegerToFloat", "DynamicQuantizeMatMul", "MatMulNBits", "QLinearMatMul"}
PASS_THROUGH = {"Add", "Mul", "Cast", "Reshape", "Identity"}  # scale, bias and shape nodes after an integer kernel


def quantized_nodes(float_step: onnx.ModelProto, variant_step: onnx.ModelProto) -> list[str]:
    """float32 MatMul / Gemm nodes whose output the variant computes another way: an integer kernel (possibly
    followed by scale, bias or reshape nodes), or a MatMul / Gemm fed by DequantizeLinear or by a Cast to float16
    (`int8_fp16`). Matched by output value name, which every edgekit quantizer keeps; a Gemm merely rewritten as
    MatMul + Add counts as float."""
    producer = {o: n for n in variant_step.graph.node for o in n.output}

    def reduced(value: str) -> bool:
        p = producer.get(value)
        if p is None:
            return False
        to = next((a.i for a in p.attribute if a.name == "to"), None)
        return p.op_type == "DequantizeLinear" or (p.op_type == "Cast" and to == onnx.TensorProto.FLOAT16)

    def integer(value: str, depth: int = 4) -> bool:
        p = producer.get(value)
        if p is None or depth == 0:
            return False
        if p.op_type in INTEGER_OPS:
            return True
        if p.op_type in ("MatMul", "Gemm"):
            return any(reduced(i) for i in p.input)
        return p.op_type in PASS_THROUGH and any(integer(i, depth - 1) for i in p.input)

    return [n.name for n in float_step.graph.node if n.op_type in ("MatMul", "Gemm") and integer(n.output[0])]


def _with_outputs(model: onnx.ModelProto, names: list[str]) -> bytes:
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    known = {o.name for o in probe.graph.output}
    probe.graph.output.extend(onnx.helper.make_empty_tensor_value_info(t) for t in names if t not in known)
    return probe.SerializeToString()


def _session(model: onnx.ModelProto | bytes) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(model if isinstance(model, bytes) else model.SerializeToString(), so)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm((a - b).astype(np.float64)) / max(np.linalg.norm(b.astype(np.float64)), 1e-30))


# -- the debugger -----------------------------------------------------------------------------------------------------


def _trajectory(runner: Any, step_sess: Any, x_in: np.ndarray, steps: int) -> list[dict[str, np.ndarray]]:
    """The float32 step graph's feeds at steps 1..steps (state and encoded input)."""
    x = runner.encode(x_in)
    state = runner.initial_state(x)
    names = list(runner.state_names)
    feeds = []
    for _ in range(steps):
        feed = {**dict(zip(names, state)), "x": x}
        feeds.append(feed)
        state = step_sess.run(None, feed)[: len(names)]
    return feeds


def debug_variant(
    folder: Path,
    variant: str,
    inputs: np.ndarray,
    step: int | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> DebugReport:
    """Rank the variant's quantized layers by their effect on the halting logit at recursion step `step` (default:
    the step at which most float32 puzzles halt) along the float32 trajectory of `inputs`."""
    from ..quantize.nncf_backend import layer_groups
    from ..quantize.smooth import smooth_gated
    from ..runtime import Runner

    runner = Runner(folder)
    manifest = runner.manifest
    if not runner.stopping.halting_head:
        raise DebugError(
            "edgekit debug ranks layers by their effect on the halting logit; a DEQ has none",
            "use the validation report's fixed-point residuals for DEQ variants",
        )
    if variant not in manifest.variants or variant == "float32":
        others = ", ".join(v for v in manifest.variants if v != "float32") or "none"
        raise DebugError(f"no compressed variant {variant!r} in this artefact", f"choose one of: {others}")
    info = dict(manifest.quantization_of(variant))
    mode = variant if variant in PARTIAL else str(info.get("mode", ""))
    if mode not in PARTIAL:
        raise DebugError(
            f"variant {variant!r} is not a quantized step graph edgekit can rebuild layer by layer",
            f"debug one of: {', '.join(v for v in manifest.variants if v in PARTIAL) or 'none'}",
        )
    budget = int(runner.graph.step_budget)
    if step is not None and not 1 <= step <= budget:
        raise InputError(f"--step {step} is outside the recursion budget 1..{budget}", f"pass 1..{budget}")
    thr = float(runner.graph.threshold)
    float_step = onnx.load(str(runner.file(manifest.variants["float32"].require("step"))))
    variant_step = onnx.load(str(runner.file(manifest.variants[variant].require("step"))))
    step32 = _session(float_step)
    names = list(runner.state_names)
    k = len(names)

    trajectory = _trajectory(runner, step32, inputs, budget)
    halts = np.stack([step32.run(None, f)[k].reshape(-1) for f in trajectory])  # [steps, n]
    if step is None:
        first = np.where((halts > thr).any(0), (halts > thr).argmax(0) + 1, budget)
        step = int(np.bincount(first).argmax())
        log(f"step {step}: the step at which most float32 puzzles halt ({int(np.sum(first == step))} of {len(first)})")
    feeds = trajectory[step - 1]
    ref_halt = step32.run(None, feeds)[k].reshape(-1)

    quantized = quantized_nodes(float_step, variant_step)
    groups = {g: [n for n in ns if n in quantized] for g, ns in layer_groups(float_step, by="layer").items()}
    groups = {g: ns for g, ns in groups.items() if ns}
    if not groups:
        raise DebugError(f"variant {variant!r} has no quantized MatMul edgekit recognises", "nothing to rank")
    if len(groups) > MAX_LAYERS:
        raise DebugError(
            f"{len(groups)} layers is more than this debugger builds hybrids for ({MAX_LAYERS})",
            "debug a smaller model or one part at a time",
        )

    calib = [{n: v[:CALIBRATION_SAMPLES] for n, v in f.items()} for f in trajectory]
    alpha = (info.get("smooth") or {}).get("alpha") if isinstance(info.get("smooth"), dict) else None
    base = float_step if alpha is None else smooth_gated(float_step, calib, float(alpha))[0]
    rescaled: set[str] = set()
    notes = []
    if alpha is not None:  # the smoothed up projections compute x @ (W_up / s): not comparable with float32's
        ups = {p["up"] for p in info["smooth"].get("pairs", [])}
        rescaled = {n.name for n in float_step.graph.node if len(n.input) > 1 and n.input[1] in ups}
        notes.append(
            f"smoothed (alpha {alpha}): hybrids are built on the smoothed float32 step, an exact rewrite; "
            "the up projections' own output error is not comparable and left out"
        )

    def halt_of(model: onnx.ModelProto) -> np.ndarray:
        return _session(model).run(None, feeds)[k].reshape(-1)

    def effect(h: np.ndarray) -> tuple[float, float]:
        return float(np.mean(np.abs(h - ref_halt))), float(np.mean((h > thr) != (ref_halt > thr)))

    whole = effect(_session(variant_step).run(None, feeds)[k].reshape(-1))
    outs = {n.name: n.output[0] for n in float_step.graph.node if n.name in quantized}
    wanted = sorted(set(outs.values()))
    ref_vals = dict(zip(wanted, _session(_with_outputs(float_step, wanted)).run(wanted, feeds)))
    var_vals = dict(zip(wanted, _session(_with_outputs(variant_step, wanted)).run(wanted, feeds)))
    partial = PARTIAL[mode]
    rows = []
    from .. import progress

    with progress.task(f"debugging {variant} at step {step}", len(groups)) as bar:
        for g, ns in groups.items():
            errs = [_rel(var_vals[outs[n]], ref_vals[outs[n]]) for n in ns if n not in rescaled]
            only_q = effect(halt_of(partial(base, calib, info, ns)))
            restored = effect(halt_of(partial(base, calib, info, [n for n in quantized if n not in ns])))
            rows.append(LayerRow(g, len(ns), float(np.mean(errs)) if errs else None, *only_q, *restored))
            log(f"{g}: only quantized |d halt| {only_q[0]:.4f}, restored {restored[0]:.4f}")
            bar.advance()
    rows.sort(key=lambda r: (-r.only_quantized_halt_change, r.only_restored_halt_change))
    for i, r in enumerate(rows, 1):
        r.rank = i
    return DebugReport(variant, mode, step, len(inputs), thr, whole[0], whole[1], rows, notes)


def write_plot(report: DebugReport, path: Path) -> None:
    """Horizontal bars per layer, in rank order: |halting-logit change| with only it quantized and with only it
    restored (the variant's whole change marked), and the output error on a second axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report.layers
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 0.35 * len(rows) + 1.8), sharey=True)
    y = np.arange(len(rows))[::-1]
    a.barh(y + 0.2, [r.only_quantized_halt_change for r in rows], 0.4, label="only this layer quantized")
    a.barh(y - 0.2, [r.only_restored_halt_change for r in rows], 0.4, label="only this layer restored")
    a.axvline(report.variant_halt_change, color="k", ls="--", lw=1, label=f"whole {report.variant}")
    a.set_yticks(y, [r.layer for r in rows], fontsize=8)
    a.set_xlabel("mean |halting logit - float32's|")
    a.legend(fontsize=8)
    b.barh(y, [r.output_error or 0.0 for r in rows], 0.6, color="tab:gray")
    b.set_xlabel(f"relative output error of {report.variant} vs float32")
    fig.suptitle(f"{report.variant} at recursion step {report.step} ({report.samples} puzzles, float32 trajectory)")
    fig.tight_layout()
    import io

    from ..artefact import replace_file

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    replace_file(path, buf.getvalue())
