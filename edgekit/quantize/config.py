"""Quantization settings as data (the recipe's `quantize` section), versioned with the recipe schema.

Each entry of `modes` becomes one artefact variant, built by the mode registered under that name
(`edgekit/quantize/modes/`, one file per mode). `QuantMode` and the mode-specific sections (`search`, `weights`,
`per_row`, `hybrid`, ...) come from that registry; the sections every mode shares (`calibration`, `keep_float`,
`smooth`) are here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from . import modes as _registry

if TYPE_CHECKING:
    QuantMode = str
else:
    QuantMode = Literal[tuple(_registry.freeze())]


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


class SmoothSection(_Strict):
    """Recursion-aware smoothing of gated MLPs before INT8 (quantize/smooth.py): one factor per shared weight
    from every call on every step. alpha 0 = off-equivalent, 1 = all spread into the weights; null turns it off."""

    alpha: float | None = Field(default=0.75, ge=0, le=1)


class _QuantizeCommon(_Strict):
    modes: list[QuantMode] = Field(default_factory=list)
    calibration: CalibrationSection = CalibrationSection()
    keep_float: KeepFloatSection = KeepFloatSection()
    smooth: SmoothSection = SmoothSection()


def _quantize_section() -> type[_QuantizeCommon]:
    """The `quantize` section: the shared keys, then each registered mode's own section (registry order)."""
    fields: dict[str, Any] = {
        s.key: (s.model, Field(default_factory=s.model, description=s.meaning)) for s in _registry.sections()
    }
    return create_model("QuantizeSection", __base__=_QuantizeCommon, __module__=__name__, **fields)


if TYPE_CHECKING:

    class QuantizeSection(_QuantizeCommon):
        def __getattr__(self, name: str) -> Any: ...  # the modes' own sections

else:
    QuantizeSection = _quantize_section()
