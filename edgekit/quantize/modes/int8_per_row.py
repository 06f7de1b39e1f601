"""`int8_per_row`: per-row dynamic INT8 (the rewrite in `quantize/per_row.py`): one symmetric activation scale per
row at run time, weights int8 per column, so a puzzle's answer does not depend on its batch-mates. onnxruntime CPU
only (MatMulIntegerToFloat / MatMulInteger). Its `quantize.per_row` section also sets `int8_hybrid`'s kernels."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from . import Mode, Section, register

if TYPE_CHECKING:
    import onnx

    from ..stage import Quantized, QuantizeJob


class PerRowSection(BaseModel):
    """Per-row dynamic INT8 (`int8_per_row`, quantize/per_row.py): which MatMuls get a run-time activation scale
    per row, and which onnxruntime kernels compute them. No range spans the batch, so answers do not depend on
    batch-mates. Defaults measured on the TRM and HRM demos (docs/quantization.md)."""

    model_config = ConfigDict(extra="forbid")

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


def handler(job: QuantizeJob) -> Quantized:
    """On the unsmoothed float32 step: smoothing moves the channel spread into the per-column weight scales, and
    measured no better here."""
    from ..nncf_backend import QuantizeError
    from ..per_row import per_row_int8
    from ..stage import Quantized

    kf, pr = job.section.keep_float, job.section.per_row
    try:
        q, report = per_row_int8(job.step(), kf.patterns, kf.types, pr.only, pr.kernel, pr.activation)
    except ValueError as e:
        raise QuantizeError(
            f"per-row INT8 rewrite of the step graph failed: {e}", "re-export at opset 13 or later"
        ) from None
    if not report.quantized:
        raise QuantizeError(
            "int8_per_row found no MatMul to quantize (quantize.per_row.only and quantize.keep_float leave none)",
            "widen quantize.per_row.only or remove it",
        )
    kernel = "MatMulIntegerToFloat" if pr.kernel == "contrib" else "MatMulInteger"
    return Quantized(
        q,
        {
            "method": "per-row dynamic INT8 (onnx-ir rewrite): one symmetric activation scale per row at run time "
            f"({pr.activation}), weights int8 per column, {kernel}; batch-invariant",
            "keep_float": {"patterns": kf.patterns, "types": kf.types},
            "only": pr.only,
            "kernel": pr.kernel,
            "activation": pr.activation,
            **report.info(),
        },
    )


def partial(model: onnx.ModelProto, items: list[dict[str, Any]], info: dict[str, Any], names: list[str]) -> Any:
    """Per-row INT8 on `names` only, with the variant's kernels (its manifest `quantization`)."""
    from ..per_row import per_row_int8

    only = [re.escape(n) for n in names]
    kernel, activation = info.get("kernel", "contrib"), info.get("activation", "quantize_linear")
    return per_row_int8(model, [], [], only, kernel, activation)[0]


register(
    Mode(
        "int8_per_row",
        form="per_row",
        summary="dynamic INT8 with one activation scale per row, so batch-invariant",
        handler=handler,
        partial=partial,
        section=Section(
            "per_row",
            PerRowSection,
            meaning="settings of the `int8_per_row` mode, and the per-row kernels of `int8_hybrid` (onnxruntime CPU "
            "only)",
            doc="Per-row dynamic INT8 (`int8_per_row`): one activation scale per row, batch-invariant.",
        ),
    )
)
