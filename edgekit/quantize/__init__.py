"""Quantize stage: compressed step graphs (and their Loop forms) as extra artefact variants.

Modes are one file each in `modes/` (registered in `MODES`: their settings, the form of their graphs, their
handler); configs are data (`config.QuantizeSection`, built from that registry). Every handler works on the
standalone float32 step graph and re-wraps the result into the Loop form, so quantized weights live in the Loop
body itself (onnxruntime's integer kernels need that).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import QuantizeSection
    from .from_recipe import quantize_fingerprint, quantize_from_recipe
    from .modes import MODES, Mode, cpu_only_modes
    from .stage import Quantized, QuantizeError, QuantizeJob, run_quantize

_LAZY = {
    "MODES": "modes",
    "Mode": "modes",
    "cpu_only_modes": "modes",
    "QuantizeSection": "config",
    "QuantizeError": "stage",
    "QuantizeJob": "stage",
    "Quantized": "stage",
    "run_quantize": "stage",
    "quantize_from_recipe": "from_recipe",
    "quantize_fingerprint": "from_recipe",
}


def __getattr__(name: str) -> Any:
    """The API imported on first use: `import edgekit.schema` stays free of onnx and torch, and a mode file (a test
    fixture, say) can register before the schema reads the registry."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "MODES",
    "Mode",
    "cpu_only_modes",
    "QuantizeJob",
    "Quantized",
    "QuantizeSection",
    "run_quantize",
    "quantize_from_recipe",
    "quantize_fingerprint",
    "QuantizeError",
]
