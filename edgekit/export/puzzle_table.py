"""The puzzle-embedding table an artefact keeps: which rows, under which names, and how it is stored.

HRM / TRM add a learned vector per puzzle identifier (ARC: one per task x augmentation; ~1M rows, 2 GB in fp32
for sapientinc's ARC-2 checkpoint). A device serves a known set of puzzles, so `export.puzzle_ids` keeps only
their rows. The exported encode graph then takes *rows* of the cut table; `puzzle_ids.npz` maps each row back to
its original identifier and name, and the runtime translates ids or names to rows (refusing any outside the map).
The PyTorch models are never cut: references run on original identifiers, as the reference code does.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import RecipeError
from ..manifest import PuzzleTable as PuzzleIds
from ..models.act import ACTModel
from ..npyio import FileTooLarge, NotRegularFile, read_limited

MAX_NAME_FILE_BYTES = 64 << 20  # ARC-2's ~1.1M names take about 40 MB


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

    def spec(self, itemsize: int) -> PuzzleIds:
        """The manifest's `graph.puzzle_ids`: the runtime input contract and the sizes before / after the cut."""
        return PuzzleIds(
            dtype="int64",
            shape=("batch",),
            rows=self.rows,
            rows_before=self.rows_before,
            dim=self.dim,
            bytes_before=self.rows_before * self.dim * itemsize,
            bytes_after=self.rows * self.dim * itemsize,
            # a table with more than the blank row never answers without identifiers (the runtime's contract
            # allows a default row; tables of the blank row alone are graph constants, with no puzzle_ids input)
            default_row=None,
            named=self.names is not None,
            file="puzzle_ids",
        )


def select(
    spec: list[str | int] | str | None, model: ACTModel, data: str | None, split: str, base: Path
) -> PuzzleTable:
    """The rows `export.puzzle_ids` keeps. Names come from the dataset's identifiers.json; an identifier the
    dataset or the checkpoint does not have is a RecipeError (exit 2), never silently the blank one. A file of
    names (`export.puzzle_ids: FILE`) must lie inside the recipe's folder (`base`)."""
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
        ids = open_data(Path(data), split).used_identifiers()
    elif isinstance(spec, str):
        ids = _resolve(_name_file(base, spec), names, folder)
    else:
        ids = _resolve(((f"export.puzzle_ids[{i}] {w[:60]!r}" if isinstance(w, str) else "", w)
                        for i, w in enumerate(spec)), names, folder)  # fmt: skip
    if len(ids) and (ids.min() < 0 or ids.max() >= total):
        raise RecipeError(
            f"export.puzzle_ids: identifier {int(ids.max())} is beyond the checkpoint's puzzle table ({total} rows)",
            "keep identifiers of the dataset the model was trained on",
        )
    if not len(ids):
        raise RecipeError("export.puzzle_ids selects no identifier", "list at least one")
    kept = None if names is None else [names[i] if i < len(names) else f"#{i}" for i in ids.tolist()]
    return PuzzleTable(np.asarray(ids, np.int64), kept, total, dim)


def confined(base: Path, rel: str, what: str) -> Path:
    """`base / rel` for a file a recipe names: a relative path without `..`, no symbolic link on the way, inside
    the recipe's folder. The message names the path, never what the file holds."""
    fix = "put the file in the recipe's folder (or below it) and name it relative to the recipe"
    p = Path(rel)
    if not rel.strip() or p.is_absolute() or ".." in p.parts or rel.startswith("~"):
        raise RecipeError(f"{what} {rel[:100]!r} is not a path inside the recipe's folder", fix)
    cur = Path(base)
    for part in p.parts:
        cur = cur / part
        if cur.is_symlink():
            raise RecipeError(f"{what} {cur} is a symbolic link; edgekit does not follow links out of a recipe", fix)
    try:
        inside = cur.resolve().is_relative_to(Path(base).resolve())
    except (OSError, RuntimeError):
        inside = False
    if not inside:
        raise RecipeError(f"{what} {rel[:100]!r} is not inside the recipe's folder", fix)
    return cur


def _name_file(base: Path, rel: str) -> Iterator[tuple[str, str]]:
    """(where, name) per identifier line of `export.puzzle_ids: FILE` (blank lines and `#` comments skipped);
    `where` names the file and line, so no error ever quotes the file."""
    path = confined(base, rel, "export.puzzle_ids file")
    fix = "write one identifier name per line"
    try:
        text = read_limited(path, MAX_NAME_FILE_BYTES, nofollow=True).decode("utf-8")
    except FileNotFoundError:
        raise RecipeError(
            f"export.puzzle_ids file {path} does not exist", "paths in a recipe are relative to it"
        ) from None
    except NotRegularFile:
        raise RecipeError(
            f"export.puzzle_ids file {path} is not a regular file (a folder, a device or a pipe)", fix
        ) from None
    except FileTooLarge:
        raise RecipeError(
            f"export.puzzle_ids file {path} is over {MAX_NAME_FILE_BYTES >> 20} MiB",
            "list the identifiers a device serves",
        ) from None
    except UnicodeDecodeError as e:
        raise RecipeError(f"export.puzzle_ids file {path} is not UTF-8 text (byte {e.start})", fix) from None
    except OSError as e:
        raise RecipeError(f"cannot read export.puzzle_ids file {path}: {e.strerror}", fix) from None
    for n, line in enumerate(io.StringIO(text), 1):
        name = line.strip()
        if name and not line.startswith("#"):
            yield f"export.puzzle_ids file {path.name} line {n}", name


def _resolve(wanted: Iterable[tuple[str, str | int]], names: list[str] | None, folder: Path | None) -> np.ndarray:
    index = {n: i for i, n in enumerate(names)} if names is not None else {}
    out: set[int] = set()  # unique ids as they come: memory follows the table, not the length of a names file
    for where, w in wanted:
        if isinstance(w, int):
            out.add(w)
            continue
        if names is None:
            raise RecipeError(
                f"{where or 'export.puzzle_ids'}: names an identifier but task.data has no identifiers.json to look "
                "names up in",
                "point task.data at the reference dataset folder, or give identifier ids",
            )
        if w not in index:
            raise RecipeError(
                f"{where}: the name is not in {folder}/identifiers.json",
                "use names exactly as identifiers.json writes them",
            )
        out.add(index[w])
    return np.array(sorted(out), np.int64)


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
