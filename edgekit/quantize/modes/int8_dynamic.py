"""`int8_dynamic`: onnxruntime's dynamic INT8 (weights int8 per channel, activation ranges computed per call, so per
recursion step: DynamicQuantizeLinear + MatMulInteger). onnxruntime CPU only."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import Mode, others_than, register

if TYPE_CHECKING:
    import onnx

    from ..stage import Quantized, QuantizeJob


def handler(job: QuantizeJob) -> Quantized:
    from ..ort_backend import quantize_dynamic_int8
    from ..stage import Quantized

    kf = job.section.keep_float
    step, smooth = job.int8_input()  # unsmoothed, its step error is 2.5x that of static INT8 (measured: 23 vs 9 %)
    return Quantized(
        quantize_dynamic_int8(step, kf.patterns, kf.types),
        {
            "method": "onnxruntime.quantization.quantize_dynamic (weights int8 per channel, activation ranges "
            "computed per call: DynamicQuantizeLinear + MatMulInteger)",
            "keep_float": {"patterns": kf.patterns, "types": kf.types},
            **smooth,
        },
    )


def partial(model: onnx.ModelProto, items: list[dict[str, Any]], info: dict[str, Any], names: list[str]) -> Any:
    from ..ort_backend import quantize_dynamic_int8

    return quantize_dynamic_int8(model, others_than(model, names), [])


register(
    Mode(
        "int8_dynamic",
        form="dynamic",
        summary="onnxruntime dynamic INT8: activation ranges per call, so per recursion step",
        handler=handler,
        partial=partial,
    )
)
