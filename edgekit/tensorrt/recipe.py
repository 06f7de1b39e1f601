"""The build recipe: what an engine build does for one artefact on one target, shared by `edgekit plan` (trtexec
on the device) and `edgekit build` (TensorRT Python API), so both build the same engines and hash the same recipe.

Precision: TensorRT 10.x is weakly typed, so precision comes from builder flags (FP16, INT8 for Q/DQ graphs, ...);
TensorRT 11 removed those flags and is strongly typed, so precision comes from the graph itself
(shared/research/toolchain.md §0.4). INT8 is explicit only: a graph without Q/DQ is never given the INT8 flag, as
implicit calibration does not work with loops and would calibrate on nothing here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import InputError, RecipeError
from ..schema import Target, load_target
from . import versions
from .graphs import describe, load_manifest, onnx_files, profile_shapes

TRTEXEC_FLAGS = {"fp16": "--fp16", "bf16": "--bf16", "int8": "--int8", "fp8": "--fp8"}


@dataclass
class GraphBuild:
    name: str  # manifest key, e.g. "step"
    onnx: str  # path relative to the artefact folder
    onnx_sha256: str
    engine: str  # engine file name inside the engine folder
    quantization: list[str]  # Q/DQ types in the graph, e.g. ["int8"]
    shapes: dict[str, dict[str, list[int]]]  # input -> {"min": [...], "opt": [...], "max": [...]}, dynamic inputs only
    weak_precisions: list[str]  # TensorRT 10.x builder flags, e.g. ["fp16"] or ["int8", "fp16"]
    tf32: bool = True  # False for precision fp32: keep matmuls in true fp32, like the validated ONNX

    def trtexec_weak_flags(self) -> list[str]:
        return [TRTEXEC_FLAGS[p] for p in self.weak_precisions] + ([] if self.tf32 else ["--noTF32"])

    def trtexec_shape_flags(self) -> list[str]:
        if not self.shapes:
            return []
        spec = lambda k: ",".join(f"{n}:{'x'.join(map(str, s[k]))}" for n, s in self.shapes.items())  # noqa: E731
        return [f"--minShapes={spec('min')}", f"--optShapes={spec('opt')}", f"--maxShapes={spec('max')}"]


@dataclass
class BuildRecipe:
    target: str
    tensorrt: str | None  # the target's TensorRT range
    compute_capability: str | None
    precision: str  # what the user asked for (or the default)
    strongly_typed: bool  # forced on for TensorRT 10.x; TensorRT 11 is always strongly typed
    workspace_mb: int
    batch: dict[str, int]  # {"min", "opt", "max"}
    artefact_recipe_sha256: str | None
    graphs: list[GraphBuild] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def sha256(self) -> str:
        """Hash of the recipe (not of notes): two builds with the same hash were asked for the same engines."""
        d = self.to_dict()
        d.pop("notes")
        return hashlib.sha256(json.dumps(d, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def tensorrt_target(target: Target | str) -> Target:
    """The target, if engines are built for it; a usage error (exit 2) for onnxruntime targets."""
    target = load_target(target) if isinstance(target, str) else target
    if target.backend != "tensorrt":
        raise RecipeError(
            f"target {target.name!r} runs the ONNX graphs with {target.backend}; there is no engine to build",
            "pick a TensorRT target (`edgekit targets`)",
        )
    return target


def default_precision(target: Target, quantized: set[str]) -> str:
    """INT8/FP8 when the graphs carry that Q/DQ, else FP16 where the target has it, else FP32."""
    for q in ("int8", "fp8"):
        if q in quantized and q in target.precisions:
            return q
    return "fp16" if "fp16" in target.precisions else "fp32"


def make_recipe(
    folder: str | Path,
    target: Target | str,
    precision: str | None = None,
    strongly_typed: bool = False,
    graphs: list[str] | None = None,
) -> BuildRecipe:
    """Read the artefact's graphs (all, or the manifest names in `graphs`) and decide shapes, precision flags and
    workspace for `target`."""
    target = tensorrt_target(target)
    folder = Path(folder)
    manifest = load_manifest(folder)
    files = onnx_files(folder, manifest)
    unknown = [g for g in graphs or [] if g not in files]
    if unknown:
        raise RecipeError(f"the artefact has no graph {unknown[0]!r}", f"choose from {', '.join(files)}")
    infos = [describe(p, name) for name, p in files.items() if not graphs or name in graphs]
    for info in infos:
        want = manifest.get("sha256", {}).get(info.name)
        if want and want != info.sha256:
            raise InputError(
                f"{info.path.name} does not match the sha256 in manifest.json",
                "re-run `edgekit export`; the artefact was changed after it was written",
            )
    quantized = set().union(*(i.quantization for i in infos))
    precision = precision or default_precision(target, quantized)
    if precision not in target.precisions:
        raise RecipeError(
            f"precision {precision!r} is not offered by target {target.name!r}",
            f"choose one of {', '.join(target.precisions)}",
        )
    if precision in ("int8", "fp8") and precision not in quantized:
        raise RecipeError(
            f"precision {precision} needs Q/DQ nodes in the graphs, and this artefact has none",
            "quantize the artefact first (explicit quantization), or use --precision fp16",
        )
    prof = target.profile()
    batch = (prof.min, prof.opt, prof.max)
    notes: list[str] = []
    builds = []
    for info in infos:
        weak: list[str] = []
        q = info.quantization
        if q & {"int8", "uint8"}:
            weak.append("int8")
        if "fp8" in q:
            weak.append("fp8")
        if precision in ("fp16", "int8", "fp8") and "fp16" in target.precisions:
            weak.append("fp16")
        elif precision == "bf16":
            weak.append("bf16")
        shapes = {n: {"min": s[0], "opt": s[1], "max": s[2]} for n, s in profile_shapes(info, batch).items()}
        builds.append(
            GraphBuild(
                info.name,
                info.path.relative_to(folder).as_posix(),
                info.sha256,
                f"{info.name.replace('/', '-')}.engine",
                sorted(q),
                shapes,
                weak,
                tf32=precision != "fp32",
            )
        )
    if precision in ("fp16", "bf16") and (strongly_typed or versions.admits_major(target.tensorrt, 11)):
        notes.append(
            f"strongly typed builds (TensorRT 11, or --strongly-typed) keep each graph's own types: a float32 "
            f"graph gives a float32 engine; convert the ONNX to {precision} first to get {precision} kernels"
        )
    if precision != "fp32":
        notes.append(
            f"{precision} engines differ numerically from the ONNX validated here (onnxruntime, CPU): "
            "validate them on the device"
        )
    return BuildRecipe(
        target.name,
        target.tensorrt,
        target.compute_capability,
        precision,
        strongly_typed,
        target.workspace_mb or 1024,
        {"min": batch[0], "opt": batch[1], "max": batch[2]},
        manifest.get("recipe", {}).get("sha256"),
        builds,
        notes,
    )
