"""The engine manifest: what a folder of TensorRT engines was built from and for, and the refusal to run it anywhere
else. Engines are not portable across GPU architectures or TensorRT versions.

Standard library only: the on-device runtime reads it, and the build script writes the same layout with printf.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..artefact import sha256_file  # noqa: F401  (engine hashes; re-exported for the runtime backend)
from ..errors import IncompatibleError, InputError

ENGINE_MANIFEST = "engine_manifest.json"
ENGINE_SCHEMA_VERSION = 1


def engine_dir(artefact: str | Path, target: str) -> Path:
    """Where engines for `target` live inside an artefact: engines/<target>/."""
    return Path(artefact) / "engines" / target


def timing_cache_key(onnx_sha256: str, trt_version: str, gpu_name: str, compute_capability: str) -> str:
    """Content hash naming a timing cache: the same graph on the same GPU and TensorRT reuses its tactic timings.
    The build script computes the same key with `printf '%s|%s|%s|%s' ... | sha256sum | cut -c1-32`."""
    text = f"{onnx_sha256}|{trt_version}|{gpu_name}|{compute_capability}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def make_manifest(
    target: str,
    built_with: str,
    trt_version: str,
    gpu_name: str,
    compute_capability: str,
    strongly_typed: bool,
    recipe: dict,
    recipe_sha256: str,
    engines: dict[str, dict],
    l4t: str = "",
) -> dict:
    """`l4t`: first line of /etc/nv_tegra_release on a Jetson (the JetPack's L4T release), else empty."""
    return {
        "schema_version": ENGINE_SCHEMA_VERSION,
        "target": target,
        "built_with": built_with,
        "tensorrt_version": trt_version,
        "gpu": {"name": gpu_name, "compute_capability": compute_capability},
        "l4t": l4t,
        "strongly_typed": strongly_typed,
        "build_recipe_sha256": recipe_sha256,
        "build_recipe": recipe,
        "engines": engines,
    }


def l4t_release() -> str:
    """A Jetson's L4T release line (e.g. '# R36 (release), REVISION: 4.0, ...'), or '' elsewhere."""
    try:
        return Path("/etc/nv_tegra_release").read_text(errors="replace").splitlines()[0].strip()
    except (OSError, IndexError):
        return ""


def read_manifest(folder: str | Path) -> dict:
    path = Path(folder) / ENGINE_MANIFEST
    if not path.is_file():
        raise InputError(
            f"{folder} has no {ENGINE_MANIFEST}",
            "build engines first: `edgekit build` here, or `edgekit plan` and run the script on the device",
        )
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError(f"{path} is not valid JSON", "rebuild the engines") from None
    if data.get("schema_version") != ENGINE_SCHEMA_VERSION or not isinstance(data.get("engines"), dict):
        raise InputError(
            f"{path} is not an edgekit engine manifest (schema_version {ENGINE_SCHEMA_VERSION})",
            "rebuild the engines with this edgekit",
        )
    return data


def _release(v: str) -> tuple[int, ...]:
    """'10.3.0.26' -> (10, 3, 0): the build number does not change plan compatibility."""
    parts = [int(p) for p in str(v).split(".")[:3] if p.isdigit()]
    return tuple(parts + [0] * (3 - len(parts)))


def verify(
    manifest: dict, trt_version: str, gpu_name: str, compute_capability: str, folder: str | Path | None = None
) -> list[str]:
    """Refuse engines built for another TensorRT release or GPU architecture (IncompatibleError, exit 6); return
    warnings for softer mismatches (another GPU model of the same compute capability). With `folder`, also check
    each engine file's sha256."""
    built_trt, built_cc = manifest.get("tensorrt_version", "?"), manifest.get("gpu", {}).get("compute_capability", "?")
    if _release(built_trt) != _release(trt_version):
        raise IncompatibleError(
            f"engines in {folder or 'this folder'} were built with TensorRT {built_trt}, this machine "
            f"has {trt_version}",
            "rebuild them here (`edgekit build` or the plan script)",
        )
    if str(built_cc) != str(compute_capability):
        raise IncompatibleError(
            f"engines were built for compute capability {built_cc} "
            f"({manifest.get('gpu', {}).get('name', '?')}), this GPU is {compute_capability} "
            f"({gpu_name})",
            "rebuild them on this device",
        )
    warnings = []
    built_gpu = manifest.get("gpu", {}).get("name", "")
    if built_gpu and gpu_name and built_gpu.strip().lower() != gpu_name.strip().lower():
        warnings.append(
            f"engines were built on {built_gpu}, this is {gpu_name} (same compute capability): "
            "they load, but rebuild here for tuned kernels"
        )
    if folder is not None:
        for name, e in manifest["engines"].items():
            path = Path(folder) / e["file"]
            if not path.is_file():
                raise InputError(f"engine {path} ({name}) is missing", "rebuild the engines")
            if e.get("engine_sha256") and sha256_file(path) != e["engine_sha256"]:
                raise IncompatibleError(
                    f"engine {path.name} does not match its sha256 in {ENGINE_MANIFEST}",
                    "rebuild the engines; the file was changed or damaged",
                )
    return warnings
