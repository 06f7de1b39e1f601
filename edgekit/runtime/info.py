"""`edgekit info`: what an artefact holds, read with the runtime alone (no graph is loaded, nothing is run)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import ArtefactError
from .manifest import escape_text, escape_tree
from .runner import Runner


def describe(folder: str | Path) -> dict[str, Any]:
    """Model, variants with their forms and size, input contract, halting, files with sizes and hashes, and the
    validation verdict when results.json is there."""
    folder = Path(folder)
    r = Runner(folder)  # the manifest checks every command shares
    m = r.manifest
    files = m.files
    hashes = m.hashes
    listed: list[dict[str, Any]] = []
    for key in sorted(files):
        path = r.file(key)
        listed.append(
            {
                "key": key,
                "file": files[key],
                "bytes": path.stat().st_size if path.is_file() else None,
                "sha256": hashes.get(key),
            }
        )
    sizes = {f["key"]: f["bytes"] or 0 for f in listed}
    variants = {}
    for name, variant in m.variants.items():
        graphs = variant.roles
        forms = ["step"] if {"encode", "step", "readout"} <= set(graphs) else []
        forms += [f for f in ("loop", "unrolled") if f in graphs]
        variants[name] = {
            "forms": forms,
            "graphs": graphs,
            "bytes": sum(sizes.get(k, 0) for g, k in graphs.items() if g in ("encode", "step", "readout")),
        }
    out: dict[str, Any] = {
        "artefact": str(folder),
        "schema_version": m.schema_version,
        "edgekit_version": m.edgekit_version,
        "recipe": m.recipe.name if m.recipe is not None else None,
        "target": m.target,
        "model": {
            "family": r.family,
            "checkpoint": m.model.checkpoint,
            "checkpoint_sha256": m.model.checkpoint_sha256,
        },
        "graph": {
            "input": r.graph.input.to_json(),
            "puzzle_ids": r.graph.puzzle_ids.to_json() if r.graph.puzzle_ids is not None else None,
            "step_budget": r.graph.step_budget,
            "halt_threshold": r.graph.halt_threshold,
            "halting": r.graph.halting,
            "state_names": list(r.graph.state_names),
        },
        "variants": variants,
        # `edgekit tune --apply`; None: float32 at the validated settings. The digest is the one tune printed.
        "runtime_defaults": m.runtime_defaults.to_json() if m.runtime_defaults is not None else None,
        "runtime_defaults_sha256": m.runtime_defaults_sha256,
        "files": listed,
        "passed": None,
        "gates": 0,
    }
    out["passed"], out["gates"] = _verdict(folder / "results.json")
    # every string from the artefact (names, versions, chosen_by, file names) escaped for the terminal
    described: dict[str, Any] = escape_tree(out)
    return described


MAX_RESULTS_BYTES = 64 << 20


def _verdict(results: Path) -> tuple[bool | None, int]:
    """(passed, number of gates) from results.json, or (None, 0) when there is none; a damaged one is one line."""
    if results.is_symlink() or not results.is_file():
        return None, 0
    damaged = ArtefactError(f"{escape_text(str(results))} is corrupt: re-run `edgekit validate`")
    try:
        with open(results, "rb") as f:
            raw = f.read(MAX_RESULTS_BYTES + 1)
        if len(raw) > MAX_RESULTS_BYTES:
            raise damaged
        res = json.loads(raw.decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        raise damaged from None
    if not isinstance(res, dict) or not isinstance(res.get("passed"), bool) or not isinstance(res.get("gates"), list):
        raise damaged
    return res["passed"], len(res["gates"])
