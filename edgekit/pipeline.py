"""`edgekit export` and `edgekit validate`: the stages in order, nothing else.

load recipe -> load checkpoint -> calibrate halting threshold -> export (edgekit.export) -> quantize
(edgekit.quantize) -> validate (edgekit.validate) -> target check / plan / build (edgekit.tensorrt), all inside one
atomic artefact folder. Each stage reads and writes plain files in that folder.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .artefact import atomic_folder, sha256_file, write_json
from .contracts import TOKENS, contract_of
from .errors import RecipeError
from .schema import Recipe, load_recipe, load_target
from .tasks import TaskData, load_task

Log = Callable[[str], None]


@dataclass
class ExportOutcome:
    folder: Path
    results: dict[str, Any]
    exit_code: int


def _model_path(recipe: Recipe, base: Path) -> Path:
    try:
        model_path = (base / recipe.model.path).resolve()
    except (RuntimeError, OSError):  # a symlink loop
        raise RecipeError(
            f"model.path {recipe.model.path!r} is a loop of symbolic links",
            "point model.path at the checkpoint folder itself",
        ) from None
    if not model_path.exists():
        raise RecipeError(
            f"model.path {recipe.model.path!r} does not exist (resolved to {model_path})",
            "paths in a recipe are relative to the recipe file",
        )
    return model_path


def _load_models(recipe: Recipe, model_path: Path, log: Log, seq: int | None) -> tuple[Any, Any]:
    """(the model as trained, its float32 twin): the ONNX graphs are fp32, so a bf16-trained model is also run in
    fp32 PyTorch to separate export error from precision."""
    from .models.checkpoint import load_model  # heavy imports only after the recipe is valid

    log(f"loading {model_path}")
    native = load_model(model_path, seq_len=recipe.model.seq_len, data_seq_len=seq)
    fp32 = (
        native
        if native.forward_dtype == "float32"
        else load_model(model_path, seq_len=recipe.model.seq_len, forward_dtype="float32", data_seq_len=seq)
    )
    return native, fp32


def _data_seq_len(recipe: Recipe) -> int | None:
    """The validation split's seq_len (dataset.json), for RoPE checkpoints whose shapes do not tell it."""
    if recipe.task.data is None or recipe.task.data.endswith(".npz"):
        return None
    from .tasks.files import open_data

    return open_data(Path(recipe.task.data), recipe.task.split).meta.seq_len


def resolve_output(recipe: Recipe, base: Path, out: str | Path | None = None) -> Path:
    """The artefact folder an export writes (--out, else the recipe's `output` relative to the recipe, else
    artefacts/<name> under the current folder), checked: never a folder edgekit does not own, a link, `/`, home, or
    the recipe's folder."""
    from .artefact import output_folder

    return output_folder(recipe.name, recipe.output, base, out)


def _task_data(recipe: Recipe, model: Any) -> TaskData:
    """The validation examples, refused before any heavy work when the model cannot take them: a task for other
    inputs (digits on a Sudoku TRM), or a dataset whose seq_len, vocabulary or puzzle ids disagree with it."""
    from .export.manifest import input_spec
    from .tasks import get_task
    from .tasks.loading import check_declared, check_fits

    spec = input_spec(model)
    if not get_task(recipe.task.name).fits(spec, model.family):
        raise RecipeError(
            f"task {recipe.task.name!r} does not fit this {model.family} model (input {spec['dtype']} {spec['shape']})",
            "set task.name to the task the model was trained on",
        )
    tokens = contract_of(spec) == TOKENS  # token models: the dataset's seq_len, vocabulary and puzzle ids
    if tokens:
        check_declared(recipe.task, model.config.seq_len, model.config.vocab_size)
    data = load_task(recipe.task)
    if tokens:
        c = model.config
        check_fits(data, c.seq_len, c.vocab_size, c.num_puzzle_identifiers if c.puzzle_emb_ndim > 0 else 1)
    return data


def _puzzle_table(recipe: Recipe, model: Any, base: Path, data: TaskData) -> Any:
    """The puzzle-embedding rows the export keeps (export.puzzle_ids), checked against the validation examples:
    None for models without a table."""
    from .export.graphs import takes_puzzle_ids
    from .export.puzzle_table import select

    if not takes_puzzle_ids(model):
        if recipe.export.puzzle_ids is not None:
            raise RecipeError("export.puzzle_ids is set but the model has no puzzle-embedding table", "remove it")
        return None
    table = select(recipe.export.puzzle_ids, model, recipe.task.data, recipe.task.split, base)
    if data.puzzle_ids is not None and len(data.puzzle_ids):
        missing = np.setdiff1d(np.unique(data.puzzle_ids), table.original)
        if len(missing):
            raise RecipeError(
                f"the validation examples use puzzle identifier {int(missing[0])}, which export.puzzle_ids does not "
                f"keep ({len(missing)} such identifiers)",
                "keep every identifier the validation split uses (export.puzzle_ids: from_data)",
            )
    return table


