"""The content-addressed cache every stage shares (`$EDGEKIT_CACHE`, default ~/.cache/edgekit): calibration items,
search results, reference rollouts. Entries are written atomically and a damaged one is discarded and rebuilt,
never trusted; an unusable cache folder or a full disk is one line (exit 2)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from .artefact import OutputError

T = TypeVar("T")


def cache_dir() -> Path:
    return Path(os.environ.get("EDGEKIT_CACHE", Path.home() / ".cache" / "edgekit")).expanduser()


def cache_file(kind: str, name: str) -> Path:
    """A cache entry's path, its folder created; an unusable cache folder is one line (exit 2), not a traceback."""
    folder = cache_dir() / kind
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(
            f"the cache folder {folder} cannot be created ({e.strerror})", "set EDGEKIT_CACHE to a writable folder"
        ) from None
    return folder / name


def read_json_cache(path: Path) -> Any:
    """A cached JSON result, or None when absent; a damaged entry is removed (and rebuilt by the caller)."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        path.unlink(missing_ok=True)
        return None


def read_npz_cache(path: Path, decode: Callable[[Any], T]) -> T | None:
    """A cached .npz decoded by `decode(npz)` (arrays read inside it), or None when absent; a damaged entry
    (unreadable, or without a key `decode` needs) is removed, so the caller rebuilds it, never trusts it."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return decode(z)
    except (OSError, KeyError, ValueError, EOFError):
        path.unlink(missing_ok=True)
        return None


def write_cache(path: Path, write: Callable[[Path], None]) -> None:
    """Write a cache entry through a temporary file and an atomic rename; a full or read-only disk is one line."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise OutputError(
            f"cannot write the cache entry {path} ({e.strerror})",
            "free disk space or set EDGEKIT_CACHE to a writable folder",
        ) from None
