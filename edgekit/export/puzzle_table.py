"""The puzzle-embedding table an artefact keeps: which rows, under which names, and how it is stored.

HRM / TRM add a learned vector per puzzle identifier (ARC: one per task x augmentation; ~1M rows, 2 GB in fp32
for sapientinc's ARC-2 checkpoint). A device serves a known set of puzzles, so `export.puzzle_ids` keeps only
their rows. The exported encode graph then takes *rows* of the cut table; `puzzle_ids.npz` maps each row back to
its original identifier and name, and the runtime translates ids or names to rows (refusing any outside the map).
The PyTorch models are never cut: references run on original identifiers, as the reference code does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import RecipeError
from ..models.act import ACTModel

MAX_NAME_FILE_BYTES = 1 << 30


@dataclass
class PuzzleTable:
    """Rows kept (their original identifiers, ascending) and their names where a dataset names them."""

    original: np.ndarray  # int64 [rows]
    names: list[str] | None
    rows_before: int
    dim: int

    @property
    def rows(self) -> int:
        return len(self.original)

    def weights(self, model: ACTModel) -> torch.Tensor:
        w = model.puzzle_emb.weights.detach()
        if self.rows == self.rows_before:
            return w
        return w[torch.from_numpy(self.original)].contiguous()

    def spec(self, itemsize: int) -> dict[str, Any]:
        """The manifest's `graph.puzzle_ids`: the runtime input contract and the sizes before / after the cut."""
        return {
            "dtype": "int64",
            "shape": ["batch"],
            "rows": self.rows,
            "rows_before": self.rows_before,
            "dim": self.dim,
            "bytes_before": self.rows_before * self.dim * itemsize,
            "bytes_after": self.rows * self.dim * itemsize,
            # a table with more than the blank row never answers without identifiers (the runtime's contract
            # allows a default row; tables of the blank row alone are graph constants, with no puzzle_ids input)
            "default_row": None,
            "named": self.names is not None,
            "file": "puzzle_ids",
        }


def select(
    spec: list[str | int] | str | None, model: ACTModel, data: str | None, split: str, base: Path
) -> PuzzleTable:
    """The rows `export.puzzle_ids` keeps. Names come from the dataset's identifiers.json; an identifier the
    dataset or the checkpoint does not have is a RecipeError (exit 2), never silently the blank one."""
    from ..tasks.files import open_data, read_identifiers

    total, dim = (int(s) for s in model.puzzle_emb.weights.shape)
    folder = Path(data) if data and not data.endswith(".npz") else None
    names = read_identifiers(folder) if folder is not None and (folder / "identifiers.json").exists() else None
    if names is not None and len(names) > total:
        raise RecipeError(
            f"{folder}/identifiers.json names {len(names)} identifiers, the checkpoint's puzzle table has {total} rows",
            "use the dataset the model was trained on",
        )
    if spec is None:
        ids = np.arange(total, dtype=np.int64)
    elif spec == "from_data":
        if data is None:
            raise RecipeError("export.puzzle_ids: from_data needs task.data", "set task.data, or list the identifiers")
        ids = np.unique(np.concatenate(open_data(Path(data), split).puzzle_ids))
    else:
        wanted = _read_name_file(base / spec) if isinstance(spec, str) else list(spec)
        ids = _resolve(wanted, names, folder)
    if len(ids) and (ids.min() < 0 or ids.max() >= total):
        raise RecipeError(
            f"export.puzzle_ids: identifier {int(ids.max())} is beyond the checkpoint's puzzle table ({total} rows)",
            "keep identifiers of the dataset the model was trained on",
        )
    if not len(ids):
        raise RecipeError("export.puzzle_ids selects no identifier", "list at least one")
    kept = None if names is None else [names[i] if i < len(names) else f"#{i}" for i in ids.tolist()]
    return PuzzleTable(np.asarray(ids, np.int64), kept, total, dim)


def _read_name_file(path: Path) -> list[str | int]:
    if path.is_symlink() or not path.is_file():
        raise RecipeError(f"export.puzzle_ids file {path} does not exist", "paths in a recipe are relative to it")
    if path.stat().st_size > MAX_NAME_FILE_BYTES:
        raise RecipeError(f"export.puzzle_ids file {path} is over 1 GiB", "list the identifiers a device serves")
    try:
        lines = path.read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise RecipeError(f"cannot read {path}: {str(e)[:80]}", "write one identifier name per line") from None
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def _resolve(wanted: list[str | int], names: list[str] | None, folder: Path | None) -> np.ndarray:
    index = {n: i for i, n in enumerate(names)} if names is not None else {}
    out: list[int] = []
    for w in wanted:
        if isinstance(w, int):
            out.append(w)
            continue
        if names is None:
            raise RecipeError(
                f"export.puzzle_ids names {w[:60]!r} but task.data has no identifiers.json to look names up in",
                "point task.data at the reference dataset folder, or give identifier ids",
            )
        if w not in index:
            raise RecipeError(
                f"export.puzzle_ids: {w[:60]!r} is not in {folder}/identifiers.json",
                "use names exactly as identifiers.json writes them",
            )
        out.append(index[w])
    return np.unique(np.asarray(out, np.int64))


@contextlib.contextmanager
def swapped_table(model: ACTModel, weights: torch.Tensor) -> Iterator[None]:
    """Export the encode graph with `weights` as the puzzle table (the cut rows, or a one-row stand-in for a
    table written as external data), restoring the model's own table afterwards."""
    own = model.puzzle_emb.weights
    model.puzzle_emb.weights = torch.nn.Parameter(weights, requires_grad=False)
    try:
        yield
    finally:
        model.puzzle_emb.weights = own


def write_table(folder: Path, table: PuzzleTable) -> str:
    """puzzle_ids.npz: `original` (int64 per row) and `names` (bytes per row, when known), no pickles."""
    arrays: dict[str, np.ndarray] = {"original": table.original}
    if table.names is not None:
        arrays["names"] = np.array([n.encode("utf-8") for n in table.names], dtype=bytes)
    np.savez_compressed(folder / "puzzle_ids.npz", **arrays)  # type: ignore[arg-type]
    return "puzzle_ids.npz"
