"""manifest.json of a freshly exported artefact: what is inside (files, variants, state layout, input contract,
step budget, halting threshold) so the runtime needs no model-specific code."""

from __future__ import annotations

import datetime as _dt
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..artefact import ARTEFACT_SCHEMA_VERSION, sha256_file
from ..manifest import (
    GraphInfo,
    InitialState,
    InputContract,
    Manifest,
    ModelInfo,
    RecipeRef,
    StateLayout,
    VariantGraphs,
)
from ..models.act import ACTModel
from ..models.deq import DEQModel
from ..models.families import get_family
from ..stopping import manifest_entry


def input_spec(model: ACTModel | DEQModel) -> dict[str, Any]:
    """The input contract the runtime checks: dtype, shape and (token models) the id range."""
    return get_family(model.family).input_spec(model)


def write_initial_state(model: ACTModel | DEQModel, folder: Path, files: dict[str, str]) -> InitialState:
    """Learned initial states (HRM/TRM) are written as initial_state.npz; a family that starts from zeros (DEQ)
    writes only their shape."""
    vectors = {name: v.float().numpy() for name, v in model.initial_vectors().items()}
    if get_family(model.family).zero_initial_state:
        return InitialState("zeros", shape=tuple(int(d) for d in vectors[model.state_names[0]].shape))
    np.savez(folder / "initial_state.npz", **vectors)  # type: ignore[arg-type]  # numpy's stub types **kwds as bool
    files["initial_state"] = "initial_state.npz"
    return InitialState("broadcast", file="initial_state.npz")


def build_manifest(
    model: ACTModel | DEQModel,
    folder: Path,
    *,
    recipe_name: str,
    recipe_sha256: str,
    target: str,
    weights_file: Path,
    forms: list[str],
    opset: int,
    halt_threshold: float,
    files: dict[str, str],
    variants: dict[str, dict[str, str]],
    export_seconds: dict[str, float],
    initial_state: InitialState,
) -> Manifest:
    """The manifest before quantization and validation (which add variants, quantization details and hashes)."""
    family = get_family(model.family)
    config = model.manifest_config()
    halting = family.rule(model, halt_threshold).description
    declared = manifest_entry(model.family, family.stopping)  # nothing for the families older artefacts imply
    return Manifest(
        schema_version=ARTEFACT_SCHEMA_VERSION,
        edgekit_version=__version__,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        recipe=RecipeRef(recipe_name, recipe_sha256),
        target=target,
        model=ModelInfo(
            model.family,
            str(weights_file.name),
            sha256_file(weights_file),
            config,
            family.stopping if declared else None,
        ),
        graph=GraphInfo(
            model.step_budget,
            StateLayout(tuple(model.state_names), initial_state),
            InputContract.from_json(input_spec(model)),
            forms=tuple(forms),
            opset=opset,
            unrolled_steps=model.step_budget,
            halt_threshold=halt_threshold,
            halting=halting,
        ),
        files=dict(files),
        variants={name: VariantGraphs.of(roles) for name, roles in variants.items()},
        sha256={},
        export_seconds=dict(export_seconds),
        bytes={k: (folder / rel).stat().st_size for k, rel in files.items()},
        quantization={},
    )


def with_files(
    manifest: Manifest, folder: Path, files: dict[str, str], variants: dict[str, dict[str, str]] | None = None
) -> Manifest:
    """`manifest` listing `files` (and `variants`, when given) with their sizes: after the puzzle table, the
    quantized variants or validation's files were written into `folder`."""
    listed = manifest.variants if variants is None else {n: VariantGraphs.of(r) for n, r in variants.items()}
    sizes = {k: (folder / rel).stat().st_size for k, rel in files.items()}
    return replace(manifest, files=dict(files), variants=listed, bytes=sizes)
