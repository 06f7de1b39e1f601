"""The build specification (`BuildRecipe`): what an engine build does for one artefact on one target, shared by
`edgekit plan` (trtexec on the device) and `edgekit build` (TensorRT Python API), so both build the same engines and
hash the same specification.

What is built: the graphs of one or more of the artefact's variants, by default the one whose numbers were
validated — the float16 variant when it passed its accuracy gates in results.json, else float32 — each at the
precision it was validated at. INT8 engines come only from Q/DQ variants (explicit quantization: INT8 where the graph
quantizes, float32 elsewhere, as onnxruntime ran it); the FP16 builder flag is never added to them unasked.
A Q/DQ graph that also computes in float16 (Casts around float16 layers, the `int8_fp16` mode) is always built
strongly typed: only then do its Casts decide each layer's precision as they did in validation.

How precision reaches TensorRT: 10.x builds weakly typed by default, so precision comes from builder flags (FP16,
INT8 for Q/DQ graphs, ...); TensorRT 11 removed those flags and always builds strongly typed, so precision comes
from the graph itself — the float16 variant's ONNX gives FP16 engines, a float32 graph float32 ones. Float32 engines
keep TF32 off in both modes (`--noTF32`, the cleared TF32 builder flag): the validated graphs ran in true float32.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError, RecipeError
from ..manifest import Manifest
from ..schema import Target, load_target
from . import versions
from .graphs import GraphInfo, describe, load_manifest, onnx_files, profile_shapes

TRTEXEC_FLAGS = {"fp16": "--fp16", "bf16": "--bf16", "int8": "--int8", "fp8": "--fp8"}
# The float type of an exported precision's graphs (quantized variants keep float32 outside their Q/DQ).
EXPORT_FLOAT = {"float32": "fp32", "float16": "fp16"}
FLOAT_PRECISIONS = ("fp32", "fp16", "bf16")
REDUCED_FLOATS = {"fp16": "float16", "bf16": "bfloat16"}  # float types that force a strongly typed Q/DQ build
QDQ_PRECISIONS = ("int8", "fp8")
MAX_RESULTS_BYTES = 256 << 20  # results.json holds per-variant metrics, not per-example data


@dataclass
class GraphBuild:
    name: str  # manifest key, e.g. "step" or "float16/step"
    onnx: str  # path relative to the artefact folder
    onnx_sha256: str
    engine: str  # engine file name inside the engine folder
    quantization: list[str]  # Q/DQ types in the graph, e.g. ["int8"]
    shapes: dict[str, dict[str, list[int]]]  # input -> {"min": [...], "opt": [...], "max": [...]}, dynamic inputs only
    weak_precisions: list[str]  # TensorRT 10.x builder flags, e.g. ["fp16"] or ["int8"]
    tf32: bool = True  # False where layers outside Q/DQ run float32: true fp32 matmuls, like the validated ONNX
    precision: str = "fp32"  # what layers outside Q/DQ are asked to run in
    graph_float: str = "fp32"  # the graph's own float type: what a strongly typed build runs them in
    floats: list[str] = field(default_factory=list)  # float types the graph computes in (its tensors and Casts)
    strongly_typed: bool = False  # forced: Q/DQ and float16 / bf16 layers, which only a strongly typed build keeps

    def trtexec_weak_flags(self) -> list[str]:
        return [TRTEXEC_FLAGS[p] for p in self.weak_precisions] + ([] if self.tf32 else ["--noTF32"])

    def trtexec_strong_flags(self, tensorrt_major: int) -> list[str]:
        """Strongly typed: precision from the graph; `--stronglyTyped` on 10.x only (always on, and deprecated, in
        11); TF32 off for float32 engines as in weak builds."""
        return (["--stronglyTyped"] if tensorrt_major < 11 else []) + ([] if self.tf32 else ["--noTF32"])

    def trtexec_shape_flags(self) -> list[str]:
        if not self.shapes:
            return []
        spec = lambda k: ",".join(f"{n}:{'x'.join(map(str, s[k]))}" for n, s in self.shapes.items())  # noqa: E731
        return [f"--minShapes={spec('min')}", f"--optShapes={spec('opt')}", f"--maxShapes={spec('max')}"]

    def strong_mismatch(self) -> str | None:
        """What a strongly typed build cannot honour: the float precision asked for differs from the graph's own."""
        if self.precision == self.graph_float:
            return None
        return (
            f"{self.engine} keeps its graph's {self.graph_float} under strongly typed TensorRT ({self.precision} "
            f"needs a {self.precision} graph: export that precision, or build on TensorRT 10.x weakly typed)"
        )

    def label(self) -> str:
        """e.g. 'fp32', 'fp16', 'int8 Q/DQ + fp32', 'int8 Q/DQ + fp16 layers + fp32, strongly typed'."""
        qdq = [f"{'/'.join(self.quantization)} Q/DQ"] if self.quantization else []
        if not self.strongly_typed:
            return " + ".join([*qdq, self.precision])
        cast = [f"{f} layers" for f in self.floats if f not in ("fp32", self.precision)]
        return " + ".join([*qdq, *cast, self.precision]) + ", strongly typed"


