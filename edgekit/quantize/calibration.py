"""Calibration data from full recursion trajectories, cached by content hash.

A step graph sees very different states at step 1 (the fixed initial state) and step 16 (near a fixed point),
so calibrating on first steps only mis-sizes the ranges the later steps need. Each item is one step's graph
inputs for a small batch, gathered from PyTorch float32 rollouts over every step.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import progress
from ..artefact import OutputError
from ..models.base import RecursiveModel


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


def cache_key(*parts: object) -> str:
    """Content hash over everything that changes the result (model hash, data, settings, versions)."""
    import nncf
    import onnx

    blob = json.dumps([*map(str, parts), torch.__version__, onnx.__version__, nncf.__version__], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


@torch.no_grad()
def trajectory_items(model: RecursiveModel, inputs: np.ndarray, batch: int) -> list[dict[str, np.ndarray]]:
    """Step-graph feeds {state..., x} at every recursion step of every sample (float32)."""
    items: list[dict[str, np.ndarray]] = []
    names = list(model.state_names)
    with progress.task("calibration trajectories", len(inputs)) as bar:
        for i in range(0, len(inputs), batch):
            x = model.encode(torch.from_numpy(inputs[i : i + batch]))
            state = model.initial_state(x)
            for _ in range(model.step_budget):
                items.append({**{n: s.float().numpy() for n, s in zip(names, state)}, "x": x.float().numpy()})
                state = model.step(state, x)
            bar.advance(len(inputs[i : i + batch]))
    return items


def cached_items(key: str, make) -> tuple[list[dict[str, np.ndarray]], bool]:
    """Load calibration items for `key` from the cache, or make and store them. Returns (items, was_cached)."""
    path = cache_file("calibration", f"{key}.npz")
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                n = int(z["count"])
                names = [str(s) for s in z["names"]]
                return [{k: z[f"{j}/{k}"] for k in names} for j in range(n)], True
        except (OSError, KeyError, ValueError, EOFError):
            path.unlink(missing_ok=True)  # a damaged cache entry is rebuilt, never trusted
    items = make()
    arrays = {f"{j}/{k}": v for j, it in enumerate(items) for k, v in it.items()}
    write_cache(path, lambda tmp: np.savez(tmp, count=len(items), names=np.array(list(items[0])), **arrays))
    return items, False
