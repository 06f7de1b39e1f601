"""TensorRT-compatible Q/DQ: signed INT8, zero point 0 (symmetric), constant positive scales: every rule `edgekit
check` applies to Q/DQ for TensorRT. NNCF can emit uint8 or non-zero zero points (its MIXED preset, or no
model_type) and negative weight scales (INT8_SYM weight compression), which TensorRT rejects (toolchain.md).

Which rules a quantized graph must keep is read from the form its mode declares (`modes.FORMS`), not assumed:
`form_violations`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import onnx
from onnx import numpy_helper

if TYPE_CHECKING:
    from .modes import Form


def qdq_violations(model: onnx.ModelProto) -> list[str]:
    """One line per Q/DQ node that is not symmetric signed int8 (empty list: compatible)."""
    inits = {t.name: t for t in model.graph.initializer}
    consts = {n.output[0]: n.attribute[0].t for n in model.graph.node if n.op_type == "Constant" and n.attribute}
    out = []
    for n in model.graph.node:
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        s = inits.get(n.input[1]) or consts.get(n.input[1])
        if s is None:
            out.append(f"{n.name}: scale {n.input[1]} is not a constant")
        else:
            scale = numpy_helper.to_array(s).astype(np.float64)
            if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
                out.append(f"{n.name}: scale has values <= 0 or not finite (TensorRT needs positive scales)")
        if len(n.input) < 3 or not n.input[2]:
            # no zero point: 0 of the quantized type, which for Q is uint8 and for DQ that of its input
            x = inits.get(n.input[0])
            if n.op_type == "QuantizeLinear" or x is None or x.data_type != onnx.TensorProto.INT8:
                out.append(f"{n.name}: no zero point, so not signed int8")
            continue
        t = inits.get(n.input[2]) or consts.get(n.input[2])
        if t is None:
            out.append(f"{n.name}: zero point {n.input[2]} is not a constant")
            continue
        zp = numpy_helper.to_array(t)
        if zp.dtype != np.int8:
            out.append(f"{n.name}: zero point dtype {zp.dtype}, expected int8")
        elif np.any(zp != 0):
            out.append(f"{n.name}: non-zero zero point (asymmetric)")
    return out


def positive_scales(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """Make every weight DequantizeLinear scale positive: where a channel's scale is negative (NNCF's INT8_SYM
    weight compression keeps the sign of each channel's largest weight in its scale), negate the scale and that
    channel's int8 weights. Exact except a weight of -128, which becomes 127 (one step of that channel).
    Returns the model and the number of scales changed."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    inits = {t.name: t for t in model.graph.initializer}
    changed = 0
    for n in model.graph.node:
        if n.op_type != "DequantizeLinear" or n.input[0] not in inits or n.input[1] not in inits:
            continue
        w, s = numpy_helper.to_array(inits[n.input[0]]), numpy_helper.to_array(inits[n.input[1]])
        if w.dtype != np.int8 or not np.any(s < 0):
            continue
        axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
        sign = np.where(s < 0, -1, 1).astype(np.int16)
        shape = [1] * w.ndim
        if s.ndim == 1 and s.size > 1:
            shape[axis % w.ndim] = s.size
        w2 = np.clip(w.astype(np.int16) * sign.reshape(shape), -128, 127).astype(np.int8)
        inits[n.input[0]].CopyFrom(numpy_helper.from_array(w2, n.input[0]))
        inits[n.input[1]].CopyFrom(numpy_helper.from_array(np.abs(s).astype(s.dtype), n.input[1]))
        changed += int(np.sum(s < 0))
    return model, changed


def count_qdq(model: onnx.ModelProto) -> int:
    return sum(n.op_type == "QuantizeLinear" for n in model.graph.node)


def static_matmuls(model: onnx.ModelProto) -> list[str]:
    """MatMul / Gemm nodes with an input from a DequantizeLinear: the ones static Q/DQ INT8 reached, in graph order."""
    fed_by_dq = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return [n.name for n in model.graph.node if n.op_type in ("MatMul", "Gemm") and set(n.input) & fed_by_dq]


# the Q/DQ rules of each quantized type a TensorRT form declares
QDQ_RULES: dict[str, Callable[[onnx.ModelProto], list[str]]] = {"int8": qdq_violations}


def form_violations(model: onnx.ModelProto, form: Form) -> list[str]:
    """What in `model` breaks the form its mode declares: a TensorRT form's Q/DQ rules for its type, or any Q/DQ in
    a TensorRT form that declares none. onnxruntime-only forms are not linted (onnxruntime runs them in validation)."""
    if not form.tensorrt:
        return []
    if form.qdq is None:
        n = count_qdq(model)
        return [f"{n} QuantizeLinear nodes in a form without Q/DQ"] if n else []
    if form.qdq not in QDQ_RULES:
        return [f"no Q/DQ rules for {form.qdq} (known: {', '.join(QDQ_RULES)})"]
    return QDQ_RULES[form.qdq](model)
