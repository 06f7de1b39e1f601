"""The artefact manifest (manifest.json) as typed, frozen data: the one contract between export, quantize, validate,
tune, the TensorRT stage and the runtime, written down here and nowhere else.

`Manifest.from_json(doc)` is the strict reader: artefact folders travel from CI machines to devices, so a manifest
is untrusted input and every field a command reads is checked before anything uses it:
- at most 200,000 values nested at most 32 deep; every string at most 4,096 characters (names far less);
- `schema_version` is `VERSION`: another version is one line naming both (re-export with this edgekit);
- file keys match the safe-name pattern edgekit writes; with `complete=True` (a finished artefact) every listed
  file has a sha256 and every sha256 a listed file; `bytes` records a size per listed file;
- the model family and its configuration (a DEQ's solver settings), the graph section (step budget, unrolled steps,
  halting threshold, state names, initial state and its shape, input contract, puzzle identifiers), the variants
  (each naming listed files), quantization details, `target` (a target *name*, never a path);
- `runtime_defaults` (written by `edgekit tune --apply`) must carry `runtime_defaults_sha256`, the sha256 of its
  canonical JSON: defaults edited after tuning are refused (this catches edits, not a forger who recomputes it).
Anything else is an `ArtefactError` with one line naming the problem (exit 2). The folder-side checks (paths inside
the folder, no symbolic links, bounded JSON parsing) are `edgekit.runtime.manifest.load_manifest`'s.

`to_json()` gives back the document: keys in the order they were read (or the order export writes them), explicit
nulls kept, unknown keys kept, so `to_json(from_json(d)) == d` and a rewritten manifest.json is byte-identical.

Two modules: `checks.py` (the bounds, text escaping and one check per section of the untrusted document) and
`typed.py` (the frozen dataclasses, whose known JSON keys come from their fields). Import from `edgekit.manifest`.

Standard library only: the device runtime imports it.
"""

from __future__ import annotations

from .checks import (
    DEFAULT_TARGET,
    FAMILIES,
    FORMS,
    GRAPHS,
    KEY,
    MAX_DEPTH,
    MAX_DEPTH_FACTOR,
    MAX_DIM,
    MAX_FILE_BYTES,
    MAX_NAME,
    MAX_STATE,
    MAX_STEPS,
    MAX_STRING,
    MAX_THRESHOLD,
    MAX_VALUES,
    REEXPORT,
    RETUNE,
    SAFE,
    SHA256,
    SOLVER,
    TARGET,
    TOP,
    VERSION,
    _check_model,
    defaults_digest,
    escape_text,
    escape_tree,
    kind_of,
    need,
    short,
)
from .typed import (
    Dimensions,
    GraphInfo,
    InitialState,
    InputContract,
    Manifest,
    ModelInfo,
    PuzzleTable,
    RecipeRef,
    RuntimeDefaults,
    StateLayout,
    VariantGraphs,
    rule_of,
)

__all__ = [
    "DEFAULT_TARGET",
    "FAMILIES",
    "FORMS",
    "GRAPHS",
    "KEY",
    "MAX_DEPTH",
    "MAX_DEPTH_FACTOR",
    "MAX_DIM",
    "MAX_FILE_BYTES",
    "MAX_NAME",
    "MAX_STATE",
    "MAX_STEPS",
    "MAX_STRING",
    "MAX_THRESHOLD",
    "MAX_VALUES",
    "REEXPORT",
    "RETUNE",
    "SAFE",
    "SHA256",
    "SOLVER",
    "TARGET",
    "TOP",
    "VERSION",
    "Dimensions",
    "GraphInfo",
    "InitialState",
    "InputContract",
    "Manifest",
    "ModelInfo",
    "PuzzleTable",
    "RecipeRef",
    "RuntimeDefaults",
    "StateLayout",
    "VariantGraphs",
    "_check_model",
    "defaults_digest",
    "escape_text",
    "escape_tree",
    "kind_of",
    "need",
    "rule_of",
    "short",
]
