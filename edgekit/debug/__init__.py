"""`edgekit debug`: which quantized layer of a variant moves the halting decision (Polygraphy's layer-wise
comparison, for recursion). See `layers.debug_variant`."""

from __future__ import annotations

from .layers import DebugReport, LayerRow, debug_variant, write_plot

__all__ = ["DebugReport", "LayerRow", "debug_variant", "write_plot"]
