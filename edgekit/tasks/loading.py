"""Recipe task settings -> TaskData from `task.data`, keeping validation and calibration examples apart, and the
check of a dataset against the model it is meant for (before any heavy work)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import TaskData, TaskSettings
from .files import DataError, Meta, Split, open_data, take


def _split(path: str, name: str) -> Split:
    """Opened per call (memory maps and index checks are cheap), so a file changed between stages is seen."""
    return open_data(Path(path), name)


def calibration_size(settings: TaskSettings) -> int | None:
    """How many examples calibration and search sets can draw from (`task.calibration_split`, or a `.npz`'s
    examples after the first `task.n`); None when the task generates its examples (no limit)."""
    if not settings.data:
        return None
    is_npz = settings.data.endswith(".npz")
    total = len(_split(settings.data, "npz" if is_npz else settings.calibration_split))
    return max(total - settings.n, 0) if is_npz else total


def load_files(settings: TaskSettings, n: int, seed: int, split: str) -> TaskData:
    """Validation ("test"): the first n examples of `task.split` in file order. Calibration, halting-threshold
    and search sets ("train"): n drawn with `seed` from `task.calibration_split`; from one `.npz`, which has
    no splits, they are drawn from the examples after the first `task.n`, never from the validation ones."""
    assert settings.data is not None
    path = settings.data
    is_npz = path.endswith(".npz")
    name = settings.split if split == "test" else settings.calibration_split
    data = _split(path, "npz" if is_npz else name)
    total = len(data)
    if split == "test":
        x, y, p, span = take(data, n, None)
        what = f"the first {n} examples"
    elif is_npz:
        rest = total - settings.n
        if n > rest:
            raise DataError(
                f"{path} holds {total} examples: {settings.n} for validation leave {rest} for calibration and "
                f"search, which need {n}",
                "use a dataset folder with a train split, or lower task.n or the calibration / search n",
            )
        index = settings.n + np.sort(np.random.default_rng(seed).choice(rest, size=n, replace=False))
        x, y, p = data.rows(index)
        span, what = None, f"{n} examples drawn (seed {seed}) after the first {settings.n}"
    else:
        x, y, p, span = take(data, n, seed)
        what = f"{n} examples drawn with seed {seed}"
    source = {"data": path, "split": "npz" if is_npz else name, "examples": span or what, "of": total}
    where = Path(path).name if is_npz else f"{Path(path).name}/{name}"
    return TaskData(x, y, f"{what} of {where} ({total} in all)", source, data.meta, p)


def check_declared(settings: TaskSettings, seq_len: int, vocab_size: int) -> None:
    """What the validation split's dataset.json declares against the model, before any example is read (so a
    user with the wrong dataset hears that first, not that task.n is too large for it)."""
    if settings.data and not settings.data.endswith(".npz"):
        check_meta(_split(settings.data, settings.split).meta, settings.data, seq_len, vocab_size)


def check_meta(meta: Meta, src: str, seq_len: int, vocab_size: int) -> None:
    if meta.seq_len != seq_len:
        raise DataError(
            f"{src}: examples have seq_len {meta.seq_len}, the model takes {seq_len}",
            "use the dataset the model was trained on (or a model trained for this one)",
        )
    declared = "declares" if not src.endswith(".npz") else "uses tokens up to"
    if (meta.vocab_size != vocab_size and not src.endswith(".npz")) or meta.vocab_size > vocab_size:
        raise DataError(
            f"{src} {declared} vocab_size {meta.vocab_size}, the model has {vocab_size}",
            "use the dataset the model was trained on",
        )


def check_fits(data: TaskData, seq_len: int, vocab_size: int, num_puzzle_identifiers: int) -> None:
    """A dataset the model cannot take is refused here, with the value that disagrees, not later by a shape
    error inside validation."""
    if data.meta is None:
        return
    src = data.source["data"] if data.source else "task.data"
    meta = data.meta
    check_meta(meta, src, seq_len, vocab_size)
    ids = data.puzzle_ids
    if ids is not None and len(ids):
        top = int(ids.max())
        if top >= num_puzzle_identifiers:
            raise DataError(
                f"{src}: puzzle identifier {top} is beyond the checkpoint's puzzle-embedding table "
                f"({num_puzzle_identifiers} row{'s' if num_puzzle_identifiers != 1 else ''})",
                "use the dataset the model was trained on",
            )
        if num_puzzle_identifiers == 1 and np.any(ids != 0):
            raise DataError(
                f"{src}: examples carry puzzle identifiers, but the model has no puzzle-embedding table",
                "use the dataset the model was trained on",
            )
