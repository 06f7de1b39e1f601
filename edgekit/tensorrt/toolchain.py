"""The toolchain probes live in the runtime (the device uses them too); the TensorRT stage imports them here."""

from __future__ import annotations

from ..runtime.toolchain import JETSON_CC, NO_TENSORRT, gpu_info, import_cudart, require_tensorrt, tensorrt_version

__all__ = ["JETSON_CC", "NO_TENSORRT", "gpu_info", "import_cudart", "require_tensorrt", "tensorrt_version"]
