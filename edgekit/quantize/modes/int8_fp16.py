"""`int8_fp16`: static per-tensor INT8 (the `int8` mode's NNCF Q/DQ) everywhere, except the MatMuls
`quantize.int8_fp16.float16` names, which compute in float16: weight stored float16, `Cast(to=FLOAT16)` on the
activation, the MatMul in float16, `Cast(to=FLOAT)` on its output.

Why: on the recursive demos the layers whose per-tensor activation noise moves the halting decision are the SwiGLU
down projections. `int8_hybrid` quantizes them per row, but with onnxruntime-only kernels; keeping them float32
(`quantize.keep_float`) is what TensorRT targets had. Float16 keeps them close to float32 (a relative error of
about 1e-3, no range shared across the batch, so a puzzle's answer does not depend on its batch-mates) at half
the weight bytes, in plain ONNX ops TensorRT parses: the graph is a TensorRT Q/DQ graph that also computes in
float16. TensorRT must build it strongly typed so the Casts decide those layers' precision
(edgekit/tensorrt/build_spec.py); onnxruntime's CPU provider runs the float16 MatMuls as they are (slowly: no
fast float16 GEMM on x86), so validation sees the float16 rounding.

The graph is `int8`'s (smoothed as `quantize.smooth` says, calibrated on the same items, `keep_float` kept
float32) with the float16 MatMuls also left out of NNCF's Q/DQ, then rewritten with onnx-ir.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from . import Mode, Section, others_than, regexes, register
from .int8 import partial as static_partial

if TYPE_CHECKING:
    import onnx

    from ..stage import Quantized, QuantizeJob

DEFAULT_FLOAT16 = [".*down_proj.*"]
FLOAT16_MAX = 65504.0  # the largest finite float16


class Int8Fp16Section(BaseModel):
    """`int8_fp16` (quantize/modes/int8_fp16.py): static INT8 (as `int8`) everywhere except the MatMuls named
    here, which compute in float16 between two Casts. Default: the SwiGLU down projections, where per-tensor
    activation noise moves halting on the TRM and HRM demos (docs/quantization.md)."""

    model_config = ConfigDict(extra="forbid")

    float16: list[str] = Field(
        default_factory=lambda: list(DEFAULT_FLOAT16),
        min_length=1,
        description="node-name regular expressions (whole name) of the MatMuls computed in float16; every other "
        "MatMul that `keep_float` does not keep gets static INT8",
    )

    @field_validator("float16")
    @classmethod
    def _regexes(cls, v: list[str]) -> list[str]:
        return regexes(v)


def float16_matmuls(
    model: onnx.ModelProto, patterns: list[str], keep_patterns: list[str], keep_types: list[str]
) -> tuple[list[str], dict[str, str]]:
    """The MatMul nodes to compute in float16 (name matching a pattern whole, a constant float32 weight, not kept
    float32 by `quantize.keep_float`, whose patterns are matched from the start as NNCF's ignored scope matches
    them), and the other matching nodes with why they are left alone."""
    import onnx

    inits = {t.name: t for t in model.graph.initializer}
    chosen: list[str] = []
    skipped: dict[str, str] = {}
    for n in model.graph.node:
        if not any(re.fullmatch(p, n.name) for p in patterns):
            continue
        w = inits.get(n.input[1]) if len(n.input) > 1 else None
        if n.op_type != "MatMul" or n.domain not in ("", "ai.onnx"):
            skipped[n.name] = f"{n.op_type}, not a MatMul"
        elif n.op_type in keep_types or any(re.match(p, n.name) for p in keep_patterns):
            skipped[n.name] = "kept float32 by quantize.keep_float"
        elif w is None or w.data_type != onnx.TensorProto.FLOAT:
            skipped[n.name] = "weight is not a constant float32 tensor"
        else:
            chosen.append(n.name)
    return chosen, skipped


def to_float16(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    """Rewrite the MatMul nodes `names` (constant float32 weights) to float16 between two Casts: each weight stored
    once in float16 (however often the recursion calls it), each activation cast once (MatMuls sharing an input
    share its Cast), the MatMul keeps its node name and its output value's name moves to the Cast back to float32.
    The input model is not changed."""
    import numpy as np
    import onnx
    import onnx_ir as ir

    from ..per_row import drop_unused_initializers, take_over

    m = ir.from_proto(model)
    g = m.graph
    by_name = {n.name: n for n in g}
    weights: dict[str, Any] = {}
    casts: dict[int, Any] = {}  # id of the float32 activation value -> its float16 cast
    f16 = ir.TensorType(ir.DataType.FLOAT16)
    for name in names:
        mm = by_name[name]
        x, w = mm.inputs
        assert x is not None and w is not None and w.const_value is not None and w.name is not None
        if w.name not in weights:
            value = w.const_value.numpy().astype(np.float16)
            t = ir.tensor(value, name=f"{w.name}/float16")
            v = ir.Value(name=t.name, shape=ir.Shape(list(value.shape)), type=f16, const_value=t)
            g.register_initializer(v)
            weights[w.name] = v
        if id(x) not in casts:
            cast = ir.Node("", "Cast", [x], attributes=[ir.AttrInt64("to", onnx.TensorProto.FLOAT16)],
                           name=f"{name}/to_float16")  # fmt: skip
            g.insert_before(mm, cast)
            cast.outputs[0].name = f"{x.name or name}/float16"
            cast.outputs[0].type, cast.outputs[0].shape = f16, x.shape
            casts[id(x)] = cast.outputs[0]
        out = mm.outputs[0]
        half = ir.Node("", "MatMul", [casts[id(x)], weights[w.name]], name=f"{name}/float16")
        back = ir.Node("", "Cast", [half.outputs[0]], attributes=[ir.AttrInt64("to", onnx.TensorProto.FLOAT)],
                       name=f"{name}/to_float32")  # fmt: skip
        g.insert_before(mm, [half, back])
        half.outputs[0].name, half.outputs[0].type, half.outputs[0].shape = f"{out.name}/float16", f16, out.shape
        take_over(g, mm, back.outputs[0])
        half.name = name  # the MatMul keeps its name: debug, profiles and TensorRT layer names find it
    drop_unused_initializers(g)
    return ir.to_proto(m)


def int8_fp16(
    step: onnx.ModelProto, items: list[dict], keep_patterns: list[str], keep_types: list[str], float16: list[str]
) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """Static INT8 on every MatMul but those matching `float16` (and those `keep_*` keeps float32), float16 on
    those. Returns the graph and what went where."""
    from ..lint import static_matmuls
    from ..nncf_backend import QuantizeError, prepare, quantize_int8

    names, skipped = float16_matmuls(prepare(step), float16, keep_patterns, keep_types)
    if not names:
        why = f" ({'; '.join(f'{k}: {v}' for k, v in list(skipped.items())[:2])})" if skipped else ""
        raise QuantizeError(
            f"int8_fp16 found no MatMul matching quantize.int8_fp16.float16 {float16} (whole node name, a constant "
            f"float32 weight, not kept float32 by quantize.keep_float){why}",
            "set quantize.int8_fp16.float16 to node-name patterns of the step graph's MatMuls",
        )
    static = quantize_int8(step, items, keep_patterns, keep_types, names=names)
    peak = largest_values(static, items, names)
    if peak >= FLOAT16_MAX:
        raise QuantizeError(
            f"the MatMuls quantize.int8_fp16.float16 names see values up to {peak:.3g} on the calibration states, "
            f"beyond float16's {FLOAT16_MAX:.0f}",
            "keep them float32 (quantize.keep_float) or narrow quantize.int8_fp16.float16",
        )
    q = to_float16(static, names)
    static_mm = static_matmuls(q)
    return q, {
        "static_matmuls": len(static_mm),
        "float16_matmuls": len(names),
        "float16_nodes": names,
        "float16_max_abs": float(f"{peak:.4g}"),  # largest |input| or |output| of those MatMuls in calibration
    }


def largest_values(model: onnx.ModelProto, items: list[dict], names: list[str]) -> float:
    """The largest |value| the MatMuls `names` read or write (float32, before the rewrite) over the calibration
    items: float16 overflows to inf above 65504, so a layer that large cannot be computed in float16."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    if not items:
        return 0.0
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    wanted = sorted({v for n in probe.graph.node if n.name in names for v in (n.input[0], n.output[0])})
    known = {o.name for o in probe.graph.output}
    probe.graph.output.extend(onnx.helper.make_empty_tensor_value_info(v) for v in wanted if v not in known)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(probe.SerializeToString(), so, providers=["CPUExecutionProvider"])
    feeds = {i.name for i in sess.get_inputs()}
    peak = 0.0
    for item in items:
        for v in sess.run(wanted, {k: a for k, a in item.items() if k in feeds}):
            peak = max(peak, float(np.max(np.abs(v))) if v.size else 0.0)
    return peak


