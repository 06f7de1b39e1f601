"""The one reader of an artefact folder's manifest.json, used by every command (runtime, verify, info, bench, serve,
check, plan, validate, tune). Artefact folders travel from CI machines to devices, so the manifest is untrusted
input: this module reads it with size bounds (a regular file, not a symlink, of at most 16 MiB of UTF-8 JSON; no
NaN / Infinity, no integer beyond 20 digits) and checks the folder side (every component of a file path a safe name,
no `.`/`..` or absolute paths, every listed file inside the folder and not a symlink, no symlink anywhere in the
folder); the document's own checks and its typed form are `edgekit.manifest` (`Manifest.from_json`).
Anything else is an `ArtefactError` with one line naming the problem.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..manifest import (  # re-exported: the runtime's names for the manifest's rules
    MAX_DEPTH_FACTOR,
    MAX_STEPS,
    SAFE,
    Manifest,
    defaults_digest,
    escape_text,
    escape_tree,
    need,
    short,
)
from .errors import ArtefactError

__all__ = [
    "MAX_DEPTH_FACTOR",
    "MAX_STEPS",
    "SAFE",
    "Manifest",
    "defaults_digest",
    "escape_text",
    "escape_tree",
    "load_manifest",
    "read_manifest",
    "safe_path",
]

MAX_BYTES = 16 << 20
MAX_INT_DIGITS = 20
MAX_ENTRIES = 10_000


def safe_path(folder: Path, rel: object) -> Path:
    """`folder / rel` for a manifest file entry: relative, safe names, inside the folder, no symlink on the way."""
    need(isinstance(rel, str) and 0 < len(rel) <= 512, f"file entry {short(rel)} is not a relative path")
    assert isinstance(rel, str)
    parts = rel.split("/")
    need(
        all(SAFE.match(p) and p not in (".", "..") for p in parts),
        f"file entry {short(rel)} is not a plain path inside the artefact",
    )
    path, cur = folder.joinpath(*parts), folder
    for p in parts:
        cur = cur / p
        need(not cur.is_symlink(), f"{short(rel)} is a symbolic link; artefact files must be regular files")
    need(not path.exists() or path.is_file(), f"{short(rel)} is not a regular file")
    return path


def _no_links(folder: Path) -> None:
    """No symbolic link anywhere in the artefact (bounded walk): a graph's external-data reference is resolved by
    onnxruntime inside the folder, so a link there could lead it to a file outside."""
    seen, stack = 0, [(folder, 0)]
    while stack:
        d, depth = stack.pop()
        try:
            entries = list(os.scandir(d))
        except OSError:
            continue
        for e in entries:
            seen += 1
            need(seen <= MAX_ENTRIES, f"the folder holds over {MAX_ENTRIES} entries: not an edgekit artefact")
            need(not e.is_symlink(), f"{short(e.name)} is a symbolic link; artefact folders hold regular files only")
            if e.is_dir(follow_symlinks=False) and depth < 4:
                stack.append((Path(e.path), depth + 1))


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text)} digits")
    return int(text)


def _parse(path: Path) -> Any:
    if path.is_symlink() or not path.is_file():
        raise ArtefactError(f"{path.parent} has no manifest.json: pass an artefact folder written by `edgekit export`")
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise ArtefactError(f"cannot read {path}: {e.strerror}") from None
    if len(raw) > MAX_BYTES:
        raise ArtefactError(f"{path} is over {MAX_BYTES >> 20} MiB: not an edgekit manifest; re-run `edgekit export`")
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_no_constant, parse_int=_bounded_int)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ArtefactError(f"{path} is not valid JSON ({type(e).__name__}): re-run `edgekit export`") from None


def load_manifest(folder: str | Path, complete: bool = True) -> Manifest:
    """The checked, typed manifest of an artefact folder. `complete=False` while an export is still writing it
    (hashes are added last)."""
    folder = Path(folder)
    m = Manifest.from_json(_parse(folder / "manifest.json"))
    for rel in m.files.values():
        safe_path(folder, rel)
    _no_links(folder)
    if complete:
        m.require_hashes()
    return m


def read_manifest(folder: str | Path, complete: bool = True) -> dict[str, Any]:
    """The checked manifest as its JSON document (for tools that edit or print it whole)."""
    return load_manifest(folder, complete).to_json()
