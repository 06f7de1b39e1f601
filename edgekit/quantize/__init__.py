"""Quantize stage: compressed step graphs (and their Loop forms) as extra artefact variants.

Configs are data (`config.QuantizeSection`), handlers are registered per mode in `MODES`. Every handler works
on the standalone float32 step graph and re-wraps the result into the Loop form, so quantized weights live in
the Loop body itself (onnxruntime's integer kernels need that).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import QuantizeSection

if TYPE_CHECKING:
    from .stage import MODES, Mode, Quantized, QuantizeError, QuantizeJob, cpu_only_modes, run_quantize

_STAGE = {"MODES", "Mode", "QuantizeError", "QuantizeJob", "Quantized", "cpu_only_modes", "run_quantize"}


def __getattr__(name: str) -> Any:
    """The stage's API from `stage.py`, imported on first use: `import edgekit.schema` stays free of onnx and
    torch."""
    if name in _STAGE:
        from . import stage

        return getattr(stage, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "MODES",
    "Mode",
    "cpu_only_modes",
    "QuantizeJob",
    "Quantized",
    "QuantizeSection",
    "run_quantize",
    "QuantizeError",
]