def handler(job: QuantizeJob) -> Quantized:
    from ..stage import Quantized

    kf, patterns = job.section.keep_float, job.section.int8_fp16.float16
    step, smooth = job.int8_input()
    q, info = int8_fp16(step, job.items(), kf.patterns, kf.types, patterns)
    return Quantized(
        q,
        {
            "method": "nncf.quantize static INT8 Q/DQ (as int8) except the MatMuls quantize.int8_fp16.float16 "
            "names: float16 between Casts (weights stored float16); TensorRT builds it strongly typed",
            "keep_float": {"patterns": kf.patterns, "types": kf.types},
            "float16": patterns,
            **info,
            **smooth,
        },
    )


def partial(model: onnx.ModelProto, items: list[dict[str, Any]], info: dict[str, Any], names: list[str]) -> Any:
    """`names` the variant's way: float16 where its `float16` patterns match, static INT8 elsewhere."""
    pats = [str(p) for p in info.get("float16") or DEFAULT_FLOAT16]
    half = [re.escape(n) for n in names if any(re.fullmatch(p, n) for p in pats)]
    if not half:
        return static_partial(model, items, info, names)
    # anchored: NNCF and the keep_float test match from the start, so "/a/MatMul" would also keep "/a/MatMul_1"
    keep = [f"{p}$" for p in others_than(model, names)]
    return int8_fp16(model, items, keep, [], half)[0]


register(
    Mode(
        "int8_fp16",
        form="qdq_int8_fp16",
        summary="static INT8 with float16 MatMuls where `quantize.int8_fp16.float16` names them (TensorRT)",
        handler=handler,
        partial=partial,
        section=Section(
            "int8_fp16",
            Int8Fp16Section,
            meaning="settings of the `int8_fp16` mode (TensorRT and onnxruntime)",
            doc="`int8_fp16`: static INT8 everywhere except the MatMuls named here, which compute in float16 "
            "between Casts; TensorRT builds the graph strongly typed.",
        ),
    )
)
