"""The one reader of an artefact's manifest.json, used by every command (runtime, verify, info, bench, serve, check,
plan, validate). Artefact folders travel from CI machines to devices, so the manifest is untrusted input: it is read
with size and nesting bounds and checked against a strict, versioned schema before anything uses it.

Rules: a regular file (not a symlink) of at most 16 MiB of UTF-8 JSON; `schema_version` 1; file keys and every
component of a file path match the safe-name pattern edgekit writes (letters, digits, `_ . -`; no `.`/`..`, no
absolute paths); every listed file lies inside the folder and is not a symlink; with `complete=True` (a finished
artefact) every listed file has a sha256 and every sha256 a listed file; variants name listed files; `target` is a
target *name*, never a path; the step budget, state names and input contract are within bounds. Anything else is
an `ArtefactError` with one line naming the problem.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

from .errors import ArtefactError

SCHEMA_VERSION = 1
MAX_BYTES = 16 << 20
SAFE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")  # one path component or graph / state name
KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}(/[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}){0,3}$")
TARGET = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
FAMILIES = ("trm", "hrm", "deq")
GRAPHS = ("encode", "step", "readout", "loop", "unrolled")
MAX_STEPS = 100_000
MAX_DIM = 1 << 24


def _short(v: object) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _need(cond: bool, what: str) -> None:
    if not cond:
        raise ArtefactError(
            f"manifest.json: {what}; re-run `edgekit export` (the artefact is damaged or not edgekit's)"
        )


def _int(v: object, lo: int, hi: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _num(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def safe_path(folder: Path, rel: object) -> Path:
    """`folder / rel` for a manifest file entry: relative, safe names, inside the folder, no symlink on the way."""
    _need(isinstance(rel, str) and 0 < len(rel) <= 512, f"file entry {_short(rel)} is not a relative path")
    assert isinstance(rel, str)
    parts = rel.split("/")
    _need(
        all(SAFE.match(p) and p not in (".", "..") for p in parts),
        f"file entry {_short(rel)} is not a plain path inside the artefact",
    )
    path, cur = folder.joinpath(*parts), folder
    for p in parts:
        cur = cur / p
        _need(not cur.is_symlink(), f"{_short(rel)} is a symbolic link; artefact files must be regular files")
    _need(not path.exists() or path.is_file(), f"{_short(rel)} is not a regular file")
    return path


MAX_ENTRIES = 10_000


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
            _need(seen <= MAX_ENTRIES, f"the folder holds over {MAX_ENTRIES} entries: not an edgekit artefact")
            _need(not e.is_symlink(), f"{_short(e.name)} is a symbolic link; artefact folders hold regular files only")
            if e.is_dir(follow_symlinks=False) and depth < 4:
                stack.append((Path(e.path), depth + 1))


def read_manifest(folder: str | Path, complete: bool = True) -> dict[str, Any]:
    """The validated manifest of an artefact folder. `complete=False` while an export is still writing it (hashes
    are added last)."""
    folder = Path(folder)
    path = folder / "manifest.json"
    if path.is_symlink() or not path.is_file():
        raise ArtefactError(f"{folder} has no manifest.json: pass an artefact folder written by `edgekit export`")
    if path.stat().st_size > MAX_BYTES:
        raise ArtefactError(f"{path} is over {MAX_BYTES >> 20} MiB: not an edgekit manifest; re-run `edgekit export`")
    try:
        m = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ArtefactError(f"{path} is not valid JSON ({type(e).__name__}): re-run `edgekit export`") from None
    _need(isinstance(m, dict), "the top level is not an object")
    _need(
        m.get("schema_version") == SCHEMA_VERSION,
        f"schema_version {_short(m.get('schema_version'))} is not {SCHEMA_VERSION}",
    )
    files = m.get("files")
    _need(isinstance(files, dict) and 0 < len(files) <= 4096, "'files' is not a mapping of file keys to paths")
    for key, rel in files.items():
        _need(isinstance(key, str) and bool(KEY.match(key)), f"file key {_short(key)} is not a plain name")
        safe_path(folder, rel)
    _need(len(set(files.values())) == len(files), "two file keys name the same file")
    _no_links(folder)
    hashes = m.get("sha256", {})
    _need(isinstance(hashes, dict), "'sha256' is not a mapping of file keys to hashes")
    for key, digest in hashes.items():
        _need(isinstance(digest, str) and bool(SHA256.match(digest)), f"sha256 of {_short(key)} is not a sha256")
    if complete:
        _need(bool(hashes), "it lists no file hashes")
        missing = sorted(set(files) - set(hashes))
        extra = sorted(set(hashes) - set(files))
        _need(not missing, f"files without a hash: {_short(missing)}")
        _need(not extra, f"hashes for files it does not list: {_short(extra)}")
    model = m.get("model")
    _need(
        isinstance(model, dict) and model.get("family") in FAMILIES,
        f"model.family {_short(model.get('family') if isinstance(model, dict) else model)} is not one of "
        f"{', '.join(FAMILIES)}",
    )
    target = m.get("target", "x86-cpu")
    _need(isinstance(target, str) and bool(TARGET.match(target)), f"target {_short(target)} is not a target name")
    _check_graph(m.get("graph"))
    variants = m.get("variants")
    if variants is not None:
        _need(isinstance(variants, dict) and 0 < len(variants) <= 64, "'variants' is not a mapping")
        for name, graphs in variants.items():
            _need(isinstance(name, str) and bool(SAFE.match(name)), f"variant name {_short(name)} is not a plain name")
            _need(isinstance(graphs, dict), f"variant {name} is not a mapping of graphs to file keys")
            for g, key in graphs.items():
                _need(g in GRAPHS, f"variant {name} names an unknown graph {_short(g)}")
                _need(key in files, f"variant {name}'s {g} graph {_short(key)} is not among the listed files")
    _check_defaults(m.get("runtime_defaults"), variants or {"float32": {}}, m["graph"]["step_budget"])
    checked: dict[str, Any] = m
    return checked


def _check_defaults(d: object, variants: dict[str, Any], budget: int) -> None:
    """`runtime_defaults` (written by `edgekit tune --apply`): a listed variant, a finite threshold or null (never
    halt early), a step cap within the budget."""
    if d is None:
        return
    _need(isinstance(d, dict), "'runtime_defaults' is not an object")
    assert isinstance(d, dict)
    _need(d.get("variant") in variants, f"runtime_defaults.variant {_short(d.get('variant'))} is not a variant")
    thr = d.get("halt_threshold")
    _need(thr is None or _num(thr), f"runtime_defaults.halt_threshold {_short(thr)} is not a number or null")
    _need(
        _int(d.get("max_steps"), 1, budget),
        f"runtime_defaults.max_steps {_short(d.get('max_steps'))} is not an integer in [1, {budget}]",
    )


def _check_puzzle_ids(p: object) -> None:
    """`graph.puzzle_ids`: the puzzle-identifier input of models with a puzzle-embedding table."""
    if p is None:
        return
    _need(isinstance(p, dict), "graph.puzzle_ids is not an object")
    assert isinstance(p, dict)
    _need(_int(p.get("rows"), 1, 50_000_000), f"graph.puzzle_ids.rows {_short(p.get('rows'))} is not a row count")
    _need(
        _int(p.get("rows_before"), p["rows"], 50_000_000),
        f"graph.puzzle_ids.rows_before {_short(p.get('rows_before'))} is not >= rows",
    )
    d = p.get("default_row")
    _need(d is None or _int(d, 0, p["rows"] - 1), f"graph.puzzle_ids.default_row {_short(d)} is not a row")
    _need(p.get("file") == "puzzle_ids", "graph.puzzle_ids.file is not the puzzle_ids file key")


def _check_graph(g: object) -> None:
    _need(isinstance(g, dict), "'graph' is not an object")
    assert isinstance(g, dict)
    _need(
        _int(g.get("step_budget"), 1, MAX_STEPS),
        f"graph.step_budget {_short(g.get('step_budget'))} is not an integer in [1, {MAX_STEPS}]",
    )
    names = g.get("state_names")
    _need(
        isinstance(names, list) and 0 < len(names) <= 16 and all(isinstance(n, str) and SAFE.match(n) for n in names),
        "graph.state_names is not a list of plain names",
    )
    _need(_num(g.get("halt_threshold", 0.0)), f"graph.halt_threshold {_short(g.get('halt_threshold'))} is not a number")
    spec = g.get("input")
    _need(
        isinstance(spec, dict) and spec.get("dtype") in ("int64", "float32"),
        "graph.input.dtype is not int64 or float32",
    )
    assert isinstance(spec, dict)
    shape = spec.get("shape")
    _need(
        isinstance(shape, list)
        and 2 <= len(shape) <= 4
        and shape[0] == "batch"
        and all(_int(d, 1, MAX_DIM) for d in shape[1:]),
        f"graph.input.shape {_short(shape)} is not [batch, n, ...]",
    )
    if spec["dtype"] == "int64":
        rng = spec.get("range")
        _need(
            isinstance(rng, list) and len(rng) == 2 and all(_int(v, -(2**62), 2**62) for v in rng) and rng[0] <= rng[1],
            f"graph.input.range {_short(rng)} is not [lo, hi]",
        )
    _check_puzzle_ids(g.get("puzzle_ids"))
    init = g.get("initial_state")
    _need(
        isinstance(init, dict) and init.get("kind") in ("zeros", "broadcast"),
        "graph.initial_state.kind is not zeros or broadcast",
    )
