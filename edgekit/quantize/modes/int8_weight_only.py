"""`int8_weight_only`: NNCF weight compression, INT8_SYM (weights int8 per output channel behind
DequantizeLinear, compute float): a 4x smaller step graph in a form TensorRT builds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import Mode, others_than, register

if TYPE_CHECKING:
    import onnx

    from ..stage import Quantized, QuantizeJob


def handler(job: QuantizeJob) -> Quantized:
    from ..nncf_backend import compress_weights_int8
    from ..stage import Quantized

    kf = job.section.keep_float
    return Quantized(
        compress_weights_int8(job.step(), kf.patterns, kf.types),
        {"method": "nncf.compress_weights INT8_SYM (weights int8, compute float)"},
    )


def partial(model: onnx.ModelProto, items: list[dict[str, Any]], info: dict[str, Any], names: list[str]) -> Any:
    from ..nncf_backend import compress_weights_int8

    return compress_weights_int8(model, others_than(model, names), [])


register(
    Mode(
        "int8_weight_only",
        form="weight_only",
        summary="NNCF weight compression (weights int8, compute float)",
        handler=handler,
        partial=partial,
    )
)