@dataclass
class BuildRecipe:
    target: str
    tensorrt: str | None  # the target's TensorRT range
    compute_capability: str | None
    precision: str  # what the user asked for, or what the variants were validated at ("fp32", "int8", "fp32+int8")
    strongly_typed: bool  # forced on for TensorRT 10.x; TensorRT 11 is always strongly typed
    workspace_mb: int
    batch: dict[str, int]  # {"min", "opt", "max"}
    artefact_recipe_sha256: str | None
    graphs: list[GraphBuild] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)  # variant -> precision, roles, validated
    reason: str = ""  # why these variants at this precision (printed by plan and build)

    def to_dict(self) -> dict:
        return asdict(self)

    def sha256(self) -> str:
        """Hash of the recipe (not of notes or reason): two builds with the same hash were asked for the same
        engines."""
        d = self.to_dict()
        d.pop("notes")
        d.pop("reason")
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


# -- what was validated ------------------------------------------------------------------------------------------------
def read_results(folder: Path) -> dict[str, Any] | None:
    """results.json of the artefact (None when there is none: nothing was validated); a damaged one is one line."""
    path = folder / "results.json"
    if path.is_symlink() or not path.is_file():
        return None
    if path.stat().st_size > MAX_RESULTS_BYTES:
        raise InputError(f"{path} is over {MAX_RESULTS_BYTES >> 20} MiB", "re-run `edgekit validate`")
    try:
        data = json.loads(path.read_bytes().decode())
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InputError(f"{path} is not valid JSON", "re-run `edgekit validate` to rewrite it") from None
    if not isinstance(data, dict) or not isinstance(data.get("gates"), list):
        raise InputError(f"{path} is not an edgekit results.json (no gates)", "re-run `edgekit validate`")
    return data


def verdict(results: dict[str, Any] | None, variant: str) -> tuple[bool | None, str]:
    """(passed, why) for one variant from results.json: True when every accuracy gate on it passed, False when one
    failed, None when nothing judged it. Budget gates (size, latency on the validating machine) do not count: they
    say nothing about the engine's numbers."""
    if results is None:
        return None, "the artefact has no results.json (it was not validated)"

    def named(x: Any) -> bool:  # the `--variant` name, or results.json before schema 2: "onnx (float16, step graph..."
        return x == variant or str(x).startswith(f"onnx ({variant},")

    entries = [e for e in results.get("variants", []) if isinstance(e, dict) and named(e.get("name"))]
    if not entries:
        return None, f"results.json has no entry for the {variant} variant"
    gates = [
        g for g in results["gates"] if isinstance(g, dict) and named(g.get("variant")) and g.get("kind") != "budget"
    ]
    if not gates:
        return None, f"no accuracy gate judged the {variant} variant"
    failed = [g for g in gates if g.get("passed") is not True]
    if failed:
        g = failed[0]
        return False, f"the {variant} variant failed {g.get('name')} ({g.get('value')}, limit {g.get('limit')})"
    return True, f"the {variant} variant passed its {len(gates)} accuracy gate{'s' * (len(gates) != 1)}"


