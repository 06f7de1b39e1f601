"""onnxruntime's own quantizers for CPU-only variants: dynamic INT8 (activation scales computed at run time, per
call, so every recursion step gets its own range) and MatMulNBits block-wise 8/4-bit weights. These graphs use
onnxruntime CPU kernels (DynamicQuantizeLinear + MatMulInteger, com.microsoft MatMulNBits) that TensorRT does not
parse; `edgekit check` says so for TensorRT targets."""

from __future__ import annotations

import logging
import re
import tempfile
from pathlib import Path

import onnx

from ..errors import first_line
from .nncf_backend import QuantizeError, _quiet, prepare


def _silence() -> None:
    """onnxruntime.quantization logs one INFO line per node through its own handlers (not stdout)."""
    for name in ("onnxruntime.quantization", "onnxruntime.quantization.matmul_nbits_quantizer"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _excluded(step: onnx.ModelProto, patterns: list[str], types: list[str]) -> list[str]:
    """Node names the recipe keeps float (`quantize.keep_float`), matched as NNCF's ignored scope would."""
    names = [n.name for n in step.graph.node if n.op_type in types or any(re.fullmatch(p, n.name) for p in patterns)]
    # quantize_dynamic first rewrites each Gemm into a MatMul named <gemm>_MatMul (+ Add), then quantizes that
    gemms = {n.name for n in step.graph.node if n.op_type == "Gemm"}
    return names + [f"{n}_MatMul" for n in names if n in gemms]


def quantize_dynamic_int8(step: onnx.ModelProto, patterns: list[str], types: list[str]) -> onnx.ModelProto:
    """Weights signed INT8 per output channel; activations quantized at run time by DynamicQuantizeLinear (one
    asymmetric uint8 range per call and tensor). onnxruntime fuses the pair into DynamicQuantizeMatMul."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    _silence()
    prepared = prepare(step)
    with tempfile.TemporaryDirectory(prefix="edgekit-dyn-") as d:
        src, dst = Path(d) / "in.onnx", Path(d) / "out.onnx"
        onnx.save(prepared, str(src))
        try:
            with _quiet():
                quantize_dynamic(
                    str(src),
                    str(dst),
                    weight_type=QuantType.QInt8,
                    per_channel=True,
                    op_types_to_quantize=["MatMul"],
                    nodes_to_exclude=_excluded(prepared, patterns, types),
                    extra_options={"MatMulConstBOnly": True},
                )
        except Exception as e:  # onnxruntime.quantization raises plain exceptions of several types
            raise QuantizeError(
                f"onnxruntime dynamic INT8 quantization of the step graph failed: {first_line(e, 200)}",
                "use quantize mode int8 instead, or report the model",
            ) from None
        return onnx.load(str(dst))


def quantize_matmul_nbits(
    step: onnx.ModelProto, bits: int, block_size: int, patterns: list[str], types: list[str]
) -> onnx.ModelProto:
    """Block-wise symmetric `bits`-bit weights in com.microsoft MatMulNBits, accuracy_level 4 (int8 compute
    with per-block dynamic activation quantization where the CPU has the kernels)."""
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    _silence()
    prepared = prepare(step)
    cfg = DefaultWeightOnlyQuantConfig(block_size=block_size, is_symmetric=True, accuracy_level=4, bits=bits)
    try:
        with _quiet():
            q = MatMulNBitsQuantizer(
                prepared,
                bits=bits,
                block_size=block_size,
                is_symmetric=True,
                accuracy_level=4,
                nodes_to_exclude=_excluded(prepared, patterns, types),
                algo_config=cfg,
            )
            q.process()
    except Exception as e:
        raise QuantizeError(
            f"onnxruntime MatMulNBits ({bits}-bit) quantization of the step graph failed: {first_line(e, 200)}",
            "use quantize mode int8_weight_only instead, or report the model",
        ) from None
    return q.model.model
