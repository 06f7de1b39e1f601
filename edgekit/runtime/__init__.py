"""On-device runtime: numpy + onnxruntime only (no torch), so it runs where the model is deployed.

The API below is imported on first use, so that a module of the runtime that needs the standard library only
(`doctor`, `toolchain`, `versions`) loads without onnxruntime: `edgekit doctor` explains a broken onnxruntime
instead of failing on it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .backends import open_runner
    from .errors import ArtefactError, RuntimeInputError
    from .runner import MODES, Runner, RunResult, Solution

_API = {
    "open_runner": "backends",
    "ArtefactError": "errors",
    "RuntimeInputError": "errors",
    "MODES": "runner",
    "Runner": "runner",
    "RunResult": "runner",
    "Solution": "runner",
}


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(import_module(f".{_API[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["MODES", "ArtefactError", "Runner", "RunResult", "RuntimeInputError", "Solution", "open_runner"]
