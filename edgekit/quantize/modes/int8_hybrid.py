"""`int8_hybrid`: static per-tensor INT8 (the `int8` mode's NNCF Q/DQ) everywhere, except the MatMuls
`quantize.hybrid.per_row` names, which get per-row dynamic INT8 (`quantize/per_row.py`).

Why: on the recursive demos the only layers whose per-tensor activation noise moves the halting decision are the
SwiGLU down projections; per-row scales remove that noise, but computing them costs a reduction and a quantizer
pass per MatMul input, so `int8_per_row` on every MatMul is slower than static INT8. Here only the down
projections pay that cost; every other MatMul keeps fixed calibrated scales. Both parts are batch-invariant
(fixed scales, or one scale per row), so a puzzle's answer does not depend on its batch-mates and the Loop form
answers like the host loop. onnxruntime CPU only (MatMulIntegerToFloat / MatMulInteger).

The graph is `int8`'s (smoothed as `quantize.smooth` says, calibrated on the same items, `keep_float` kept float)
with the per-row MatMuls also kept float by NNCF, then rewritten per row; `quantize.per_row.kernel` and
`.activation` choose the per-row kernels.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from . import Mode, Section, others_than, regexes, register
from .int8 import partial as static_partial

if TYPE_CHECKING:
    import onnx

    from ..stage import Quantized, QuantizeJob


class HybridSection(BaseModel):
    """`int8_hybrid` (quantize/modes/int8_hybrid.py): static INT8 (as `int8`) everywhere except the MatMuls named
    here, which get per-row dynamic INT8 (kernels from `quantize.per_row`). Default: the SwiGLU down projections,
    where per-tensor activation noise moves halting on the TRM and HRM demos (docs/quantization.md)."""

    model_config = ConfigDict(extra="forbid")

    per_row: list[str] = Field(
        default_factory=lambda: [".*down_proj.*"],
        min_length=1,
        description="node-name regular expressions of the MatMuls quantized per row; every other MatMul that "
        "`keep_float` does not keep gets static INT8",
    )

    @field_validator("per_row")
    @classmethod
    def _regexes(cls, v: list[str]) -> list[str]:
        return regexes(v)


def hybrid_int8(
    step: onnx.ModelProto,
    items: list[dict],
    keep_patterns: list[str],
    keep_types: list[str],
    per_row: list[str],
    kernel: str = "contrib",
    activation: str = "quantize_linear",
) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """Static INT8 on every MatMul but those matching `per_row` (and those `keep_*` keeps float), per-row dynamic
    INT8 on those. Returns the graph and what went where."""
    from ..lint import static_matmuls
    from ..nncf_backend import QuantizeError, quantize_int8
    from ..per_row import per_row_int8

    static = quantize_int8(step, items, [*keep_patterns, *per_row], keep_types)
    q, report = per_row_int8(static, keep_patterns, keep_types, per_row, kernel, activation)
    if not report.quantized:
        raise QuantizeError(
            f"int8_hybrid found no MatMul matching quantize.hybrid.per_row {per_row} (with a constant weight, "
            "not kept float by quantize.keep_float)",
            "set quantize.hybrid.per_row to node-name patterns of the step graph's MatMuls",
        )
    static_mm = static_matmuls(q)
    kept = sorted(k for k in report.skipped if k not in static_mm)
    return q, {
        "static_matmuls": len(static_mm),
        "per_row_matmuls": len(report.quantized),
        "per_row_nodes": report.quantized,
        "activation_quantizers": report.activation_quantizers,
        "kept_float": kept,
    }


def handler(job: QuantizeJob) -> Quantized:
    from ..nncf_backend import QuantizeError
    from ..stage import Quantized

    kf, pr, patterns = job.section.keep_float, job.section.per_row, job.section.hybrid.per_row
    step, smooth = job.int8_input()
    try:
        q, info = hybrid_int8(step, job.items(), kf.patterns, kf.types, patterns, pr.kernel, pr.activation)
    except ValueError as e:
        raise QuantizeError(
            f"per-row INT8 rewrite of the step graph failed: {e}", "re-export at opset 13 or later"
        ) from None
    kernel = "MatMulIntegerToFloat" if pr.kernel == "contrib" else "MatMulInteger"
    return Quantized(
        q,
        {
            "method": "nncf.quantize static INT8 Q/DQ (as int8) except the MatMuls quantize.hybrid.per_row names: "
            f"per-row dynamic INT8 ({pr.activation}, {kernel}); batch-invariant",
            "keep_float": {"patterns": kf.patterns, "types": kf.types},
            "per_row": patterns,
            "kernel": pr.kernel,
            "activation": pr.activation,
            **info,
            **smooth,
        },
    )


def partial(model: onnx.ModelProto, items: list[dict[str, Any]], info: dict[str, Any], names: list[str]) -> Any:
    """`names` the hybrid's way: per row where the variant's `per_row` patterns match, static INT8 elsewhere."""
    rows = [str(p) for p in info.get("per_row") or [".*down_proj.*"]]
    per_row = [re.escape(n) for n in names if any(re.fullmatch(p, n) for p in rows)]
    if not per_row:
        return static_partial(model, items, info, names)
    kernel, activation = info.get("kernel", "contrib"), info.get("activation", "quantize_linear")
    return hybrid_int8(model, items, others_than(model, names), [], per_row, kernel, activation)[0]


register(
    Mode(
        "int8_hybrid",
        form="qdq_int8_per_row",
        summary="static INT8 with per-row dynamic INT8 at the MatMuls `quantize.hybrid.per_row` names",
        handler=handler,
        partial=partial,
        section=Section(
            "hybrid",
            HybridSection,
            meaning="settings of the `int8_hybrid` mode (onnxruntime CPU only)",
            doc="`int8_hybrid`: static INT8 everywhere except the MatMuls named here, which are per-row dynamic "
            "INT8; batch-invariant.",
        ),
    )
)
