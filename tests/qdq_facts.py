"""What a quantized step graph's Q/DQ nodes say, for tests that compare two quantizations of one graph."""

from __future__ import annotations

import onnx
from onnx import numpy_helper


def dq_fed(m: onnx.ModelProto) -> set[str]:
    """Names of the MatMul / Gemm nodes an input of which comes from a DequantizeLinear (static INT8 there)."""
    dq = {o for n in m.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return {n.name for n in m.graph.node if n.op_type in ("MatMul", "Gemm") and set(n.input) & dq}


def activation_scales(m: onnx.ModelProto) -> dict[str, float]:
    """QuantizeLinear node -> its per-tensor scale (a constant of one value): the calibrated activation ranges."""
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    return {
        n.name: float(inits[n.input[1]])
        for n in m.graph.node
        if n.op_type == "QuantizeLinear" and n.input[1] in inits and inits[n.input[1]].size == 1
    }
