"""Hand-made graphs of the form the `int8_fp16` mode makes, for the TensorRT build tests (tests/tensorrt_stage/):
an INT8 Q/DQ MatMul followed by a float16 MatMul between Casts."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def qdq_model(float16: bool = True) -> onnx.ModelProto:
    """x -> Q/DQ -> MatMul (INT8 weight behind DequantizeLinear) -> [Cast fp16 -> MatMul fp16 -> Cast fp32] -> y."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(np.array(0.05, np.float32), "scale"),
        numpy_helper.from_array(np.array(0, np.int8), "zp"),
        numpy_helper.from_array(rng.integers(-127, 128, (4, 4)).astype(np.int8), "w_int8"),
        numpy_helper.from_array(np.full(4, 0.01, np.float32), "w_scale"),
        numpy_helper.from_array(np.zeros(4, np.int8), "w_zp"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "scale", "zp"], ["xq"], name="x/quantize"),
        helper.make_node("DequantizeLinear", ["xq", "scale", "zp"], ["xd"], name="x/dequantize"),
        helper.make_node("DequantizeLinear", ["w_int8", "w_scale", "w_zp"], ["w"], name="w/dequantize", axis=1),
        helper.make_node("MatMul", ["xd", "w"], ["h" if float16 else "y"], name="up/MatMul"),
    ]
    if float16:
        inits.append(numpy_helper.from_array(rng.standard_normal((4, 4)).astype(np.float16), "down/float16"))
        nodes += [
            helper.make_node("Cast", ["h"], ["h16"], name="down/to_float16", to=TensorProto.FLOAT16),
            helper.make_node("MatMul", ["h16", "down/float16"], ["y16"], name="down/MatMul"),
            helper.make_node("Cast", ["y16"], ["y"], name="down/to_float32", to=TensorProto.FLOAT),
        ]
    g = helper.make_graph(
        nodes,
        "step",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        initializer=inits,
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model
