"""A quantization mode added by one file, as a new mode would be added in edgekit/quantize/modes/: its settings
section, its form and its handler, registered by name. tests/quantize/test_quant_modes.py imports it before the recipe
schema and checks that recipes select and validate it, `run_quantize` dispatches to it and `edgekit debug` can
rebuild it; nothing else in edgekit names it.

The mode rounds every float32 weight of the step graph to `quantize.fixture_round.decimals` decimals: a float
graph, so its declared form is `none` (TensorRT builds it, and the Q/DQ lint requires it has no Q/DQ)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from edgekit.quantize.modes import Mode, Section, register


class RoundSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decimals: int = Field(default=2, ge=0, le=6, description="decimals every float32 weight is rounded to")


def _rounded(model: Any, decimals: int, names: set[str] | None = None) -> Any:
    import numpy as np
    import onnx
    from onnx import numpy_helper

    out = onnx.ModelProto.FromString(model.SerializeToString())
    weights = {i for n in out.graph.node if names is None or n.name in names for i in n.input}
    for t in out.graph.initializer:
        if t.data_type == onnx.TensorProto.FLOAT and t.name in weights:
            t.CopyFrom(numpy_helper.from_array(np.round(numpy_helper.to_array(t), decimals), t.name))
    return out


def handler(job: Any) -> Any:
    from edgekit.quantize.stage import Quantized

    decimals = job.section.fixture_round.decimals
    return Quantized(_rounded(job.step(), decimals), {"method": "weights rounded", "decimals": decimals})


def partial(model: Any, items: list[dict[str, Any]], info: dict[str, Any], names: list[str]) -> Any:
    return _rounded(model, int(info.get("decimals", 2)), set(names))


register(
    Mode(
        "fixture_round",
        form="none",
        summary="float32 weights rounded (a test fixture)",
        handler=handler,
        partial=partial,
        section=Section("fixture_round", RoundSection, meaning="settings of `fixture_round`", doc="Rounded weights."),
    )
)