# -- which variants, at which precision --------------------------------------------------------------------------------
def variant_graphs(manifest: Manifest, files: dict[str, Path]) -> dict[str, dict[str, str]]:
    """variant -> role -> file key of its ONNX graphs (the checked manifest lists at least one variant)."""
    return {v: {r: k for r, k in g.roles.items() if k in files} for v, g in manifest.variants.items()}


def validated_precision(variant: str, quantization: set[str], floats: set[str] | None = None) -> str:
    """What a variant was validated at: INT8 / FP8 for Q/DQ graphs (with the reduced float types they also compute
    in: "int8+fp16"), else its export precision (fp32 / fp16)."""
    for q, p in (("fp8", "fp8"), ("int8", "int8"), ("uint8", "int8")):
        if q in quantization:
            return "+".join([p, *(f for f in REDUCED_FLOATS if f in (floats or set()))])
    return EXPORT_FLOAT.get(variant, "fp32")


def needs_strong_typing(info: GraphInfo) -> bool:
    """A Q/DQ graph that also computes in a reduced float type: weakly typed TensorRT 10.x ignores its Casts (with
    --int8 those layers run where its tactics choose; with --fp16 every other layer may run float16 too), so only a
    strongly typed build runs the graph that was validated."""
    return bool(info.quantization) and bool(info.floats & set(REDUCED_FLOATS))


def choose_variants(
    variants: dict[str, dict[str, str]],
    precisions: dict[str, str],
    results: dict[str, Any] | None,
    target: Target,
    asked_variants: list[str] | None,
    asked_precision: str | None,
) -> tuple[list[str], str]:
    """(variants to build, why). Asked variants are taken as they are; otherwise a precision picks the variants
    validated at it; otherwise the float16 variant if it passed its accuracy gates and the target has FP16, else
    float32."""
    if asked_variants:
        unknown = [v for v in asked_variants if v not in variants]
        if unknown:
            raise RecipeError(f"the artefact has no variant {unknown[0]!r}", f"choose from {', '.join(variants)}")
        return list(dict.fromkeys(asked_variants)), "asked for with --variant"
    if asked_precision:
        at = [v for v in variants if precisions[v] == asked_precision]
        passed = [v for v in at if verdict(results, v)[0]]
        if len(at) == 1 or len(passed) == 1:
            pick = at[0] if len(at) == 1 else passed[0]
            return [pick], f"the {pick} variant is the one validated at {asked_precision}"
        if len(at) > 1:
            raise RecipeError(f"several variants are {asked_precision} ({', '.join(at)})", "choose one with --variant")
        if asked_precision in QDQ_PRECISIONS:
            raise RecipeError(
                f"precision {asked_precision} needs Q/DQ nodes in the graphs, and this artefact has none",
                "quantize the artefact first (explicit quantization), or use --precision fp16",
            )
    base = "float32" if "float32" in variants else next(iter(variants))
    ok16, why16 = verdict(results, "float16") if "float16" in variants else (None, "")
    if asked_precision:
        return [base], f"no variant was validated at {asked_precision}: the {base} graphs"
    if "float16" not in variants:
        return [base], "the artefact has no float16 variant (export.precisions: [float32, float16] adds one)"
    if not ok16:
        return [base], why16 if ok16 is False else f"{why16}, so float16 is not used by default"
    if "fp16" not in target.precisions:
        return [base], f"{why16}, but target {target.name} has no fp16"
    return ["float16"], f"{why16} (results.json)"


