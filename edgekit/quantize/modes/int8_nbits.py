"""`int8_nbits`: onnxruntime's MatMulNBits with 8-bit block-wise symmetric weights (`quantize.weights.block_size`
input channels per block), accuracy_level 4 (int8 compute with per-block dynamic activation quantization where the
CPU has the kernels). onnxruntime CPU only. `int4_weight_only` is the same with 4-bit weights."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from . import Mode, Section, others_than, register

if TYPE_CHECKING:
    import onnx

    from ..stage import Quantized, QuantizeJob


class WeightsSection(BaseModel):
    """Block-wise weight modes (int8_nbits, int4_weight_only): weights per block of `block_size` input channels."""

    model_config = ConfigDict(extra="forbid")

    block_size: int = Field(default=32, ge=16, le=4096, description="a power of two, >= 16")

    @field_validator("block_size")
    @classmethod
    def _power_of_two(cls, v: int) -> int:
        if v & (v - 1):
            raise ValueError(f"{v} is not a power of two (MatMulNBits takes 16, 32, 64, ...)")
        return v


def nbits_handler(bits: int) -> Callable[[QuantizeJob], Quantized]:
    """The handler of the `bits`-bit MatMulNBits mode."""

    def handler(job: QuantizeJob) -> Quantized:
        from ..ort_backend import quantize_matmul_nbits
        from ..stage import Quantized

        kf, block = job.section.keep_float, job.section.weights.block_size
        return Quantized(
            quantize_matmul_nbits(job.step(), bits, block, kf.patterns, kf.types),
            {
                "method": f"onnxruntime MatMulNBitsQuantizer ({bits}-bit symmetric weights, blocks of {block} "
                "input channels, accuracy_level 4)",
                "bits": bits,
                "block_size": block,
                "keep_float": {"patterns": kf.patterns, "types": kf.types},
            },
        )

    return handler


def partial(model: onnx.ModelProto, items: list[dict[str, Any]], info: dict[str, Any], names: list[str]) -> Any:
    """The variant's bits and block size (its manifest `quantization`) on `names` only."""
    from ..ort_backend import quantize_matmul_nbits

    bits, block = int(info.get("bits", 8)), int(info.get("block_size", 32))
    return quantize_matmul_nbits(model, bits, block, others_than(model, names), [])


register(
    Mode(
        "int8_nbits",
        form="contrib_nbits",
        summary="MatMulNBits 8-bit block-wise weights, accuracy_level 4",
        handler=nbits_handler(8),
        partial=partial,
        section=Section(
            "weights",
            WeightsSection,
            meaning="block-wise weights",
            doc="Block-wise weight modes (`int8_nbits`, `int4_weight_only`).",
        ),
    )
)
