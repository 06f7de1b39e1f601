"""Quantization settings as data (the recipe's `quantize` section), versioned with the recipe schema.

Each entry of `modes` becomes one artefact variant, built by the handler registered for it in
`edgekit.quantize.MODES`: int8 (NNCF PTQ of the step graph, sensitive parts kept float), mixed (int8 plus an
accuracy-aware search for the smallest set of layers to keep float), int8_weight_only (NNCF weight
compression), float16 (the float16 export of the model); for onnxruntime CPU targets only: int8_dynamic
(onnxruntime dynamic INT8: activation ranges per call, so per recursion step), int8_per_row (dynamic INT8 with
one activation scale per row, so batch-invariant; `quantize/per_row.py`), int8_hybrid (static INT8 with
per-row dynamic INT8 at the MatMuls `hybrid.per_row` names; `quantize/hybrid.py`), int8_nbits (MatMulNBits 8-bit
block-wise weights, accuracy_level 4) and int4_weight_only (the same with 4-bit weights).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

QuantMode = Literal[
    "int8",
    "mixed",
    "int8_weight_only",
    "int8_dynamic",
    "int8_per_row",
    "int8_hybrid",
    "int8_nbits",
    "int4_weight_only",
    "float16",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CalibrationSection(_Strict):
    n: int = Field(
        default=32, gt=0, le=100_000, description="calibration samples; every recursion step of each is used"
    )
    seed: int = Field(default=1000, ge=0, description="kept apart from the validation seed")
    batch: int = Field(default=8, gt=0, le=4096, description="samples per calibration item")


class KeepFloatSection(_Strict):
    """Layers NNCF must not quantize, by ONNX node-name regex or op type. Default: the halting head, whose
    error compounds over steps into different halting decisions."""

    patterns: list[str] = Field(default_factory=lambda: [".*q_head.*"])
    types: list[str] = Field(default_factory=list)


class SearchSection(_Strict):
    """Budget of the accuracy-aware (`mixed`) mode, scored by full rollouts with early halting."""

    max_exact_drop: float = Field(default=0.01, ge=0, le=1)
    min_halting_agreement: float = Field(default=0.95, ge=0, le=1)
    n: int = Field(default=128, gt=0, le=1_000_000, description="held-out samples scoring each candidate")
    seed: int = Field(default=2000, ge=0)


class SmoothSection(_Strict):
    """Recursion-aware smoothing of gated MLPs before INT8 (quantize/smooth.py): one factor per shared weight
    from every call on every step. alpha 0 = off-equivalent, 1 = all spread into the weights; null turns it off."""

    alpha: float | None = Field(default=0.75, ge=0, le=1)


class WeightsSection(_Strict):
    """Block-wise weight modes (int8_nbits, int4_weight_only): weights per block of `block_size` input channels."""

    block_size: int = Field(default=32, ge=16, le=4096, description="a power of two, >= 16")

    @field_validator("block_size")
    @classmethod
    def _power_of_two(cls, v: int) -> int:
        if v & (v - 1):
            raise ValueError(f"{v} is not a power of two (MatMulNBits takes 16, 32, 64, ...)")
        return v


class PerRowSection(_Strict):
    """Per-row dynamic INT8 (`int8_per_row`, quantize/per_row.py): which MatMuls get a run-time activation scale
    per row, and which onnxruntime kernels compute them. No range spans the batch, so answers do not depend on
    batch-mates. Defaults measured on the TRM and HRM demos (docs/quantization.md)."""

    only: list[str] | None = Field(
        default=None,
        description="node-name regular expressions of the MatMuls quantized per row (the others stay float); "
        "`null`: every MatMul with a constant weight that `keep_float` does not keep",
    )
    kernel: Literal["contrib", "standard"] = Field(
        default="contrib",
        description="`contrib`: onnxruntime's MatMulIntegerToFloat applies both scales in its output pass; "
        "`standard`: plain ONNX MatMulInteger, Cast and two Muls",
    )
    activation: Literal["quantize_linear", "elementwise"] = Field(
        default="quantize_linear",
        description="how rows are quantized: `quantize_linear` (ReduceMax/ReduceMin and one per-axis "
        "QuantizeLinear: fewest passes, fastest at large batches) or `elementwise` (Abs, ReduceMax, Mul, Add, "
        "Cast: fewest nodes, fastest at batch 1)",
    )


class HybridSection(_Strict):
    """`int8_hybrid` (quantize/hybrid.py): static INT8 (as `int8`) everywhere except the MatMuls named here, which
    get per-row dynamic INT8 (kernels from `quantize.per_row`). Default: the SwiGLU down projections, where
    per-tensor activation noise moves halting on the TRM and HRM demos (docs/quantization.md)."""

    per_row: list[str] = Field(
        default_factory=lambda: [".*down_proj.*"],
        min_length=1,
        description="node-name regular expressions of the MatMuls quantized per row; every other MatMul that "
        "`keep_float` does not keep gets static INT8",
    )

    @field_validator("per_row")
    @classmethod
    def _regexes(cls, v: list[str]) -> list[str]:
        for p in v:
            try:
                re.compile(p)
            except re.error as e:
                raise ValueError(f"{p!r} is not a regular expression ({e})") from None
        return v


class QuantizeSection(_Strict):
    modes: list[QuantMode] = Field(default_factory=list)
    calibration: CalibrationSection = CalibrationSection()
    keep_float: KeepFloatSection = KeepFloatSection()
    search: SearchSection = SearchSection()
    smooth: SmoothSection = SmoothSection()
    weights: WeightsSection = WeightsSection()
    per_row: PerRowSection = Field(
        default_factory=PerRowSection,
        description="settings of the `int8_per_row` mode, and the per-row kernels of `int8_hybrid` (onnxruntime CPU "
        "only)",
    )
    hybrid: HybridSection = Field(
        default_factory=HybridSection, description="settings of the `int8_hybrid` mode (onnxruntime CPU only)"
    )
