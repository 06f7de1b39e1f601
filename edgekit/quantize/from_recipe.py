"""The quantize stage's job built from a recipe: calibration and search examples from the task, and the cache
fingerprint of everything outside the quantize section that changes a calibration or search result."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..artefact import sha256_file
from ..tasks import load_task

if TYPE_CHECKING:
    from ..schema import Recipe


def quantize_fingerprint(weights_sha256: str, recipe: Recipe, halt_threshold: float) -> str:
    """Everything outside the quantize section that changes a calibration or search result: the weights, the
    task data, the opset, the graph rewrite and the halting threshold the search scores at. Part of every
    quantization cache key (the quantize section itself is added by the quantize stage)."""
    ex = recipe.export
    return f"{weights_sha256}|{recipe.task.model_dump()}|opset{ex.opset}|halt{halt_threshold}|opt{ex.optimize}"


def _digest(*arrays: Any) -> str:
    """Content hash of examples: part of the quantization cache keys, so changed task data is never a hit."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(str(a.shape).encode() + a.tobytes())
    return h.hexdigest()[:16]


def quantize_from_recipe(
    recipe: Recipe, fp32: Any, tmp: Path, thr: float, table: Any, weights: Path, log: Callable[[str], None]
) -> tuple[dict[str, str], dict[str, dict[str, str]], dict[str, dict[Any, Any]]] | None:
    """The quantize stage's job from the recipe, run on the exported float32 graphs: its files, graph roles and
    records per variant (None when the recipe asks for no mode beyond float16, an export precision)."""
    if not any(m != "float16" for m in recipe.quantize.modes):
        return None
    from .stage import QuantizeJob, run_quantize

    q = recipe.quantize
    calib = load_task(recipe.task, q.calibration.n, q.calibration.seed, split="train")
    search_set = load_task(recipe.task, q.search.n, q.search.seed, split="train")
    fingerprint = quantize_fingerprint(sha256_file(weights), recipe, thr)
    ids = calib.puzzle_ids if table is not None else None
    examples = [calib.inputs, search_set.inputs, search_set.labels, *([ids] if ids is not None else [])]
    fingerprint += "|" + _digest(*examples)
    search_ids = search_set.puzzle_ids if table is not None else None
    job = QuantizeJob(
        fp32, tmp, q, calib.inputs, search_set.inputs, search_set.labels, fingerprint, log, tuple(recipe.export.forms),
        ids, search_ids,
    )  # fmt: skip
    return run_quantize(job)
