"""What is present on this machine: TensorRT (imported lazily), its version, and the GPU's name and compute
capability. Everything else in edgekit runs without TensorRT; only these functions say it is missing.

Standard library at import time: the device runtime probes with it, and the TensorRT stage builds with it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from types import ModuleType
from typing import cast

from ..errors import ToolchainUnavailable

# Jetson modules by the name in their device tree (or GPU name) -> CUDA compute capability: the only table, also
# emitted into the on-device build script.
JETSON_CC = {"Orin": "8.7", "Xavier": "7.2"}

# TensorRT cannot be installed from PyPI on a machine without NVIDIA's index (the PyPI packages are stubs that
# download the real wheels).
NO_TENSORRT = "TensorRT is not installed here (it cannot be installed on this machine: PyPI ships only stubs)"


def require_tensorrt(target: str | None = None, artefact: str | None = None) -> ModuleType:
    """`import tensorrt`, or ToolchainUnavailable (exit 5) saying how to build on the device instead."""
    try:
        import tensorrt as trt  # noqa: PLC0415 - lazy on purpose
    except ImportError as e:  # also raised by the PyPI bindings wheel when libnvinfer is absent
        detail = str(e).splitlines()[0][:100] if str(e) else ""
        where = "" if getattr(e, "name", None) == "tensorrt" else f" ({detail})"  # e.g. libnvinfer.so.10 not found
        plan = f"`edgekit plan --target {target or 'TARGET'} {artefact or 'ARTEFACT'}`"
        raise ToolchainUnavailable(
            f"TensorRT is not installed here{where}",
            f"run {plan} and execute the script on the device, or install TensorRT "
            "(JetPack's python3-libnvinfer, or pip install tensorrt from NVIDIA's index)",
        ) from None
    return cast(ModuleType, trt)


def tensorrt_version(trt: ModuleType) -> str:
    """'10.3.0' from trt.__version__ ('10.3.0.26'): major.minor.patch decide engine compatibility."""
    from .versions import parse_version, version_str

    return version_str(parse_version(trt.__version__))


def import_cudart() -> ModuleType:
    """cuda-python's runtime API (new and old module layouts), or ToolchainUnavailable."""
    try:
        from cuda.bindings import runtime as cudart  # noqa: PLC0415 - cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # noqa: PLC0415 - older cuda-python
        except ImportError:
            raise ToolchainUnavailable(
                "cuda-python is not installed (needed for TensorRT device buffers)",
                "pip install cuda-python matching the device's CUDA (JetPack 6: 12.6, JetPack 7.2: 13.2)",
            ) from None
    return cast(ModuleType, cudart)


def gpu_info(device: int = 0) -> tuple[str, str]:
    """(GPU name, compute capability 'major.minor') by cuda-python, nvidia-smi, or a Jetson's device-tree model."""
    try:
        cudart = import_cudart()
        err, props = cudart.cudaGetDeviceProperties(device)
        if int(err) == 0:
            name = (
                props.name.decode(errors="replace").rstrip("\0") if isinstance(props.name, bytes) else str(props.name)
            )
            return name, f"{props.major}.{props.minor}"
    except ToolchainUnavailable:
        pass
    if shutil.which("nvidia-smi"):
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,compute_cap", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        lines = [ln for ln in out.stdout.splitlines() if ln.strip()]
        if out.returncode == 0 and len(lines) > device:
            name, cc = (p.strip() for p in lines[device].rsplit(",", 1))
            return name, cc
    model = Path("/proc/device-tree/model")
    if model.is_file():
        text = model.read_bytes().decode(errors="replace").rstrip("\0")
        for soc, cc in JETSON_CC.items():
            if soc in text:
                return text, cc
    raise ToolchainUnavailable(
        "cannot read this machine's GPU (no CUDA device visible)",
        "run on the target device with the NVIDIA driver, or install cuda-python",
    )
