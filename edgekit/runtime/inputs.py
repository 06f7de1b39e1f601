"""Inputs from files for the device commands: `.npy`, `.npz` (its `inputs` array) or text, one example a line.

Every file is untrusted: it must be a regular file (a FIFO or a device is refused before a byte is read). Arrays
go through the bounded reader (`edgekit.npyio`: header checked against the file's size and MAX_ARRAY_BYTES before
anything is allocated, object arrays refused, never unpickled). Text is read with a byte limit, line by line with a
per-line limit, and parsed by a callable the caller passes (the artefact's task knows its text form: Sudoku
strings, numbers otherwise); blank lines and lines starting with '#' are skipped; an error names the line number,
never its text. Every problem is a one-line `RuntimeInputError`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import first_line
from ..npyio import NotRegularFile, load_npy, load_npz, npz_names, open_regular
from .errors import RuntimeInputError

MAX_ARRAY_BYTES = 1 << 30  # an input array beyond 1 GiB is many batches: split it
MAX_TEXT_BYTES = 64 << 20  # parsed text takes many times its size in memory: larger inputs belong in a .npy
MAX_LINE_BYTES = 1 << 20  # one example: ARC's 900 tokens take a few KB


def read_inputs(path: str | Path, parse_line: Callable[[str], np.ndarray] | None = None) -> np.ndarray:
    path = Path(path)
    if not path.exists():
        raise RuntimeInputError(f"--inputs {path}: no such file")
    suffix = path.suffix.lower()
    if suffix in (".npy", ".npz"):
        return _read_array(path, suffix)
    if parse_line is None:
        raise RuntimeInputError(f"--inputs {path}: pass a .npy or .npz array for this artefact")
    return _read_text(path, parse_line)


def _read_text(path: Path, parse_line: Callable[[str], np.ndarray]) -> np.ndarray:
    rows: list[np.ndarray] = []
    try:
        f = open_regular(path)
    except OSError as e:
        raise RuntimeInputError(f"cannot read --inputs {path}: {e.strerror}") from None
    except NotRegularFile:
        raise RuntimeInputError(f"--inputs {path} is not a regular file (a folder, a device or a pipe)") from None
    with f:
        total = 0
        for number, raw in enumerate(iter(lambda: f.readline(MAX_LINE_BYTES + 1), b""), 1):
            total += len(raw)
            if total > MAX_TEXT_BYTES:
                raise RuntimeInputError(
                    f"--inputs {path} is over {MAX_TEXT_BYTES >> 20} MiB of text: save it as a .npy array instead"
                )
            if len(raw) > MAX_LINE_BYTES:
                raise RuntimeInputError(
                    f"{path.name} line {number} is over {MAX_LINE_BYTES >> 20} MiB: not one example"
                )
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise RuntimeInputError(
                    f"{path.name} line {number} is not UTF-8 text: pass text, .npy or .npz"
                ) from None
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                rows.append(parse_line(line))
            except ValueError as e:
                raise RuntimeInputError(f"{path.name} line {number}: {first_line(e, 120)}") from None
    if not rows:
        raise RuntimeInputError(f"--inputs {path} holds no examples")
    try:
        return np.stack(rows)
    except ValueError:
        raise RuntimeInputError(f"--inputs {path}: the lines parse to examples of different lengths") from None


def _error(path: Path) -> Callable[[str], RuntimeInputError]:
    def make(message: str) -> RuntimeInputError:
        return RuntimeInputError(f"{message}; pass a numeric array saved with numpy.save / numpy.savez")

    return make


def _read_array(path: Path, suffix: str) -> np.ndarray:
    what = f"--inputs {path}"
    if suffix == ".npy":
        return load_npy(path, MAX_ARRAY_BYTES, error=_error(path), what=what)
    names = npz_names(path, error=_error(path), what=what)
    if "inputs" in names:
        key = "inputs"
    elif len(names) == 1:
        key = names[0]
    else:
        shown = ", ".join(repr(n)[:40] for n in names[:8])
        raise RuntimeInputError(f"{what} has no 'inputs' array (it has: {shown[:120]})")
    return load_npz(path, MAX_ARRAY_BYTES, (key,), error=_error(path), what=what)[key]
