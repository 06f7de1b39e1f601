"""Runtime backends by name: where an artefact's graphs run. One host loop (runtime/base.py) drives every backend;
a backend implements the graph calls only. `open_runner` picks one: TensorRT engines when an engine folder is given,
onnxruntime otherwise."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def open_runner(
    artefact: str | Path,
    variant: str | None = None,
    engines: str | Path | None = None,
    **onnxruntime_options: Any,
) -> Any:
    """A runner for `artefact`: the TensorRT engines in `engines`, else onnxruntime with `onnxruntime_options`
    (threads, providers, device_id, fp16, cache_dir, allow_fallback)."""
    if engines is not None:
        from .tensorrt_backend import TensorRTRunner

        return TensorRTRunner(artefact, engines=engines, variant=variant)
    from .runner import Runner

    return Runner(artefact, variant=variant, **onnxruntime_options)