def _check_modes(recipe: Recipe, target: Any) -> None:
    """Refuse onnxruntime-only quantization modes for a TensorRT target before any work."""
    from .quantize.modes import cpu_only_modes, tensorrt_quantized_modes

    cpu = cpu_only_modes(list(recipe.quantize.modes))
    if cpu and target.backend == "tensorrt":
        names = tensorrt_quantized_modes()  # the quantized modes whose form TensorRT builds
        modes = " or ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
        raise RecipeError(
            f"quantize.modes {', '.join(cpu)} make onnxruntime CPU graphs, which TensorRT target {target.name} "
            "cannot build",
            f"use {modes} for TensorRT targets, or set target to a CPU target",
        )


def run_export(recipe_path: str | Path, out: str | Path | None = None, log: Log = print) -> ExportOutcome:
    """The whole pipeline; returns the artefact folder, results and the exit code the gates decide."""
    from .export.stage import ExportInputs, add_variants, export_stage
    from .models.checkpoint import find_files
    from .quantize import quantize_from_recipe
    from .tensorrt.stage import target_stage
    from .validate import calibrate_halt_threshold, validate_artefact
    from .validate.gates import exit_code
    from .validate.openvino_configs import check_openvino
    from .validate.threshold import variant_threshold_stage

    recipe, base = load_recipe(recipe_path)
    target = load_target(recipe.target)
    _check_modes(recipe, target)
    check_openvino(recipe)
    model_path = _model_path(recipe, base)
    final = resolve_output(recipe, base, out)
    data_seq = _data_seq_len(recipe)
    native, fp32 = _load_models(recipe, model_path, log, data_seq)
    data = _task_data(recipe, native)
    table = _puzzle_table(recipe, native, base, data)
    weights = find_files(model_path)[0]
    inputs = ExportInputs(recipe, Path(recipe_path), target.name, model_path, weights, native, fp32, table, data_seq)
    with atomic_folder(final, protect=[base]) as tmp:
        thr = calibrate_halt_threshold(recipe, fp32, log, sha256_file(weights))
        exported = export_stage(inputs, thr, tmp, log)
        manifest, files = add_variants(tmp, exported, quantize_from_recipe(recipe, fp32, tmp, thr, table, weights, log))
        manifest = variant_threshold_stage(recipe, tmp, manifest, files, thr, log)
        results = validate_artefact(tmp, recipe, native, fp32, data, manifest, log)
        build = target_stage(tmp, target, log)
        if build:
            results["target_build"] = build
            write_json(tmp / "results.json", results)
    code = exit_code(results["gates"])
    if results["passed"] and build and build["exit_code"]:
        code = build["exit_code"]
    return ExportOutcome(final, results, code)


def run_validate(recipe_path: str | Path, artefact: str | Path, log: Log = print) -> ExportOutcome:
    """`edgekit validate`: re-run the validation stage of an existing artefact against the recipe's model and
    data (e.g. after changing gates, or in a CI job that did not build the artefact). The artefact is updated
    atomically: validated in a copy, then swapped in."""
    from .models.checkpoint import find_files
    from .runtime.errors import ArtefactError
    from .runtime.manifest import load_manifest
    from .validate import validate_artefact
    from .validate.openvino_configs import check_openvino

    recipe, base = load_recipe(recipe_path)
    load_target(recipe.target)
    check_openvino(recipe)
    artefact = Path(artefact).expanduser()
    try:
        manifest = load_manifest(artefact, complete=True)  # refuses links and paths leading out of the folder
    except ArtefactError as e:
        raise RecipeError(str(e)) from None
    model_path = _model_path(recipe, base)
    want = manifest.model.checkpoint_sha256
    if want and sha256_file(find_files(model_path)[0]) != want:
        raise RecipeError(
            f"the artefact in {artefact} was not exported from {model_path}",
            "validate against the recipe and checkpoint it was exported from",
        )
    native, fp32 = _load_models(recipe, model_path, log, _data_seq_len(recipe))
    data = _task_data(recipe, native)
    with atomic_folder(artefact, protect=[base]) as tmp:
        # links are copied as links, never followed: nothing outside the folder is read into the artefact
        shutil.copytree(artefact, tmp, symlinks=True, dirs_exist_ok=True)
        results = validate_artefact(tmp, recipe, native, fp32, data, manifest, log)
    from .validate.gates import exit_code

    return ExportOutcome(artefact, results, exit_code(results["gates"]))
