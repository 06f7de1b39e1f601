"""Runtime backends by name: where an artefact's graphs run. One host loop (runtime/base.py) drives every backend;
a backend implements the graph calls only. `open_runner` picks one from `BACKENDS`: the one named, else TensorRT
engines when an engine folder is given, else onnxruntime.

Each backend states the options it takes; an option given (not None / False) that the chosen backend does not use
is a one-line error naming the flag, never silently dropped (e.g. `--provider cuda` with `--backend openvino`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import RuntimeInputError


@dataclass(frozen=True)
class Backend:
    """How to open a runner on one backend, and which options it takes."""

    open: Callable[[str | Path, str | None, str | Path | None, dict[str, Any]], Any]
    takes: frozenset[str]
    engines: bool = False  # runs an engine folder (--engines)


def _onnxruntime(artefact: str | Path, variant: str | None, engines: Any, options: dict[str, Any]) -> Any:
    from .runner import Runner

    return Runner(artefact, variant=variant, **options)


def _tensorrt(artefact: str | Path, variant: str | None, engines: Any, options: dict[str, Any]) -> Any:
    from .tensorrt_backend import TensorRTRunner

    if engines is None:
        raise RuntimeInputError("the tensorrt backend runs built engines: pass --engines DIR (see `edgekit build`)")
    return TensorRTRunner(artefact, engines=engines, variant=variant, **options)


def _openvino(artefact: str | Path, variant: str | None, engines: Any, options: dict[str, Any]) -> Any:
    from .openvino_backend import OpenVINORunner

    return OpenVINORunner(artefact, variant=variant, **options)


BACKENDS: dict[str, Backend] = {
    "onnxruntime": Backend(
        _onnxruntime,
        frozenset({"threads", "providers", "device_id", "fp16", "cache_dir", "allow_fallback", "tf32", "chunk_size"}),
    ),
    "tensorrt": Backend(_tensorrt, frozenset({"chunk_size"}), engines=True),
    "openvino": Backend(_openvino, frozenset({"device", "precision", "threads", "cache_dir", "chunk_size"})),
}
# what the device commands call each option, for messages
FLAGS = {
    "threads": "--threads",
    "providers": "--provider",
    "device_id": "--device-id",
    "fp16": "--trt-fp16",
    "cache_dir": "--cache-dir",
    "allow_fallback": "--allow-fallback",
    "device": "--device",
    "precision": "--ov-precision",
    "tf32": "--tf32/--no-tf32",
}
KEEP_FALSE = frozenset({"tf32"})


def open_runner(
    artefact: str | Path,
    variant: str | None = None,
    engines: str | Path | None = None,
    backend: str | None = None,
    **options: Any,
) -> Any:
    """A runner for `artefact` on `backend` (default: tensorrt when `engines` is given, else onnxruntime), with
    the options that backend takes (onnxruntime: threads, providers, device_id, fp16, cache_dir, allow_fallback;
    openvino: device, precision, threads, cache_dir). Options left at None / False are not passed."""
    name = backend or ("tensorrt" if engines is not None else "onnxruntime")
    if name not in BACKENDS:
        raise RuntimeInputError(f"unknown backend {name!r}; use one of {', '.join(BACKENDS)}")
    chosen = BACKENDS[name]
    if engines is not None and not chosen.engines:
        raise RuntimeInputError(f"--engines runs TensorRT engines; the {name} backend reads the artefact's graphs")
    # False is "not given" for switches, but a value for tf32 (off): kept
    given = {k: v for k, v in options.items() if v is not None and (v is not False or k in KEEP_FALSE)}
    foreign = sorted(k for k in given if k not in chosen.takes)
    if foreign:
        flags = ", ".join(FLAGS.get(k, k) for k in foreign)
        owners = [n for n, b in BACKENDS.items() if not b.engines and all(k in b.takes for k in foreign)]
        hint = f": add --backend {owners[0]}, or drop it" if owners else ""
        raise RuntimeInputError(f"{flags} {'is' if len(foreign) == 1 else 'are'} not used by the {name} backend{hint}")
    return chosen.open(artefact, variant, engines, given)
