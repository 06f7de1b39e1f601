"""onnxruntime execution providers by short name, with the options a device user sets.

`resolve(["cuda"], device_id=0)` -> (onnxruntime provider names, their options), always ending with the CPU
provider as onnxruntime's fallback for nodes a GPU provider does not take. A provider the installed onnxruntime
lacks is a one-line `ProviderError` naming the wheel to install (onnxruntime-gpu on a desktop; on JetPack 6 the
Jetson wheel built for its CUDA and Python). The TensorRT provider's engine cache goes to a user cache folder keyed
by the artefact's hash, never into the artefact (artefacts stay read-only and hash-verifiable).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnxruntime as ort


class ProviderError(ValueError):
    """An execution provider that is unknown or not present in the installed onnxruntime (one-line message)."""


@dataclass(frozen=True)
class ProviderSettings:
    device_id: int = 0
    fp16: bool = False  # TensorRT EP: allow fp16 kernels
    cache_dir: Path | None = None  # TensorRT EP: engine / timing cache root (default ~/.cache/edgekit/trt-ep)
    artefact_key: str = "default"  # which artefact the cache belongs to (sha of its manifest)


def _cpu(s: ProviderSettings) -> dict[str, Any]:
    return {}


def _cuda(s: ProviderSettings) -> dict[str, Any]:
    return {"device_id": s.device_id}


def user_cache(settings: ProviderSettings) -> Path:
    root = settings.cache_dir or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgekit" / "trt-ep"
    return Path(root).expanduser() / settings.artefact_key


def _tensorrt(s: ProviderSettings) -> dict[str, Any]:
    cache = user_cache(s)
    return {
        "device_id": s.device_id,
        "trt_fp16_enable": s.fp16,
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(cache),
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": str(cache),
    }


# short name -> (onnxruntime provider, options builder, where to get it)
PROVIDERS: dict[str, tuple[str, Callable[[ProviderSettings], dict[str, Any]], str]] = {
    "cpu": ("CPUExecutionProvider", _cpu, "onnxruntime"),
    "cuda": (
        "CUDAExecutionProvider",
        _cuda,
        "onnxruntime-gpu (desktop: `pip install onnxruntime-gpu`; JetPack 6: "
        "the Jetson onnxruntime-gpu wheel for its CUDA and Python)",
    ),
    "tensorrt": (
        "TensorrtExecutionProvider",
        _tensorrt,
        "onnxruntime-gpu built with TensorRT (desktop: "
        "`pip install onnxruntime-gpu` plus TensorRT libraries; JetPack 6: the Jetson onnxruntime-gpu wheel)",
    ),
}
_BY_ORT_NAME = {ort_name: short for short, (ort_name, _, _) in PROVIDERS.items()}


def available() -> list[str]:
    """Short names of the providers the installed onnxruntime offers."""
    have = set(ort.get_available_providers())
    return [short for short, (name, _, _) in PROVIDERS.items() if name in have]


def artefact_key(manifest_bytes: bytes) -> str:
    return hashlib.sha256(manifest_bytes).hexdigest()[:16]


def resolve(
    names: list[str] | None, settings: ProviderSettings | None = None
) -> tuple[list[str], list[dict[str, Any]]]:
    """Provider names and options for onnxruntime sessions; CPU is always last as the fallback."""
    settings = settings or ProviderSettings()
    shorts = [_BY_ORT_NAME.get(n, n) for n in (names or ["cpu"])]
    have = set(ort.get_available_providers())
    out: list[str] = []
    opts: list[dict[str, Any]] = []
    for short in shorts:
        if short not in PROVIDERS:
            raise ProviderError(f"unknown execution provider {short!r}; use one of {', '.join(PROVIDERS)}")
        ort_name, build, wheel = PROVIDERS[short]
        if ort_name not in have:
            raise ProviderError(
                f"execution provider {short!r} ({ort_name}) is not in this onnxruntime "
                f"{ort.__version__} (it has {', '.join(available())}); install {wheel}"
            )
        if ort_name not in out:
            out.append(ort_name)
            opts.append(build(settings))
    if "CPUExecutionProvider" not in out:
        out.append("CPUExecutionProvider")
        opts.append({})
    return out, opts
