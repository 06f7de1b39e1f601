"""TensorRT-compatible Q/DQ: signed INT8, zero point 0 (symmetric). NNCF can emit uint8 or non-zero zero
points (its MIXED preset, or no model_type), which TensorRT rejects (shared/research/toolchain.md)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper


def qdq_violations(model: onnx.ModelProto) -> list[str]:
    """One line per Q/DQ node that is not symmetric signed int8 (empty list: compatible)."""
    inits = {t.name: t for t in model.graph.initializer}
    consts = {n.output[0]: n.attribute[0].t for n in model.graph.node if n.op_type == "Constant" and n.attribute}
    out = []
    for n in model.graph.node:
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
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


def count_qdq(model: onnx.ModelProto) -> int:
    return sum(n.op_type == "QuantizeLinear" for n in model.graph.node)
