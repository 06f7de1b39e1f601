"""Artefact folders around hand-made graphs, for the tests of what reads graphs (check, plan, build) rather than
runs a model: a valid manifest whose model section names a family but whose graphs are not that model."""

from __future__ import annotations

from pathlib import Path

import onnx

from edgekit.artefact import sha256_file, write_json


def write_manifest(folder: Path, files: dict[str, str], variants: dict[str, dict[str, str]]) -> None:
    """manifest.json listing `files` (key -> path in `folder`, hashed as they are now) and `variants`."""
    write_json(
        folder / "manifest.json",
        {
            "schema_version": 1,
            "target": "x86-cpu",
            "recipe": {"sha256": "0" * 64},
            "model": {"family": "trm"},
            "graph": {
                "state_names": ["z"],
                "step_budget": 1,
                "initial_state": {"kind": "zeros", "shape": [4]},
                "input": {"dtype": "float32", "shape": ["batch", 4]},
            },
            "files": files,
            "sha256": {k: sha256_file(folder / v) for k, v in files.items()},
            "variants": variants,
        },
    )


def variants_artefact(folder: Path, graphs: dict[str, onnx.ModelProto]) -> Path:
    """An artefact folder whose variants (name -> its step graph, saved as <name>/step.onnx) are one graph each."""
    folder.mkdir(parents=True)
    files = {}
    for variant, model in graphs.items():
        (folder / variant).mkdir()
        onnx.save(model, str(folder / variant / "step.onnx"))
        files[f"{variant}/step"] = f"{variant}/step.onnx"
    write_manifest(folder, files, {v: {"step": f"{v}/step"} for v in graphs})
    return folder
