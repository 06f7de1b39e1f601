"""Puzzle identifiers at run time: original ids or names -> rows of the artefact's (possibly cut) table.

`graph.puzzle_ids` in the manifest is the contract (rows kept, rows before the cut, whether rows are named);
`puzzle_ids.npz` holds each row's original identifier (ascending) and name. An identifier outside the map is a
one-line RuntimeInputError: ARC models answer ~0 % with a wrong or blank identifier, so nothing is ever mapped
silently to the blank one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..manifest import PuzzleTable
from ..npyio import load_npz
from .errors import ArtefactError, RuntimeInputError

MAX_BYTES = 1 << 30  # ARC-2's ~1.1M kept rows take ~50 MB (ids and names)


def _damaged(message: str) -> ArtefactError:
    return ArtefactError(f"{message}: re-run `edgekit export` (the artefact is damaged)")


class PuzzleMap:
    """Reads puzzle_ids.npz once; names are indexed on first use (an ARC-2 table names ~1M rows)."""

    def __init__(self, spec: PuzzleTable, path: Path) -> None:
        self.spec = spec
        self.rows = int(spec.rows)
        z = load_npz(path, MAX_BYTES, ("original", "names"), kinds="iuS", error=_damaged, what="puzzle_ids.npz")
        if "original" not in z:
            raise ArtefactError("puzzle_ids.npz has no 'original' array: re-run `edgekit export`")
        self.original = z["original"]
        self._names = z.get("names")
        if self.original.dtype != np.int64 or self.original.shape != (self.rows,):
            raise ArtefactError(f"puzzle_ids.npz does not map the {self.rows} rows the manifest declares")
        if self.rows > 1 and np.any(np.diff(self.original) <= 0):
            raise ArtefactError("puzzle_ids.npz: original identifiers are not ascending: re-run `edgekit export`")
        if self._names is not None and (self._names.dtype.kind != "S" or self._names.shape != (self.rows,)):
            raise ArtefactError("puzzle_ids.npz: names are not one byte string per row: re-run `edgekit export`")
        self._index: dict[str, int] | None = None

    def name(self, row: int) -> str | None:
        return None if self._names is None else self._names[row].decode("utf-8", "replace")

    def to_rows(self, ids: Any, n: int) -> np.ndarray:
        """Rows for `n` samples from original ids (integers) or names (strings); one value serves every sample."""
        if ids is None:
            default = self.spec.default_row
            if default is None:
                raise RuntimeInputError(
                    f"this model takes a puzzle identifier per sample ({self.rows} kept of "
                    f"{self.spec.rows_before}); pass puzzle_ids (ids or names)"
                )
            return np.full(n, int(default), np.int64)
        a = np.asarray(ids)
        if a.ndim == 0:
            a = np.full(n, a.item(), dtype=a.dtype if a.dtype.kind in "iuUS" else object)
        if a.ndim != 1 or len(a) != n:
            raise RuntimeInputError(f"puzzle_ids has shape {list(a.shape)}, expected [{n}] (one per sample)")
        if a.dtype.kind in "US" or (a.dtype == object and all(isinstance(v, str) for v in a)):
            return self._rows_by_name([str(v) if not isinstance(v, bytes) else v.decode() for v in a])
        if a.dtype == bool or a.dtype.kind not in "iu":
            raise RuntimeInputError(f"puzzle_ids have dtype {a.dtype}, expected integer ids or names")
        a = a.astype(np.int64)
        pos = np.clip(np.searchsorted(self.original, a), 0, self.rows - 1)
        bad = self.original[pos] != a
        if bad.any():
            raise RuntimeInputError(
                f"puzzle identifier {int(a[bad][0])} is not in this artefact's puzzle table ({self.rows} of "
                f"{self.spec.rows_before} identifiers were kept at export); re-export with it in export.puzzle_ids"
            )
        return pos.astype(np.int64)

    def _rows_by_name(self, names: list[str]) -> np.ndarray:
        if self._names is None:
            raise RuntimeInputError("this artefact's puzzle table has no names; pass identifier ids")
        if self._index is None:
            self._index = {self.name(i) or "": i for i in range(self.rows)}
        out = np.empty(len(names), np.int64)
        for k, nm in enumerate(names):
            row = self._index.get(nm)
            if row is None:
                raise RuntimeInputError(
                    f"puzzle identifier {nm[:60]!r} is not in this artefact's puzzle table ({self.rows} kept); "
                    "re-export with it in export.puzzle_ids"
                )
            out[k] = row
        return out
