"""Inputs from files for the device commands: `.npy`, `.npz` (its `inputs` array) or text, one example a line.

Arrays are read with `allow_pickle=False` (an object array is refused, never unpickled). Text lines are parsed by
a callable the caller passes (the artefact's task knows its text form: Sudoku strings, numbers otherwise); blank
lines and lines starting with '#' are skipped. Every problem is a one-line `RuntimeInputError`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import first_line
from .errors import RuntimeInputError

MAX_TEXT_BYTES = 1 << 30  # a text file of puzzles beyond 1 GiB is not what this reader is for


def read_inputs(path: str | Path, parse_line: Callable[[str], np.ndarray] | None = None) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise RuntimeInputError(f"--inputs {path}: no such file")
    suffix = path.suffix.lower()
    if suffix in (".npy", ".npz"):
        return _read_array(path, suffix)
    if parse_line is None:
        raise RuntimeInputError(f"--inputs {path}: pass a .npy or .npz array for this artefact")
    if path.stat().st_size > MAX_TEXT_BYTES:
        raise RuntimeInputError(f"--inputs {path} is over 1 GiB of text: save it as a .npy array instead")
    rows: list[np.ndarray] = []
    try:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                try:
                    rows.append(parse_line(line))
                except ValueError as e:
                    raise RuntimeInputError(f"{path.name} line {number}: {first_line(e, 120)}") from None
    except UnicodeDecodeError:
        raise RuntimeInputError(f"--inputs {path} is not UTF-8 text: pass text, .npy or .npz") from None
    if not rows:
        raise RuntimeInputError(f"--inputs {path} holds no examples")
    return np.stack(rows)


def _read_array(path: Path, suffix: str) -> np.ndarray:
    try:
        if suffix == ".npy":
            return np.asarray(np.load(path, allow_pickle=False))
        with np.load(path, allow_pickle=False) as z:
            names = list(z.files)
            if "inputs" in names:
                return np.asarray(z["inputs"])
            if len(names) == 1:
                return np.asarray(z[names[0]])
            raise RuntimeInputError(f"--inputs {path} has no 'inputs' array (it has: {', '.join(names)[:120]})")
    except RuntimeInputError:
        raise
    except (OSError, ValueError, EOFError) as e:
        raise RuntimeInputError(
            f"cannot read --inputs {path}: {first_line(e, 120)}; pass a numeric array saved "
            "with numpy.save / numpy.savez"
        ) from None