def make_recipe(
    folder: str | Path,
    target: Target | str,
    precision: str | None = None,
    strongly_typed: bool = False,
    graphs: list[str] | None = None,
    variants: list[str] | None = None,
) -> BuildRecipe:
    """Read the artefact's graphs and decide which variants to build (`variants`, else the validated default), which
    of their graphs (`graphs`: roles such as step, or manifest keys; default all), and shapes, precision flags and
    workspace for `target`."""
    target = tensorrt_target(target)
    folder = Path(folder)
    manifest = load_manifest(folder)
    files = onnx_files(folder, manifest)
    by_variant = variant_graphs(manifest, files)
    infos: dict[str, GraphInfo] = {}

    def info(key: str) -> GraphInfo:
        if key not in infos:
            infos[key] = describe(files[key], key)
            want = manifest.hashes.get(key)
            if want and want != infos[key].sha256:
                raise InputError(
                    f"{infos[key].path.name} does not match the sha256 in manifest.json",
                    "re-run `edgekit export`; the artefact was changed after it was written",
                )
        return infos[key]

    precision = EXPORT_FLOAT.get(precision, precision) if precision else precision  # float16 means fp16 here too
    if precision is not None and precision not in target.precisions:
        raise RecipeError(
            f"precision {precision!r} is not offered by target {target.name!r}",
            f"choose one of {', '.join(target.precisions)}",
        )
    quant = {v: set().union(*(info(k).quantization for k in roles.values())) for v, roles in by_variant.items()}
    floats = {v: set().union(*(info(k).floats for k in roles.values())) for v, roles in by_variant.items()}
    validated = {v: validated_precision(v, q, floats[v]) for v, q in quant.items()}
    results = read_results(folder)
    chosen, reason = choose_variants(by_variant, validated, results, target, variants, precision)
    keys = _selected_keys(by_variant, chosen, graphs)
    if precision in QDQ_PRECISIONS and not any(precision in info(k).quantization for k in keys):
        raise RecipeError(
            f"precision {precision} needs Q/DQ nodes in the graphs, and the {'/'.join(chosen)} graphs have none",
            "build a quantized variant (--variant), or quantize the artefact first",
        )
    prof = target.profile()
    batch = (prof.min, prof.opt, prof.max)
    notes: list[str] = []
    builds: dict[str, GraphBuild] = {}
    variant_info: dict[str, dict[str, Any]] = {}
    for v in chosen:
        p = precision or validated[v]
        if any(part not in target.precisions for part in p.split("+")):
            raise RecipeError(
                f"the {v} variant was validated at {p}, which target {target.name!r} does not offer",
                f"choose a precision it offers with --precision ({', '.join(target.precisions)})",
            )
        passed, why = verdict(results, v)
        variant_info[v] = {"precision": p, "validated_precision": validated[v], "passed": passed, "roles": {}}
        if passed is False:
            notes.append(f"{why}: these engines run graphs that did not pass validation")
        elif passed is None:
            notes.append(f"{why}: its engines run graphs nothing validated")
        if p != validated[v]:
            notes.append(
                f"the {v} variant was validated at {validated[v]}; {p} engines of it were not validated: check them "
                f"on the device (`edgekit verify --full --variant {v} --engines DIR`)"
            )
        for role, key in by_variant[v].items():
            if key not in keys:
                continue
            variant_info[v]["roles"][role] = key
            g = _graph_build(folder, info(key), p, EXPORT_FLOAT.get(v, "fp32"), batch)
            if key in builds and (builds[key].weak_precisions, builds[key].tf32) != (g.weak_precisions, g.tf32):
                raise RecipeError(
                    f"graph {key} is shared by variants {', '.join(chosen)} at different precisions",
                    "build those variants separately (--variant, --out)",
                )
            builds.setdefault(key, g)
    forced = [g for g in builds.values() if g.strongly_typed]
    if forced and not strongly_typed:
        reduced = sorted({REDUCED_FLOATS[f] for g in forced for f in g.floats if f in REDUCED_FLOATS})
        notes.append(
            f"strongly typed build (forced): {', '.join(g.name for g in forced)} compute"
            f"{'s' * (len(forced) == 1)} in {' and '.join(reduced)} beside Q/DQ, as validated; weakly typed TensorRT "
            "10.x would ignore the Casts (with --int8 those layers run where its tactics choose, with --fp16 every "
            "other layer may run float16 too)"
        )
    strongly_typed = strongly_typed or bool(forced)
    strong_possible = strongly_typed or versions.admits_major(target.tensorrt, 11)
    mismatched = [m for g in builds.values() if (m := g.strong_mismatch())]
    if mismatched and strong_possible:
        notes.append(
            "strongly typed builds (TensorRT 11, or --strongly-typed) take precision from the graph: "
            + "; ".join(mismatched[:2])
            + (f" (and {len(mismatched) - 2} more)" if len(mismatched) > 2 else "")
        )
    notes.append(
        "TensorRT engines compute differently from the onnxruntime CPU run validation measured (kernels, fusions"
        + (", reduced precision" if any(g.precision != "fp32" or g.quantization for g in builds.values()) else "")
        + "): check them on the device with "
        + " and ".join(f"`edgekit verify --full --variant {v} --engines DIR`" for v in chosen)
    )
    precs = list(dict.fromkeys(part for i in variant_info.values() for part in i["precision"].split("+")))
    return BuildRecipe(
        target.name,
        target.tensorrt,
        target.compute_capability,
        "+".join(precs),
        strongly_typed,
        target.workspace_mb or 1024,
        {"min": batch[0], "opt": batch[1], "max": batch[2]},
        manifest.recipe.sha256 if manifest.recipe is not None else None,
        list(builds.values()),
        notes,
        variant_info,
        reason,
    )


