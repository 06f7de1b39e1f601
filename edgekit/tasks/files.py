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
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EdgekitError
from ..npyio import FileTooLarge, NotRegularFile, load_npy, load_npz, npz_names, read_limited

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
    """One split's examples, memory-mapped: per set `inputs` / `labels` (one row per example), the puzzle
    identifiers (one per puzzle) and the puzzle offsets (`offsets[k][j]`: the first example of puzzle j; None: one
    puzzle per example). Per-example identifiers are looked up for the rows read, never built for the whole split
    (a split may declare a billion examples in a sparse file that takes no disk)."""

    source: str
    split: str
    meta: Meta
    inputs: list[np.ndarray]
    labels: list[np.ndarray]
    identifiers: list[np.ndarray]
    offsets: list[np.ndarray | None]
    sets: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return sum(len(x) for x in self.inputs)

    def _ids(self, k: int, local: np.ndarray) -> np.ndarray:
        off = self.offsets[k]
        if off is None:
            return np.asarray(self.identifiers[k][local])
        puzzle = np.searchsorted(off, local.astype(off.dtype), side="right") - 1
        return np.asarray(self.identifiers[k][puzzle])

    def rows(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(inputs int64, labels int64 with ignored positions = IGNORE, puzzle ids int64) of the examples at
        `index` (sorted), read from the memory maps set by set: only these rows are read, and their values are
        range-checked in the file's own dtype before any conversion (a uint64 token is never shown negative)."""
        offsets = np.cumsum([0] + [len(x) for x in self.inputs])
        xs, ys, ps = [], [], []
        for k in range(len(self.inputs)):
            local = index[(index >= offsets[k]) & (index < offsets[k + 1])] - offsets[k]
            if len(local):
                x, y, p = np.asarray(self.inputs[k][local]), np.asarray(self.labels[k][local]), self._ids(k, local)
                self._check_values(x, y, p)
                xs.append(x.astype(np.int64))
                ys.append(y.astype(np.int64))
                ps.append(p.astype(np.int64))
        x, y, p = np.concatenate(xs), np.concatenate(ys), np.concatenate(ps)
        if self.meta.ignore_label_id is not None:
            y[y == self.meta.ignore_label_id] = IGNORE
        return x, y, p

    def used_identifiers(self) -> np.ndarray:
        """The sorted identifiers of the puzzles that have examples (read in chunks)."""
        found: list[np.ndarray] = []
        for ids, off in zip(self.identifiers, self.offsets):
            for start in range(0, len(ids), CHUNK):
                part = np.asarray(ids[start : start + CHUNK])
                if off is not None:
                    part = part[np.diff(np.asarray(off[start : start + CHUNK + 1])) > 0]
                found.append(np.unique(part.astype(np.int64)))
        return np.unique(np.concatenate(found)) if found else np.zeros(0, np.int64)

    def _check_values(self, x: np.ndarray, y: np.ndarray, p: np.ndarray) -> None:
        v = self.meta.vocab_size
        where = f"{self.source} ({self.split} split)"
        bad = _outside(x, 0, v - 1)
        if bad is not None:
            raise DataError(f"{where}: an input token is {bad}, outside the vocabulary 0..{v - 1}", _REBUILD)
        ignore = self.meta.ignore_label_id
        sup = y if ignore is None else y[y != ignore]
        bad = _outside(sup, 0, v - 1)
        if bad is not None:
            raise DataError(f"{where}: a label is {bad}, outside the vocabulary 0..{v - 1}", _REBUILD)
        n = self.meta.num_puzzle_identifiers
        bad = _outside(p, 0, n - 1)
        if bad is not None:
            raise DataError(
                f"{where}: puzzle identifier {bad} is outside the {n} identifiers dataset.json declares", _REBUILD
            )


def _outside(a: np.ndarray, lo: int, hi: int) -> int | None:
    """The first value of `a` outside [lo, hi], compared in a's own dtype (as a Python int), or None."""
    if not a.size:
        return None
    low, high = a.min(), a.max()
    if int(low) < lo:
        return int(low)
    if int(high) > hi:
        return int(high)
    return None


_REBUILD = "rebuild the dataset with the reference builder, or fix the file named"
CHUNK = 1 << 20  # index arrays are checked this many entries at a time (bounded memory for any declared size)
MAX_SETS = 64  # reference builders write one set ("all"); each set keeps five memory maps open
MAX_EXAMPLES = 1 << 31
MAX_NPZ_BYTES = 2 << 30  # one .npz is read whole into memory: bigger datasets use the folder layout (memory-mapped)
MAX_NPY_BYTES = 1 << 40  # memory-mapped: what matters is that the file really holds what its header declares


def _inside(root: Path, path: Path, what: str) -> Path:
    """`path`, refused when it (or a link on the way) leads outside the dataset folder the recipe names: task.data
    may itself be a link, but nothing under it may point elsewhere."""
    try:
        real, top = path.resolve(strict=True), root.resolve(strict=True)
    except FileNotFoundError:
        return path  # the caller says what is missing
    except (OSError, RuntimeError):
        raise DataError(f"{path} goes through a loop of symbolic links", _REBUILD) from None
    if not real.is_relative_to(top):
        raise DataError(
            f"{path} is a symbolic link to {what} outside task.data {root}; edgekit reads only the folder named",
            "copy the data into the dataset folder",
        )
    return path


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
    if not _plain(split):
        raise DataError(f"split {split[:64]!r} is not a plain folder name", "set task.split to a split's folder name")
    folder = _inside(path, path / split, "a folder")
    if not (folder / "dataset.json").is_file():
        have = sorted(p.name for p in path.iterdir() if (p / "dataset.json").is_file())[:20]
        raise DataError(
            f"task.data {path} has no {split!r} split ({split}/dataset.json)",
            f"splits there: {', '.join(have) or 'none'}; set task.split / task.calibration_split to one of them",
        )
    info = _read_json(_inside(path, folder / "dataset.json", "a file"))
    meta = _meta(info, folder / "dataset.json")
    sets = info.get("sets", ["all"])
    if not isinstance(sets, list) or not sets or not all(isinstance(s, str) and _plain(s) for s in sets):
        raise DataError(f"{folder / 'dataset.json'}: 'sets' must be a list of plain set names", _REBUILD)
    if len(sets) > MAX_SETS or len(set(sets)) != len(sets):
        raise DataError(
            f"{folder / 'dataset.json'}: 'sets' lists {len(sets)} names ({len(set(sets))} distinct); a split holds "
            f"at most {MAX_SETS} distinct sets",
            _REBUILD,
        )
    out = Split(str(path), split, meta, [], [], [], [], sets)
    for s in sets:
        x = _npy(folder / f"{s}__inputs.npy", path)
        y = _npy(folder / f"{s}__labels.npy", path)
        for name, a in (("inputs", x), ("labels", y)):
            if a.ndim != 2 or a.shape[1] != meta.seq_len:
                raise DataError(
                    f"{folder}/{s}__{name}.npy has shape {list(a.shape)}, expected [examples, {meta.seq_len}] "
                    "(seq_len in dataset.json)",
                    _REBUILD,
                )
        if len(x) != len(y):
            raise DataError(f"{folder}/{s}: {len(x)} inputs but {len(y)} labels", _REBUILD)
        if len(x) > MAX_EXAMPLES:
            raise DataError(f"{folder}/{s}__inputs.npy declares {len(x)} examples (at most {MAX_EXAMPLES})", _REBUILD)
        ids, pidx, gidx = (_npy(folder / f"{s}__{n}.npy", path) for n in INDEX_FILES)
        if ids.ndim != 1:
            raise DataError(f"{folder}/{s}__puzzle_identifiers.npy has shape {list(ids.shape)}, expected [puzzles]")
        _check_index(pidx, len(x), f"{folder}/{s}__puzzle_indices.npy", "examples")
        if len(ids) != len(pidx) - 1:
            raise DataError(
                f"{folder}/{s}__puzzle_identifiers.npy holds {len(ids)} identifiers for the {len(pidx) - 1} puzzles "
                f"{s}__puzzle_indices.npy delimits",
                _REBUILD,
            )
        _check_index(gidx, len(ids), f"{folder}/{s}__group_indices.npy", "puzzles")
        out.inputs.append(x)
        out.labels.append(y)
        out.identifiers.append(ids)
        out.offsets.append(pidx)
    return out


def _open_npz(path: Path, split: str) -> Split:
    def error(m: str) -> DataError:
        return DataError(m, "save it with numpy.savez, or use the reference folder layout for large datasets")

    names = npz_names(path, error=error, what=f"cannot read {path}:")
    if not {"inputs", "labels"} <= set(names):
        raise DataError(f"{path} needs 'inputs' and 'labels' arrays (it has: {', '.join(sorted(names))[:100]})")
    z = load_npz(
        path, MAX_NPZ_BYTES, ("inputs", "labels", "puzzle_identifiers"), error=error, what=f"cannot read {path}:"
    )
    x, y = _numeric(z["inputs"], path, "inputs"), _numeric(z["labels"], path, "labels")
    p = _numeric(z["puzzle_identifiers"], path, "puzzle_identifiers") if "puzzle_identifiers" in z else None
    if x.ndim != 2 or y.shape != x.shape:
        raise DataError(f"{path}: inputs {list(x.shape)} and labels {list(y.shape)} must both be [examples, seq_len]")
    if p is None:
        p = np.zeros(len(x), np.int64)
    if p.shape != (len(x),):
        raise DataError(f"{path}: puzzle_identifiers has shape {list(p.shape)}, expected [{len(x)}]")
    for name, a in (("inputs", x), ("labels", y), ("puzzle_identifiers", p)):
        low = _outside(a, 0, 1 << 40)
        if low is not None:
            raise DataError(f"{path}: {name} holds {low}, expected non-negative ids", _REBUILD)
    vocab = int(max(x.max(initial=0), y.max(initial=0))) + 1
    meta = Meta(seq_len=x.shape[1], vocab_size=vocab, num_puzzle_identifiers=int(p.max(initial=0)) + 1)
    return Split(str(path), split, meta, [x], [y], [p], [None], ["npz"])


def _plain(name: str) -> bool:
    """A set name that is a file-name prefix and nothing else (no path separators, no dot-dot)."""
    return bool(name) and len(name) <= 64 and all(c.isalnum() or c in "_-" for c in name)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        info = json.loads(read_limited(path, MAX_JSON_BYTES).decode("utf-8"))
    except FileTooLarge:
        raise DataError(f"{path} is over 1 MiB, too large for a dataset.json", _REBUILD) from None
    except NotRegularFile:
        raise DataError(f"{path} is not a regular file", _REBUILD) from None
    except RecursionError:
        raise DataError(f"{path} nests too deeply to be a dataset.json", _REBUILD) from None
    except json.JSONDecodeError as e:
        raise DataError(f"{path} is not valid JSON (line {e.lineno}: {e.msg})", _REBUILD) from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {path}: {_reason(e)}", _REBUILD) from None
    if not isinstance(info, dict):
        raise DataError(f"{path} is not a JSON object", _REBUILD)
    return info


def _reason(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    if isinstance(e, UnicodeDecodeError):
        return f"not UTF-8 (byte {e.start})"
    return type(e).__name__


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
            shown = str(v) if isinstance(v, int) and not isinstance(v, bool) else f"a JSON {type(v).__name__}"
            raise DataError(f"{path}: {k} is {shown[:40]}, expected a non-negative integer", _REBUILD)
        values[k] = v
    if values["seq_len"] < 1 or values["vocab_size"] < 2:
        raise DataError(f"{path}: seq_len must be >= 1 and vocab_size >= 2", _REBUILD)
    return Meta(**values)


def _npy(path: Path, root: Path | None = None) -> np.ndarray:
    """A numeric .npy, memory-mapped after its header is checked against the file's real size (the bounded
    reader); object arrays, truncated files, other formats and links out of `root` are one line."""
    if root is not None:
        _inside(root, path, "a file")
    if not path.is_file():
        raise DataError(f"{path} is missing", _REBUILD)
    a = load_npy(path, MAX_NPY_BYTES, mmap=True, error=lambda m: DataError(m, _REBUILD), what=f"cannot read {path}:")
    return _numeric(a, path)


def _numeric(a: np.ndarray, path: Path, name: str | None = None) -> np.ndarray:
    if a.dtype.kind not in "iu":
        what = f"{path}: {name}" if name else str(path)
        raise DataError(f"{what} has dtype {a.dtype}, expected integer token ids", _REBUILD)
    return a


def _check_index(idx: np.ndarray, count: int, where: str, what: str) -> None:
    """CSR offsets: 1-D, start at 0, never decrease, end at `count` (so they cover every row exactly once), not
    (many) more entries than rows. Read in chunks, compared in the file's own dtype: any declared size is checked in
    bounded memory, and the message names the first bad entry and its position."""
    fix = f"offsets must run from 0 up to {count} without decreasing"
    if idx.ndim != 1 or len(idx) < 1:
        raise DataError(f"{where} must be a 1-D array of offsets", _REBUILD)
    if len(idx) - 1 > count + 1024:  # empty entries are possible, a file of mostly empty ones is not a dataset
        raise DataError(f"{where} delimits {len(idx) - 1} entries, far more than its {count} {what}", _REBUILD)
    prev = 0
    for start in range(0, len(idx), CHUNK):
        part = np.asarray(idx[start : start + CHUNK])
        out = (part > count) | (part < 0) if part.dtype.kind == "i" else part > count
        if out.any():
            i = int(np.argmax(out))
            raise DataError(
                f"{where}: offset {int(part[i])} at position {start + i} is outside 0..{count} (the {what}); {fix}",
                _REBUILD,
            )
        vals = part.astype(np.int64)  # in range now: exact
        steps = np.diff(vals, prepend=prev)
        if start == 0 and vals[0] != 0:
            raise DataError(f"{where}: the first offset is {int(vals[0])}, not 0 ({fix})", _REBUILD)
        if steps.min() < 0:
            i = int(np.argmax(steps < 0))
            before = int(vals[i - 1]) if i else prev
            raise DataError(
                f"{where}: offset {int(vals[i])} at position {start + i} is below the one before it ({before}); {fix}",
                _REBUILD,
            )
        prev = int(vals[-1])
    if prev != count:
        raise DataError(f"{where} does not cover the {count} {what}: the last offset is {prev}; {fix}", _REBUILD)


def take(data: Split, n: int, seed: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int] | None]:
    """The first n examples in file order (seed None: validation), or n drawn at random with `seed` (calibration
    and search sets). Returns inputs, labels, puzzle ids and the [start, stop) range when it is one."""
    total = len(data)
    if total == 0:
        raise DataError(f"the {data.split!r} split of {data.source} holds no examples", _REBUILD)
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


MAX_IDENTIFIERS_BYTES = 64 << 20  # ARC-2 builds hold ~1.1M names (about 40 MB)
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_FLAT_LIST = re.compile(r"\s*\[[\s,]*\]\s*")


def read_identifiers(root: Path) -> list[str]:
    """`ROOT/identifiers.json` (identifier id -> name, "<blank>" at 0) of a reference-layout dataset folder: a
    regular file inside the folder, read with a byte limit, and checked to be a flat list of strings before it is
    parsed (so a file of numbers or nested lists cannot make parsing cost many times its size)."""
    path = Path(root) / "identifiers.json"
    if path.is_symlink() or not path.is_file():
        raise DataError(f"{root} has no identifiers.json", _REBUILD)
    bad = DataError(f"{path} is not a list of identifier names", _REBUILD)
    try:
        text = read_limited(path, MAX_IDENTIFIERS_BYTES).decode("utf-8")
    except FileTooLarge:
        too_large = f"{path} is over {MAX_IDENTIFIERS_BYTES >> 20} MiB, too large for an identifiers.json"
        raise DataError(too_large, _REBUILD) from None
    except (OSError, NotRegularFile, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {path}: {_reason(e)}", _REBUILD) from None
    if not _FLAT_LIST.fullmatch(_STRING.sub("", text)):
        raise bad
    try:
        names = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        raise DataError(f"cannot read {path}: {type(e).__name__}", _REBUILD) from None
    if not isinstance(names, list) or not all(isinstance(n, str) and len(n) <= 1024 for n in names):
        raise bad
    return names
