"""Task data from files: dataset folders in the layout the reference builders write, or one `.npz`.

Reference layout (`dataset/build_{sudoku,maze,arc}_dataset.py` of sapientinc/HRM and TinyRecursiveModels):
`ROOT/<split>/dataset.json` plus, for each `<set>` it lists, `<set>__inputs.npy`, `<set>__labels.npy`,
`<set>__puzzle_identifiers.npy`, `<set>__puzzle_indices.npy`, `<set>__group_indices.npy`; `ROOT/identifiers.json`.
Examples are taken in file order (sets in the order `dataset.json` lists them), as the reference evaluation
iterates a test split, so `task.n: N` measures the same N examples the reference's first N would.

Every file is untrusted: `.npy` files are memory-mapped with `allow_pickle=False` (an object array is refused,
never unpickled), JSON files are size-bounded, index arrays are checked against the example arrays, and only
the examples a stage uses are read and range-checked. Problems are one-line `DataError`s (exit 2).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EdgekitError

IGNORE = -100  # labels the metrics skip: the reference maps `ignore_label_id` to -100 the same way
MAX_JSON_BYTES = 1 << 20
INDEX_FILES = ("puzzle_identifiers", "puzzle_indices", "group_indices")
FIELDS = ("seq_len", "vocab_size", "pad_id", "ignore_label_id", "blank_identifier_id", "num_puzzle_identifiers")


class DataError(EdgekitError):
    """A dataset file is missing, malformed, or does not fit the model."""


@dataclass(frozen=True)
class Meta:
    """The fields of a split's dataset.json edgekit uses (the reference's PuzzleDatasetMetadata)."""

    seq_len: int
    vocab_size: int
    pad_id: int = 0
    ignore_label_id: int | None = None
    blank_identifier_id: int = 0
    num_puzzle_identifiers: int = 1


@dataclass
class Split:
    """One split's examples, memory-mapped: `inputs` / `labels` per set, per-example puzzle identifiers."""

    source: str
    split: str
    meta: Meta
    inputs: list[np.ndarray]
    labels: list[np.ndarray]
    puzzle_ids: list[np.ndarray]
    sets: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return sum(len(x) for x in self.inputs)

    def rows(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(inputs int64, labels int64 with ignored positions = IGNORE, puzzle ids int64) of the examples at
        `index` (sorted), read from the memory maps set by set: only these rows are read."""
        offsets = np.cumsum([0] + [len(x) for x in self.inputs])
        xs, ys, ps = [], [], []
        for k in range(len(self.inputs)):
            local = index[(index >= offsets[k]) & (index < offsets[k + 1])] - offsets[k]
            if len(local):
                xs.append(np.asarray(self.inputs[k][local], dtype=np.int64))
                ys.append(np.asarray(self.labels[k][local], dtype=np.int64))
                ps.append(np.asarray(self.puzzle_ids[k][local], dtype=np.int64))
        x, y, p = np.concatenate(xs), np.concatenate(ys), np.concatenate(ps)
        if self.meta.ignore_label_id is not None:
            y[y == self.meta.ignore_label_id] = IGNORE
        self._check_values(x, y, p)
        return x, y, p

    def _check_values(self, x: np.ndarray, y: np.ndarray, p: np.ndarray) -> None:
        v = self.meta.vocab_size
        where = f"{self.source} ({self.split} split)"
        if x.min() < 0 or x.max() >= v:
            bad = int(x.max() if x.max() >= v else x.min())
            raise DataError(f"{where}: an input token is {bad}, outside the vocabulary 0..{v - 1}", _REBUILD)
        sup = y[y != IGNORE]
        if len(sup) and (sup.min() < 0 or sup.max() >= v):
            bad = int(sup.max() if sup.max() >= v else sup.min())
            raise DataError(f"{where}: a label is {bad}, outside the vocabulary 0..{v - 1}", _REBUILD)
        if len(p) and (p.min() < 0 or p.max() >= self.meta.num_puzzle_identifiers):
            raise DataError(
                f"{where}: puzzle identifier {int(p.max() if p.max() >= 0 else p.min())} is outside the "
                f"{self.meta.num_puzzle_identifiers} identifiers dataset.json declares",
                _REBUILD,
            )


_REBUILD = "rebuild the dataset with the reference builder, or fix the file named"


def open_data(path: Path, split: str) -> Split:
    """A split of a reference-layout folder, or the arrays of one `.npz` (which has no splits: `split` must be
    the one it is read as, and the caller keeps calibration apart by other means)."""
    path = Path(path)
    if path.is_file() and path.suffix == ".npz":
        return _open_npz(path, split)
    if not path.is_dir():
        raise DataError(
            f"task.data {path} is neither a dataset folder nor a .npz file",
            "point task.data at the folder the reference builder wrote (it holds train/ and test/)",
        )
    folder = path / split
    if not (folder / "dataset.json").is_file():
        have = sorted(p.name for p in path.iterdir() if (p / "dataset.json").is_file())
        raise DataError(
            f"task.data {path} has no {split!r} split ({split}/dataset.json)",
            f"splits there: {', '.join(have) or 'none'}; set task.split / task.calibration_split to one of them",
        )
    info = _read_json(folder / "dataset.json")
    meta = _meta(info, folder / "dataset.json")
    sets = info.get("sets", ["all"])
    if not isinstance(sets, list) or not sets or not all(isinstance(s, str) and _plain(s) for s in sets):
        raise DataError(f"{folder / 'dataset.json'}: 'sets' must be a list of plain set names", _REBUILD)
    out = Split(str(path), split, meta, [], [], [], sets)
    for s in sets:
        x = _npy(folder / f"{s}__inputs.npy")
        y = _npy(folder / f"{s}__labels.npy")
        for name, a in (("inputs", x), ("labels", y)):
            if a.ndim != 2 or a.shape[1] != meta.seq_len:
                raise DataError(
                    f"{folder}/{s}__{name}.npy has shape {list(a.shape)}, expected [examples, {meta.seq_len}] "
                    "(seq_len in dataset.json)",
                    _REBUILD,
                )
        if len(x) != len(y):
            raise DataError(f"{folder}/{s}: {len(x)} inputs but {len(y)} labels", _REBUILD)
        ids, pidx, gidx = (np.asarray(_npy(folder / f"{s}__{n}.npy")) for n in INDEX_FILES)
        _check_index(pidx, len(x), f"{folder}/{s}__puzzle_indices.npy", "examples")
        _check_index(gidx, len(ids), f"{folder}/{s}__group_indices.npy", "puzzles")
        if ids.ndim != 1 or len(ids) != len(pidx) - 1:
            raise DataError(
                f"{folder}/{s}__puzzle_identifiers.npy holds {ids.size} identifiers for {len(pidx) - 1} puzzles",
                _REBUILD,
            )
        out.inputs.append(x)
        out.labels.append(y)
        counts = np.diff(pidx.astype(np.int64)).astype(np.int64)
        out.puzzle_ids.append(np.repeat(ids.astype(np.int64), counts))
    return out


def _open_npz(path: Path, split: str) -> Split:
    try:
        z = np.load(path, allow_pickle=False, mmap_mode="r")
        names = set(z.files)
        if not {"inputs", "labels"} <= names:
            raise DataError(f"{path} needs 'inputs' and 'labels' arrays (it has: {', '.join(sorted(names))[:100]})")
        x, y = _numeric(np.asarray(z["inputs"]), path, "inputs"), _numeric(np.asarray(z["labels"]), path, "labels")
        p = None
        if "puzzle_identifiers" in names:
            p = _numeric(np.asarray(z["puzzle_identifiers"]), path, "puzzle_identifiers")
    except DataError:
        raise
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"cannot read {path}: {str(e).splitlines()[0][:100]}", "save it with numpy.savez") from None
    if x.ndim != 2 or y.shape != x.shape:
        raise DataError(f"{path}: inputs {list(x.shape)} and labels {list(y.shape)} must both be [examples, seq_len]")
    if p is None:
        p = np.zeros(len(x), np.int64)
    if p.shape != (len(x),):
        raise DataError(f"{path}: puzzle_identifiers has shape {list(p.shape)}, expected [{len(x)}]")
    vocab = int(max(x.max(initial=0), y.max(initial=0))) + 1
    meta = Meta(seq_len=x.shape[1], vocab_size=vocab, num_puzzle_identifiers=int(p.max(initial=0)) + 1)
    return Split(str(path), split, meta, [x], [y], [p.astype(np.int64)], ["npz"])


def _plain(name: str) -> bool:
    """A set name that is a file-name prefix and nothing else (no path separators, no dot-dot)."""
    return bool(name) and len(name) <= 64 and all(c.isalnum() or c in "_-" for c in name)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise DataError(f"{path} is over 1 MiB, too large for a dataset.json", _REBUILD)
        info = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"cannot read {path}: {str(e).splitlines()[0][:100]}", _REBUILD) from None
    if not isinstance(info, dict):
        raise DataError(f"{path} is not a JSON object", _REBUILD)
    return info


def _meta(info: dict[str, Any], path: Path) -> Meta:
    missing = [k for k in ("seq_len", "vocab_size") if k not in info]
    if missing:
        raise DataError(f"{path} lacks {', '.join(missing)}", _REBUILD)
    values: dict[str, Any] = {}
    for k in FIELDS:
        if k not in info:
            continue
        v = info[k]
        if k == "ignore_label_id" and v is None:
            values[k] = None
            continue
        if not isinstance(v, int) or isinstance(v, bool) or not (0 <= v <= 1 << 40):
            raise DataError(f"{path}: {k} is {str(v)[:40]!r}, expected a non-negative integer", _REBUILD)
        values[k] = v
    if values["seq_len"] < 1 or values["vocab_size"] < 2:
        raise DataError(f"{path}: seq_len must be >= 1 and vocab_size >= 2", _REBUILD)
    return Meta(**values)


def _npy(path: Path) -> np.ndarray:
    """A numeric .npy, memory-mapped; object arrays, truncated files and other formats are one line."""
    if not path.is_file():
        raise DataError(f"{path} is missing", _REBUILD)
    try:
        a = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        reason = str(e).splitlines()[0][:100] if str(e) else type(e).__name__
        if "pickle" in reason.lower() or "object" in reason.lower():
            reason = "it is not a numeric .npy array (reading it would take unpickling, which edgekit never does)"
        raise DataError(f"cannot read {path}: {reason}", _REBUILD) from None
    if not isinstance(a, np.ndarray):
        raise DataError(f"{path} is not a single .npy array", _REBUILD)
    return _numeric(a, path)


def _numeric(a: np.ndarray, path: Path, name: str | None = None) -> np.ndarray:
    if a.dtype.kind not in "iu":
        what = f"{path}: {name}" if name else str(path)
        raise DataError(f"{what} has dtype {a.dtype}, expected integer token ids", _REBUILD)
    return a


def _check_index(idx: np.ndarray, count: int, where: str, what: str) -> None:
    """CSR offsets: 1-D, start at 0, never decrease, end at `count` (so they cover every row exactly once)."""
    if idx.ndim != 1 or len(idx) < 1:
        raise DataError(f"{where} must be a 1-D array of offsets", _REBUILD)
    i = idx.astype(np.int64)
    if i[0] != 0 or i[-1] != count or np.any(np.diff(i) < 0):
        raise DataError(
            f"{where} does not cover the {count} {what} (offsets must run from 0 up to {count}; "
            f"they run {int(i[0])}..{int(i[-1])})",
            _REBUILD,
        )


def take(data: Split, n: int, seed: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int] | None]:
    """The first n examples in file order (seed None: validation), or n drawn at random with `seed` (calibration
    and search sets). Returns inputs, labels, puzzle ids and the [start, stop) range when it is one."""
    total = len(data)
    if n > total and seed is None:
        raise DataError(
            f"task.n is {n} but the {data.split!r} split of {data.source} holds {total} examples",
            f"set task.n to at most {total}",
        )
    if n > total:
        raise DataError(
            f"{n} calibration / search examples were asked of the {data.split!r} split of {data.source}, which "
            f"holds {total}",
            "lower validate.halt_calibration_n, quantize.calibration.n or quantize.search.n to at most that",
        )
    if seed is None:
        index = np.arange(n)
        span: list[int] | None = [0, n]
    else:
        index = np.sort(np.random.default_rng(seed).choice(total, size=n, replace=False))
        span = None
    x, y, p = data.rows(index)
    return x, y, p, span


def write_reference_layout(
    root: Path,
    splits: dict[str, tuple[np.ndarray, np.ndarray]],
    vocab_size: int,
    ignore_label_id: int | None = 0,
) -> None:
    """Write (inputs, labels) per split in the reference builders' layout: one puzzle and one group per example,
    every puzzle identifier the blank one (Sudoku and Maze datasets without augmentation look like this)."""
    root = Path(root)
    for name, (x, y) in splits.items():
        folder = root / name
        os.makedirs(folder, exist_ok=True)
        n, seq = x.shape
        np.save(folder / "all__inputs.npy", x.astype(np.uint8))
        np.save(folder / "all__labels.npy", y.astype(np.uint8))
        np.save(folder / "all__puzzle_identifiers.npy", np.zeros(n, np.int32))
        np.save(folder / "all__puzzle_indices.npy", np.arange(n + 1, dtype=np.int32))
        np.save(folder / "all__group_indices.npy", np.arange(n + 1, dtype=np.int32))
        info = {
            "pad_id": 0,
            "ignore_label_id": ignore_label_id,
            "blank_identifier_id": 0,
            "vocab_size": vocab_size,
            "seq_len": seq,
            "num_puzzle_identifiers": 1,
            "total_groups": n,
            "mean_puzzle_examples": 1.0,
            "total_puzzles": n,
            "sets": ["all"],
        }
        (folder / "dataset.json").write_text(json.dumps(info))
    (root / "identifiers.json").write_text(json.dumps(["<blank>"]))


MAX_IDENTIFIERS_BYTES = 1 << 30  # ARC-2 builds hold ~1.1M names (tens of MB); far below this


def read_identifiers(root: Path) -> list[str]:
    """`ROOT/identifiers.json` (identifier id -> name, "<blank>" at 0) of a reference-layout dataset folder."""
    path = Path(root) / "identifiers.json"
    if path.is_symlink() or not path.is_file():
        raise DataError(f"{root} has no identifiers.json", _REBUILD)
    if path.stat().st_size > MAX_IDENTIFIERS_BYTES:
        raise DataError(f"{path} is over 1 GiB, too large for an identifiers.json", _REBUILD)
    try:
        names = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise DataError(f"cannot read {path}: {str(e).splitlines()[0][:100]}", _REBUILD) from None
    if not isinstance(names, list) or not all(isinstance(n, str) and len(n) <= 1024 for n in names):
        raise DataError(f"{path} is not a list of identifier names", _REBUILD)
    return names
