"""The target stage of `edgekit export`: for TensorRT targets, static check, on-device build plan, and an engine
build where TensorRT is installed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..schema import Target


def target_stage(folder: Path, target: Target, log: Callable[[str], None]) -> dict | None:
    """TensorRT targets: static compatibility check, then an on-device build script, then an engine build where
    TensorRT is installed. Returns what happened, with the exit code it implies (0, 5 no TensorRT, 6 incompatible)."""
    if target.backend != "tensorrt":
        return None
    from ..errors import EXIT_INCOMPATIBLE, EXIT_TOOLCHAIN, EdgekitError
    from .check import check_artefact
    from .plan import write_script

    report = check_artefact(folder, target)
    out = {"check": report.to_dict(), "compatible": report.compatible}
    if not report.compatible:
        log(f"not compatible with {target.name}: {report.errors()[0].message if report.errors() else report.verdict}")
        return {**out, "exit_code": EXIT_INCOMPATIBLE}
    from .build_spec import make_recipe

    recipe = make_recipe(folder, target)
    script = write_script(recipe, target, folder)
    out["plan"] = script.name
    out["plan_builds"] = {"variants": list(recipe.variants), "precision": recipe.precision, "why": recipe.reason}
    log(
        f"wrote {script.name}: builds the {', '.join(recipe.variants)} engines at {recipe.precision} on the device "
        f"with trtexec; {recipe.reason}"
    )
    if target.device_model:  # Jetson: engines are built on the device itself, the script is the deliverable
        return {**out, "engine": "build on the device with " + script.name, "exit_code": 0}
    try:
        from .tensorrt_builder import build_engines

        engines = build_engines(folder, target, log=log)
        return {**out, "engine": str(engines.relative_to(folder)), "exit_code": 0}
    except EdgekitError as e:
        log(f"no engine built here: {e}")
        return {
            **out,
            "engine": None,
            "engine_error": str(e),
            "exit_code": e.exit_code if e.exit_code != 2 else EXIT_TOOLCHAIN,
        }