def _selected_keys(by_variant: dict[str, dict[str, str]], chosen: list[str], graphs: list[str] | None) -> list[str]:
    """The file keys to build: every graph of the chosen variants, or those named in `graphs` (role or key)."""
    pairs = [(role, key) for v in chosen for role, key in by_variant[v].items()]
    if graphs:
        known = {name for pair in pairs for name in pair}
        unknown = [g for g in graphs if g not in known]
        if unknown:
            raise RecipeError(
                f"the {'/'.join(chosen)} graphs include no {unknown[0]!r}", f"choose from {', '.join(sorted(known))}"
            )
        pairs = [(r, k) for r, k in pairs if r in graphs or k in graphs]
    return list(dict.fromkeys(k for _, k in pairs))


def _graph_build(
    folder: Path, info: GraphInfo, precision: str, graph_float: str, batch: tuple[int, int, int]
) -> GraphBuild:
    """One graph's build: Q/DQ types take their builder flag (explicit quantization needs it on 10.x); layers
    outside Q/DQ run in the float precision asked for (fp32 for fp32 / int8 / fp8), with TF32 off in float32."""
    q = info.quantization
    weak = [flag for flag, types in (("int8", {"int8", "uint8"}), ("fp8", {"fp8"})) if q & types]
    floating = precision if precision in FLOAT_PRECISIONS else "fp32"
    if floating != "fp32":
        weak.append(floating)
    shapes = {n: {"min": s[0], "opt": s[1], "max": s[2]} for n, s in profile_shapes(info, batch).items()}
    return GraphBuild(
        info.name,
        info.path.relative_to(folder).as_posix(),
        info.sha256,
        f"{info.name.replace('/', '-')}.engine",
        sorted(q),
        shapes,
        weak,
        tf32=floating != "fp32",
        precision=floating,
        graph_float=graph_float,
        floats=sorted(info.floats),
        strongly_typed=needs_strong_typing(info),
    )
