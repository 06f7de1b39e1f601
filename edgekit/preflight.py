"""`edgekit export --dry-run`: everything the export would refuse, found without the heavy work. The checkpoint
path exists and its header (tensor names and shapes; safetensors' JSON header, or a torch file memory-mapped)
describes a supported model; the dataset's splits open (headers, index arrays), hold task.n examples and match
the model's sequence length and vocabulary; the task fits the model. No weights are read into memory, no graph
is built, nothing is written.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from .errors import CheckpointError, RecipeError
from .schema import Recipe

MAX_HEADER = 100 << 20  # a safetensors JSON header larger than this is not a checkpoint edgekit wrote or reads


def check_inputs(recipe: Recipe, base: Path) -> list[str]:
    """One line per thing checked; the first problem is an EdgekitError (exit 2) naming it and the fix."""
    from .pipeline import _model_path

    lines: list[str] = []
    path = _model_path(recipe, base)
    meta = _dataset(recipe, lines)
    model = _checkpoint(path, recipe, meta, lines)
    if meta is not None and model is not None:
        from .tasks.loading import check_meta

        check_meta(meta, str(recipe.task.data), model["seq_len"], model["vocab_size"])
        lines.append(f"dataset and model agree: sequence length {model['seq_len']}, vocabulary {model['vocab_size']}")
    if model is not None:
        from .tasks import get_task

        spec = {"dtype": "int64", "shape": ["batch", model["seq_len"]], "range": [0, model["vocab_size"] - 1]}
        if not get_task(recipe.task.name).fits(spec, model["family"]):
            raise RecipeError(
                f"task {recipe.task.name!r} does not fit this {model['family']} model (input int64 {spec['shape']})",
                "set task.name to the task the model was trained on",
            )
        lines.append(f"task {recipe.task.name} fits the model")
    if recipe.validate_.openvino:
        from .validate.openvino_configs import check_openvino

        check_openvino(recipe)
        lines.append(f"OpenVINO runs {', '.join(recipe.validate_.openvino)} on this CPU (validate.openvino)")
    return lines


def _dataset(recipe: Recipe, lines: list[str]):
    """The validation split's metadata after opening every split the export reads; None for generated tasks."""
    data = recipe.task.data
    if data is None:
        lines.append(f"task {recipe.task.name}: examples generated (seed {recipe.task.seed}), no dataset to read")
        return None
    from .tasks.files import DataError, open_data

    is_npz = data.endswith(".npz")
    split = open_data(Path(data), "npz" if is_npz else recipe.task.split)
    if len(split) < recipe.task.n:
        raise DataError(
            f"task.data {data} has {len(split)} examples in {recipe.task.split!r}, task.n asks for {recipe.task.n}",
            "lower task.n or use a larger split",
        )
    where = Path(data).name if is_npz else f"{Path(data).name}/{recipe.task.split}"
    lines.append(f"dataset {where}: {len(split)} examples, sequence length {split.meta.seq_len} (headers only)")
    if not is_npz:
        cal = open_data(Path(data), recipe.task.calibration_split)
        lines.append(f"calibration split {recipe.task.calibration_split}: {len(cal)} examples")
    return split.meta


def _checkpoint(path: Path, recipe: Recipe, meta, lines: list[str]) -> dict[str, Any] | None:
    """Family, sequence length and vocabulary from the config and the tensor shapes; None for a DEQ (its input
    width is only known from its weights' module)."""
    from .models.checkpoint import CONFIG_NAME, DEQ_CONFIG_NAME, find_files, infer_act_config, read_config

    folder = path if path.is_dir() else path.parent
    if (folder / DEQ_CONFIG_NAME).is_file():
        weights = path if path.is_file() else folder / "model.safetensors"
        n = len(_shapes(weights))
        lines.append(f"checkpoint {weights}: DEQ, {n} tensors (header only; no weights loaded)")
        return None
    weights, cfg_path = find_files(path)
    if cfg_path is None:
        raise CheckpointError(
            f"no {CONFIG_NAME} next to {weights}",
            f"put the reference run's {CONFIG_NAME} (its arch section) beside the checkpoint",
        )
    raw = read_config(cfg_path)
    section = raw.get("edgekit")
    extra: dict[str, Any] = dict(section) if isinstance(section, dict) else {}
    if meta is not None and "seq_len" not in extra:
        extra["seq_len"] = meta.seq_len
    shapes = _shapes(weights)
    config = infer_act_config(dict(raw["arch"]), shapes, recipe.model.seq_len, extra)
    lines.append(
        f"checkpoint {weights}: {config.family}, vocabulary {config.vocab_size}, sequence length {config.seq_len}, "
        f"{len(shapes)} tensors (header only; no weights loaded)"
    )
    return {"family": config.family, "seq_len": config.seq_len, "vocab_size": config.vocab_size}


def _shapes(weights: Path) -> dict[str, Any]:
    """name -> a tensor of the right shape on torch's meta device (no storage), read from the file's header."""
    import torch

    if not weights.is_file():
        raise CheckpointError(f"checkpoint {weights} does not exist", "check model.path in the recipe")
    if weights.suffix == ".safetensors":
        return {k: torch.empty(s, device="meta") for k, s in _safetensors_header(weights).items()}
    return {k: torch.empty(v.shape, device="meta") for k, v in _torch_file(weights).items()}


def _torch_file(path: Path) -> dict[str, Any]:
    """A torch.save file memory-mapped (tensor data stays on disk), with safe loading only; a legacy (non-zip)
    file cannot be mapped and is read as the export would read it."""
    import pickle
    import warnings
    import zipfile

    import torch

    from .models.checkpoint import read_state_dict, strip_prefixes

    if not zipfile.is_zipfile(path):
        return read_state_dict(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sd = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError):
        return read_state_dict(path)  # its one-line error for whatever is wrong with the file
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in sd.items()):
        raise CheckpointError(
            f"checkpoint {path} is not a state dict of tensors",
            "save model.state_dict(), not the module or a training state",
        )
    return strip_prefixes(sd)


def _safetensors_header(path: Path) -> dict[str, list[int]]:
    """Tensor shapes from a safetensors file's JSON header (the first 8 bytes give its length)."""
    fix = "re-copy or re-save the checkpoint"
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            (size,) = struct.unpack("<Q", head) if len(head) == 8 else (-1,)
            if not 2 <= size <= MAX_HEADER:
                raise CheckpointError(f"checkpoint {path} is not a safetensors file (header size {size})", fix)
            header = json.loads(f.read(size))
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"checkpoint {path} has an unreadable header ({type(e).__name__})", fix) from None
    if not isinstance(header, dict):
        raise CheckpointError(f"checkpoint {path} has an unreadable header", fix)
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        shape = v.get("shape") if isinstance(v, dict) else None
        if not isinstance(shape, list) or not all(isinstance(d, int) and 0 <= d < 2**40 for d in shape):
            raise CheckpointError(f"checkpoint {path}: tensor {str(k)[:60]!r} has no valid shape", fix)
        out[k] = shape
    from .models.checkpoint import PREFIXES

    return {next((k[len(p) :] for p in PREFIXES if k.startswith(p)), k): v for k, v in out.items()}
