"""The export stage as the pipeline runs it: the recipe's forms and precisions exported into the artefact folder,
the initial state, the puzzle table and the manifest the later stages read (and, once the quantize stage wrote its
variants, the manifest listing them)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..manifest import Manifest
from ..schema import Recipe


@dataclass(frozen=True)
class ExportInputs:
    """What the export stage exports: the recipe (and its file, whose hash the manifest keeps), the checkpoint and
    the models loaded from it, and the puzzle-embedding rows kept (None: the model has no table)."""

    recipe: Recipe
    recipe_path: Path
    target: str
    model_path: Path
    weights_file: Path
    native: Any  # the model as trained
    fp32: Any  # its float32 twin (the model itself when trained in float32)
    table: Any  # export.puzzle_table.PuzzleTable | None
    data_seq_len: int | None  # the validation split's seq_len, for RoPE checkpoints


@dataclass
class ExportedArtefact:
    """The float variants written: the manifest (also in manifest.json) and the files and graph roles it lists,
    which later stages add to."""

    manifest: Manifest
    files: dict[str, str]
    variants: dict[str, dict[str, str]]


def export_stage(inp: ExportInputs, threshold: float, tmp: Path, log: Callable[[str], None]) -> ExportedArtefact:
    """The graphs of every form and precision (float16 too when quantize.modes asks for it), the initial state,
    the puzzle table and manifest.json: what the quantize stage reads."""
    from .forms import ExportPlan, export_forms
    from .manifest import build_manifest, with_files, write_initial_state

    ex = inp.recipe.export
    log(f"exporting ONNX ({', '.join(ex.forms)}; {', '.join(ex.precisions)}; opset {ex.opset})")
    precisions: list[str] = list(ex.precisions)
    if "float16" in inp.recipe.quantize.modes and "float16" not in precisions:
        precisions.append("float16")
    table_spec = _table_spec(inp, log)
    plan = ExportPlan(
        list(ex.forms), precisions, ex.opset, threshold, ex.optimize, inp.table, external=ex.external_data == "always"
    )
    exported = export_forms(lambda precision: _model_at(inp, precision), tmp, plan)
    files, variants = dict(exported.files), dict(exported.variants)
    init = write_initial_state(inp.native, tmp, files)
    manifest = build_manifest(
        inp.native,
        tmp,
        recipe_name=inp.recipe.name,
        recipe_sha256=hashlib.sha256(Path(inp.recipe_path).read_bytes()).hexdigest(),
        target=inp.target,
        weights_file=inp.weights_file,
        forms=list(ex.forms),
        opset=ex.opset,
        halt_threshold=threshold,
        files=files,
        variants=variants,
        initial_state=init,
        export_seconds=dict(exported.seconds),
    )
    if inp.table is not None:
        from .puzzle_table import write_table

        files["puzzle_ids"] = write_table(tmp, inp.table)
        manifest = with_files(replace(manifest, graph=replace(manifest.graph, puzzle_ids=table_spec)), tmp, files)
    (tmp / "manifest.json").write_text(manifest.dumps())  # the float variants: what the quantize stage reads
    return ExportedArtefact(manifest, files, variants)


def _model_at(inp: ExportInputs, precision: str) -> Any:
    """The model computing in `precision`: the float32 twin, else loaded again at that forward dtype."""
    from ..models.checkpoint import load_model

    if precision == "float32":
        return inp.fp32
    seq_len = inp.recipe.model.seq_len
    return load_model(inp.model_path, seq_len=seq_len, forward_dtype=precision, data_seq_len=inp.data_seq_len)


def _table_spec(inp: ExportInputs, log: Callable[[str], None]) -> Any:
    """The manifest's puzzle-table section (rows and bytes kept, said in one line); None without a table."""
    if inp.table is None:
        return None
    spec = inp.table.spec(inp.native.puzzle_emb.weights.element_size())
    log(
        f"puzzle table: {spec.rows:,} of {spec.rows_before:,} rows kept "
        f"({(spec.bytes_before or 0) / 1e6:,.1f} -> {(spec.bytes_after or 0) / 1e6:,.1f} MB)"
    )
    return spec


def add_variants(
    tmp: Path, exported: ExportedArtefact, quantized: tuple[dict, dict, dict] | None
) -> tuple[Manifest, dict[str, str]]:
    """The manifest listing the quantize stage's variants (`quantized`: its files, graph roles and record; None
    when it did not run) with every file's size, written; and the files it lists, which validation adds to."""
    from .manifest import with_files

    files, variants, manifest = exported.files, exported.variants, exported.manifest
    if quantized is not None:
        qfiles, qvariants, quantization = quantized
        files.update(qfiles)
        variants.update(qvariants)
        manifest = replace(manifest, quantization=quantization)
    manifest = with_files(manifest, tmp, files, variants)
    (tmp / "manifest.json").write_text(manifest.dumps())
    return manifest, files
