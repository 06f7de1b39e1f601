"""`int8`: static INT8 post-training quantization of the step graph (NNCF, symmetric signed Q/DQ: the form TensorRT
builds), on the smoothed step (`quantize.smooth`), with `quantize.keep_float` left float."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import Mode, others_than, register

if TYPE_CHECKING:
    import onnx

    from ..stage import Quantized, QuantizeJob


def handler(job: QuantizeJob) -> Quantized:
    from ..nncf_backend import quantize_int8
    from ..stage import Quantized

    kf = job.section.keep_float
    step, smooth = job.int8_input()
    q = quantize_int8(step, job.items(), kf.patterns, kf.types)
    return Quantized(
        q,
        {
            "method": "nncf.quantize (PTQ, PERFORMANCE preset, transformer op set, NNCF SmoothQuant off)",
            "keep_float": {"patterns": kf.patterns, "types": kf.types},
            **smooth,
        },
    )


def partial(model: onnx.ModelProto, items: list[dict[str, Any]], info: dict[str, Any], names: list[str]) -> Any:
    """Static INT8 on `names` only, calibrated on `items`."""
    from ..nncf_backend import quantize_int8

    return quantize_int8(model, items, others_than(model, names), [])


register(
    Mode(
        "int8",
        form="qdq_int8",
        summary="NNCF static INT8 PTQ of the step graph, sensitive parts kept float",
        handler=handler,
        partial=partial,
    )
)
