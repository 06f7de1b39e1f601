"""`edgekit build`: TensorRT engines from an artefact's ONNX graphs through the TensorRT Python API, on the machine
that will run them.

Same recipe as the on-device plan (edgekit.tensorrt.build_spec): the validated variant by default, precision by builder
flags on TensorRT 10.x, by the strongly typed graph on 11.x (and on 10.x for Q/DQ graphs that also compute in
float16: the STRONGLY_TYPED network flag), TF32 cleared for float32 engines in both (as the plan's `--noTF32`); one
optimization profile over the batch axis; a timing cache per graph, named by the content hash of (ONNX, TensorRT
version, GPU) and reused across builds; the engines and an engine manifest written atomically into
<artefact>/engines/<target>/. TensorRT is imported only when a build starts.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ..artefact import atomic_folder, check_output, replace_file, write_json
from ..cache import private_folder
from ..errors import IncompatibleError
from ..schema import Target, load_target
from . import versions
from .build_spec import BuildRecipe, GraphBuild, make_recipe
from .engine_manifest import ENGINE_MANIFEST, engine_dir, l4t_release, make_manifest, sha256_file, timing_cache_key
from .toolchain import gpu_info, require_tensorrt, tensorrt_version


def default_cache_dir() -> Path:
    """Timing caches: $EDGEKIT_CACHE_DIR, else timing-cache/ under the root every edgekit cache shares
    ($EDGEKIT_CACHE, else ~/.cache/edgekit), as the build script does."""
    from ..cache import cache_dir

    return Path(os.environ.get("EDGEKIT_CACHE_DIR", cache_dir() / "timing-cache"))


def build_engines(
    artefact: str | Path,
    target: Target | str,
    out: str | Path | None = None,
    precision: str | None = None,
    strongly_typed: bool = False,
    cache_dir: str | Path | None = None,
    graphs: list[str] | None = None,
    log: Callable[[str], None] = print,
    variants: list[str] | None = None,
) -> Path:
    """Build the engines of the chosen variants' graphs for `target` here; return the engine folder. Raises
    ToolchainUnavailable (exit 5) without TensorRT, IncompatibleError (exit 6) on the wrong TensorRT / GPU or a graph
    TensorRT rejects."""
    target = load_target(target) if isinstance(target, str) else target
    artefact = Path(artefact)
    recipe = make_recipe(artefact, target, precision, strongly_typed, graphs, variants)  # usage errors first
    final = check_output(Path(out) if out else engine_dir(artefact, target.name), marker=ENGINE_MANIFEST)
    trt = require_tensorrt(target.name, str(artefact))
    trt_ver = tensorrt_version(trt)
    gpu, cc = gpu_info()
    if not versions.in_range(trt_ver, target.tensorrt):
        raise IncompatibleError(
            f"TensorRT {trt_ver} here is outside target {target.name}'s range {target.tensorrt}",
            f"build on the device: `edgekit plan --target {target.name} {artefact}`",
        )
    if target.compute_capability and cc != target.compute_capability:
        raise IncompatibleError(
            f"this GPU ({gpu}) has compute capability {cc}, target {target.name} needs {target.compute_capability}",
            f"build on the device: `edgekit plan --target {target.name} {artefact}`",
        )
    major = int(trt_ver.split(".")[0])
    strong = major >= 11 or recipe.strongly_typed  # the recipe forces it for Q/DQ graphs that compute in float16
    # the rule for every cache: a private folder of this user's (else one warning line, no timing cache)
    timing = private_folder(Path(cache_dir).expanduser() if cache_dir else default_cache_dir())
    engines: dict[str, dict] = {}
    with atomic_folder(final, marker=ENGINE_MANIFEST) as tmp:
        for g in recipe.graphs:
            flags = g.trtexec_strong_flags(major) if strong else g.trtexec_weak_flags()
            log(f"building {g.engine} from {g.onnx} ({g.label()}; TensorRT {trt_ver}, {' '.join(flags) or 'no flags'})")
            if strong and g.strong_mismatch():
                log(f"warning: TensorRT {trt_ver}, strongly typed: {g.strong_mismatch()}")
            cache = None if timing is None else timing / f"{timing_cache_key(g.onnx_sha256, trt_ver, gpu, cc)}.cache"
            plan = _build_one(trt, artefact / g.onnx, g, recipe, strong and major < 11, strong, cache)
            (tmp / g.engine).write_bytes(plan)
            engines[g.name] = {
                "file": g.engine,
                "onnx": g.onnx,
                "onnx_sha256": g.onnx_sha256,
                "engine_sha256": sha256_file(tmp / g.engine),
                "engine_bytes": (tmp / g.engine).stat().st_size,
                "flags": " ".join(flags),  # what the plan script's trtexec gets for the same build
            }
        write_json(
            tmp / ENGINE_MANIFEST,
            make_manifest(
                target.name,
                "tensorrt-python",
                trt_ver,
                gpu,
                cc,
                strong,
                recipe.to_dict(),
                recipe.sha256(),
                engines,
                l4t_release(),
            ),
        )
    return final


def _build_one(
    trt, onnx_path: Path, g: GraphBuild, recipe: BuildRecipe, strong_flag: bool, strong: bool, cache_path: Path | None
) -> bytes:
    """`strong_flag`: ask for a strongly typed network (10.x; 11 always builds one and deprecates the flag);
    `cache_path`: the timing cache to reuse and update (None: none)."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if strong_flag and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    elif strong_flag and g.strongly_typed:  # a weakly typed build would not run the precision that was validated
        raise IncompatibleError(
            f"{onnx_path.name} computes in float16 beside Q/DQ and needs a strongly typed network, which this "
            "TensorRT does not offer",
            "build with TensorRT 10 or later",
        )
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):  # from a file, so external data resolves next to it
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)] or ["no detail"]
        raise IncompatibleError(
            f"TensorRT cannot parse {onnx_path.name}: {errors[0].splitlines()[0][:200]}",
            f"run `edgekit check --target {recipe.target}` on the artefact and fix what it reports",
        )
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, recipe.workspace_mb << 20)
    if not strong:
        for p in g.weak_precisions:
            config.set_flag(getattr(trt.BuilderFlag, p.upper()))
    if not g.tf32 and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)
    if g.shapes:
        profile = builder.create_optimization_profile()
        for name, s in g.shapes.items():
            profile.set_shape(name, s["min"], s["opt"], s["max"])
        config.add_optimization_profile(profile)
    reuse = cache_path is not None and cache_path.is_file() and not cache_path.is_symlink()
    cache = config.create_timing_cache(cache_path.read_bytes() if reuse and cache_path is not None else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise IncompatibleError(
            f"TensorRT could not build an engine from {onnx_path.name} (its log above says why)",
            "try --precision fp32, or a larger workspace_mb in the target",
        )
    if cache_path is not None:  # mkstemp and rename: never through a file or link planted at the name
        replace_file(cache_path, bytes(config.get_timing_cache().serialize()))
    return bytes(plan)
