"""`int4_weight_only`: `int8_nbits` with 4-bit weights (the same `quantize.weights` section). onnxruntime CPU
only."""

from __future__ import annotations

from . import Mode, register
from .int8_nbits import nbits_handler, partial

register(
    Mode(
        "int4_weight_only",
        form="contrib_nbits",
        summary="MatMulNBits 4-bit block-wise weights, accuracy_level 4",
        handler=nbits_handler(4),
        partial=partial,
    )
)
