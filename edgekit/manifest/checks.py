"""The manifest's rules: bounds, escaping for any text read from an artefact, and one check per top-level section of
the untrusted document (each gets the section and the whole document, and raises one `ArtefactError` line naming the
first problem). `edgekit.manifest.Manifest.from_json` runs them before it builds the typed manifest.

Standard library only: the device runtime imports it.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import ArtefactError
from ..stopping import KINDS as STOPPING_KINDS
from ..stopping import legacy_kind

VERSION = 1  # the manifest format version (`schema_version`); bumped when a reader of the old one would misread it
SAFE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")  # one path component or graph / state name
KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}(/[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}){0,3}$")
TARGET = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
FAMILIES = ("trm", "hrm", "deq")
GRAPHS = ("encode", "step", "readout", "loop", "unrolled")
FORMS = ("step", "loop", "unrolled")
DEFAULT_TARGET = "x86-cpu"
MAX_STEPS = 100_000
# test-time depth: a tuned step cap may run past the trained budget, up to this many times it (`edgekit tune
# --depth-factor`); deeper than that is beyond what tune ever measured
MAX_DEPTH_FACTOR = 8
MAX_DIM = 1 << 24
MAX_STATE = 1 << 24  # elements of one sample's state or input (a TRM / HRM state: seq x hidden, ~1M at most)
MAX_STRING = 4096
MAX_NAME = 256
MAX_VALUES = 200_000
MAX_DEPTH = 32
MAX_FILE_BYTES = 1 << 50
MAX_THRESHOLD = 1e6  # halting scores are logits or residuals: far inside this

REEXPORT = "re-run `edgekit export` (the artefact is damaged or not edgekit's)"
RETUNE = "re-run `edgekit tune --apply`, or remove runtime_defaults and its sha256 to answer at the validated settings"


# -- text from a manifest, safe to print -------------------------------------------------------------------------------


def escape_text(value: object, limit: int = 200) -> str:
    """`value` as text safe for a terminal: control, format and separator characters (ESC, CR, BEL, bidi
    overrides, zero-width marks, ...) written as \\x.. / \\u.. escapes, cut to `limit` characters. For every string
    read from an artefact before it is printed."""
    text = value if isinstance(value, str) else str(value)
    out: list[str] = []
    size = 0
    for ch in text:
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            o = ord(ch)
            ch = f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}"
        out.append(ch)
        size += len(ch)
        if size > limit:
            return "".join(out)[:limit] + "..."
    return "".join(out)


def escape_tree(value: Any, limit: int = 200) -> Any:
    """`value` with every string (and mapping key) in it passed through `escape_text`."""
    if isinstance(value, str):
        return escape_text(value, limit)
    if isinstance(value, Mapping):
        return {escape_text(k, limit): escape_tree(v, limit) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [escape_tree(v, limit) for v in value]
    return value


def short(v: object) -> str:
    """A bounded, escaped rendering of a manifest value for an error line (never a huge or raw string)."""
    if isinstance(v, str):
        return repr(escape_text(v, 57))
    if isinstance(v, (dict, list)):
        return f"a {'mapping' if isinstance(v, dict) else 'list'} of {len(v)}"
    return escape_text(repr(v), 60)


def need(cond: bool, what: str, fix: str = REEXPORT) -> None:
    """One `ArtefactError` line naming the manifest's problem and the fix."""
    if not cond:
        raise ArtefactError(f"manifest.json: {what}; {fix}")


def defaults_digest(defaults: Mapping[str, Any]) -> str:
    """The sha256 `edgekit tune --apply` records for `runtime_defaults` (canonical JSON: sorted keys, no spaces)."""
    blob = json.dumps(defaults, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(blob.encode()).hexdigest()


# -- the checks: one per top-level section (each gets the section and the whole document) ----------------------------


def _int(v: object, lo: int, hi: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _num(v: object, lo: float = -math.inf, hi: float = math.inf) -> bool:
    """A finite number in [lo, hi] (ints of any size are compared exactly, never converted to float)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    if isinstance(v, float) and not math.isfinite(v):
        return False
    return lo <= v <= hi


def _str(v: object, limit: int = MAX_NAME) -> bool:
    return isinstance(v, str) and len(v) <= limit


def _sha(v: object) -> bool:
    return isinstance(v, str) and bool(SHA256.match(v))


def _obj(v: object, what: str) -> dict[str, Any]:
    need(isinstance(v, dict), f"{what} is not an object")
    assert isinstance(v, dict)
    return v


def _bounded(doc: Any) -> None:
    """Every value of the document within the generic bounds (count, depth, string length), walked iteratively."""
    count, stack = 0, [(doc, 0)]
    while stack:
        v, depth = stack.pop()
        count += 1
        need(count <= MAX_VALUES, f"it holds over {MAX_VALUES} values")
        need(depth <= MAX_DEPTH, f"it nests over {MAX_DEPTH} levels deep")
        if isinstance(v, str):
            need(len(v) <= MAX_STRING, f"a string of {len(v)} characters (at most {MAX_STRING})")
        elif isinstance(v, dict):
            for k, x in v.items():
                need(len(k) <= MAX_STRING, f"a key of {len(k)} characters (at most {MAX_STRING})")
                stack.append((x, depth + 1))
        elif isinstance(v, list):
            stack.extend((x, depth + 1) for x in v)


def _check_files(files: object, m: dict[str, Any]) -> None:
    need(isinstance(files, dict) and 0 < len(files) <= 4096, "'files' is not a mapping of file keys to paths")
    assert isinstance(files, dict)
    for key, rel in files.items():
        need(bool(KEY.match(key)), f"file key {short(key)} is not a plain name")
        need(isinstance(rel, str) and 0 < len(rel) <= 512, f"file entry {short(rel)} is not a relative path")
    need(len(set(files.values())) == len(files), "two file keys name the same file")


def _check_hashes(hashes: object, m: dict[str, Any]) -> None:
    if hashes is None:
        return
    h = _obj(hashes, "'sha256'")
    for key, digest in h.items():
        need(_sha(digest), f"sha256 of {short(key)} is not a sha256")


def _check_bytes(sizes: object, m: dict[str, Any]) -> None:
    """`bytes`: the size of each listed file at export (what verify compares before hashing)."""
    if sizes is None:
        return
    s = _obj(sizes, "'bytes'")
    for key, n in s.items():
        need(key in m["files"], f"bytes of {short(key)}, which it does not list")
        need(_int(n, 0, MAX_FILE_BYTES), f"bytes of {short(key)} is {short(n)}, not a file size")


def _check_text(
    what: str, limit: int, pattern: re.Pattern[str] | None = None
) -> Callable[[object, dict[str, Any]], None]:
    def check(v: object, m: dict[str, Any]) -> None:
        if v is None:
            return
        need(_str(v, limit) and (pattern is None or bool(pattern.match(str(v)))), f"{what} {short(v)} is not text")

    return check


def _check_target(target: object, m: dict[str, Any]) -> None:
    t = DEFAULT_TARGET if target is None else target
    need(isinstance(t, str) and bool(TARGET.match(t)), f"target {short(t)} is not a target name")


def _check_recipe(r: object, m: dict[str, Any]) -> None:
    if r is None:
        return
    r = _obj(r, "'recipe'")
    need(r.get("name") is None or _str(r["name"], MAX_NAME), f"recipe.name {short(r.get('name'))} is not a name")
    need(r.get("sha256") is None or _sha(r["sha256"]), "recipe.sha256 is not a sha256")


SOLVER: dict[str, Callable[[object], bool]] = {
    "name": lambda v: v in ("fixed_point", "anderson"),
    "max_iter": lambda v: _int(v, 1, MAX_STEPS),
    "tol": lambda v: _num(v, 0, 1e30),
    "stop_mode": lambda v: v in ("rel", "abs"),
    "damping": lambda v: _num(v, 1e-9, 1),
    "anderson_m": lambda v: _int(v, 1, 64),
    "anderson_lam": lambda v: _num(v, 0, 1e30),
    "anderson_beta": lambda v: _num(v, 1e-9, 1e3),
}


def kind_of(model: Mapping[str, Any]) -> str:
    """The stopping kind of a manifest's `model` section: `stopping.kind` when written, else the rule of the family
    that older artefacts imply."""
    declared = model.get("stopping")
    if isinstance(declared, Mapping):
        return str(declared.get("kind"))
    return legacy_kind(str(model.get("family")))


def _check_model(model: object, m: dict[str, Any] | None = None) -> None:
    mo = _obj(model, "'model'")
    fam, stopping = mo.get("family"), mo.get("stopping")
    if stopping is None:  # written before `model.stopping`: a family whose stopping rule the runtime knows
        need(isinstance(fam, str) and fam in FAMILIES, f"model.family {short(fam)} is not one of {', '.join(FAMILIES)}")
    else:
        need(
            isinstance(stopping, dict)
            and set(stopping) == {"kind"}
            and isinstance(stopping["kind"], str)  # never hashed unchecked: a list here is a one-line error
            and stopping["kind"] in STOPPING_KINDS,
            f"model.stopping {short(stopping)} is not one of {', '.join(STOPPING_KINDS)}",
        )
        need(isinstance(fam, str) and SAFE.match(fam) is not None, f"model.family {short(fam)} is not a name")
    fixed_point = kind_of(mo) == "fixed_point"
    need(mo.get("checkpoint") is None or _str(mo["checkpoint"], 1024), "model.checkpoint is not a file name")
    need(
        mo.get("checkpoint_sha256") is None or _sha(mo["checkpoint_sha256"]), "model.checkpoint_sha256 is not a sha256"
    )
    config = mo.get("config")
    if config is None:
        need(not fixed_point, "model.config is missing (a DEQ needs its solver settings)")
        return
    c = _obj(config, "model.config")
    if fixed_point:
        solver = _obj(c.get("solver"), "model.config.solver")
        for k, ok in SOLVER.items():
            if k in solver:
                need(ok(solver[k]), f"model.config.solver.{k} {short(solver[k])} is out of range")
        need("tol" in solver and "name" in solver, "model.config.solver lacks its name or tol")


def _check_variants(variants: object, m: dict[str, Any]) -> None:
    v = _obj(variants, "'variants'")
    need(0 < len(v) <= 64, "'variants' is not a mapping of 1 to 64 variants")
    files = m["files"]
    for name, graphs in v.items():
        need(bool(SAFE.match(name)), f"variant name {short(name)} is not a plain name")
        g = _obj(graphs, f"variant {name}")
        for graph, key in g.items():
            need(graph in GRAPHS, f"variant {name} names an unknown graph {short(graph)}")
            need(
                isinstance(key, str) and key in files,
                f"variant {name}'s {graph} graph {short(key)} is not among the listed files",
            )
    own = m["graph"].get("variant_thresholds")
    if own is not None:
        for name, t in _obj(own, "graph.variant_thresholds").items():
            need(name in v, f"graph.variant_thresholds names {short(name)}, which is not a variant")
            need(
                _num(t, -MAX_THRESHOLD, MAX_THRESHOLD),
                f"graph.variant_thresholds.{short(name)} {short(t)} is not a number within +-{MAX_THRESHOLD:g}",
            )


def _check_quantization(q: object, m: dict[str, Any]) -> None:
    if q is None:
        return
    for name, info in _obj(q, "'quantization'").items():
        need(isinstance(info, dict), f"quantization.{short(name)} is not an object")


def _check_seconds(s: object, m: dict[str, Any]) -> None:
    if s is None:
        return
    for k, v in _obj(s, "'export_seconds'").items():
        need(_num(v, 0, 1e9), f"export_seconds.{short(k)} is not a duration")


def _check_defaults(d: object, m: dict[str, Any]) -> None:
    """`runtime_defaults` (written by `edgekit tune --apply`): a listed variant, a threshold within the range halting
    scores take or null (never halt early), a step cap within MAX_DEPTH_FACTOR x the budget, and the digest tune
    recorded for exactly these values."""
    if d is None:
        need(m.get("runtime_defaults_sha256") is None, "runtime_defaults_sha256 without runtime_defaults")
        return
    dd = _obj(d, "'runtime_defaults'")
    variant = dd.get("variant")
    need(
        isinstance(variant, str) and variant in m["variants"],
        f"runtime_defaults.variant {short(variant)} is not a variant",
        RETUNE,
    )
    thr = dd.get("halt_threshold")
    need(
        thr is None or _num(thr, -MAX_THRESHOLD, MAX_THRESHOLD),
        f"runtime_defaults.halt_threshold {short(thr)} is not null or a number within +-{MAX_THRESHOLD:g}",
        RETUNE,
    )
    deepest = m["graph"]["step_budget"] * MAX_DEPTH_FACTOR
    need(
        _int(dd.get("max_steps"), 1, deepest),
        f"runtime_defaults.max_steps {short(dd.get('max_steps'))} is not an integer in [1, {deepest}]",
        RETUNE,
    )
    need(
        dd.get("chosen_by") is None or _str(dd["chosen_by"], MAX_NAME), "runtime_defaults.chosen_by is not text", RETUNE
    )
    digest = m.get("runtime_defaults_sha256")
    try:
        same = _sha(digest) and digest == defaults_digest(dd)
    except (TypeError, ValueError):
        same = False
    if not same:
        raise ArtefactError(
            "manifest.json: runtime_defaults do not match runtime_defaults_sha256 (edited after `edgekit tune "
            f"--apply` wrote them, or written by an older edgekit); {RETUNE}"
        )


def _check_puzzle_ids(p: object, files: dict[str, Any]) -> None:
    """`graph.puzzle_ids`: the puzzle-identifier input of models with a puzzle-embedding table."""
    if p is None:
        return
    pp = _obj(p, "graph.puzzle_ids")
    need(_int(pp.get("rows"), 1, 50_000_000), f"graph.puzzle_ids.rows {short(pp.get('rows'))} is not a row count")
    rows = pp["rows"]
    need(
        _int(pp.get("rows_before"), rows, 50_000_000),
        f"graph.puzzle_ids.rows_before {short(pp.get('rows_before'))} is not >= rows",
    )
    d = pp.get("default_row")
    need(d is None or _int(d, 0, rows - 1), f"graph.puzzle_ids.default_row {short(d)} is not a row")
    need(pp.get("file") == "puzzle_ids", "graph.puzzle_ids.file is not the puzzle_ids file key")
    need("puzzle_ids" in files, "the manifest declares puzzle identifiers but lists no puzzle_ids file")
    for k in ("dim", "bytes_before", "bytes_after"):
        need(pp.get(k) is None or _int(pp[k], 0, MAX_FILE_BYTES), f"graph.puzzle_ids.{k} is not a size")
    need(pp.get("named") is None or isinstance(pp["named"], bool), "graph.puzzle_ids.named is not true or false")


def _prod(dims: list[int]) -> int:
    n = 1
    for d in dims:
        n *= d
    return n


def _check_graph(graph: object, m: dict[str, Any]) -> None:
    g = _obj(graph, "'graph'")
    need(
        _int(g.get("step_budget"), 1, MAX_STEPS),
        f"graph.step_budget {short(g.get('step_budget'))} is not an integer in [1, {MAX_STEPS}]",
    )
    budget = g["step_budget"]
    need(
        g.get("unrolled_steps") is None or _int(g["unrolled_steps"], 1, budget),
        f"graph.unrolled_steps {short(g.get('unrolled_steps'))} is not an integer in [1, {budget}]",
    )
    names = g.get("state_names")
    need(
        isinstance(names, list) and 0 < len(names) <= 16 and all(isinstance(n, str) and SAFE.match(n) for n in names),
        "graph.state_names is not a list of plain names",
    )
    need(_num(g.get("halt_threshold", 0.0)), f"graph.halt_threshold {short(g.get('halt_threshold'))} is not a number")
    forms = g.get("forms")
    need(
        forms is None or (isinstance(forms, list) and all(isinstance(f, str) and f in FORMS for f in forms)),
        f"graph.forms {short(forms)} is not a list of {', '.join(FORMS)}",
    )
    need(g.get("opset") is None or _int(g["opset"], 1, 1000), f"graph.opset {short(g.get('opset'))} is not an opset")
    need(g.get("halting") is None or _str(g["halting"], MAX_STRING), "graph.halting is not text")
    spec = _obj(g.get("input"), "graph.input")
    need(spec.get("dtype") in ("int64", "float32"), "graph.input.dtype is not int64 or float32")
    shape = spec.get("shape")
    need(
        isinstance(shape, list)
        and 2 <= len(shape) <= 4
        and shape[0] == "batch"
        and all(_int(d, 1, MAX_DIM) for d in shape[1:])
        and _prod(shape[1:]) <= MAX_STATE,
        f"graph.input.shape {short(shape)} is not [batch, n, ...] of at most {MAX_STATE} values",
    )
    if spec["dtype"] == "int64":
        rng = spec.get("range")
        need(
            isinstance(rng, list) and len(rng) == 2 and all(_int(v, -(2**62), 2**62) for v in rng) and rng[0] <= rng[1],
            f"graph.input.range {short(rng)} is not [lo, hi]",
        )
    _check_puzzle_ids(g.get("puzzle_ids"), m["files"])
    init = _obj(g.get("initial_state"), "graph.initial_state")
    kind = init.get("kind")
    need(isinstance(kind, str) and kind in ("zeros", "broadcast"), "graph.initial_state.kind is not zeros or broadcast")
    if kind == "zeros":
        s = init.get("shape")
        need(
            isinstance(s, list) and 1 <= len(s) <= 4 and all(_int(d, 1, MAX_DIM) for d in s) and _prod(s) <= MAX_STATE,
            f"graph.initial_state.shape {short(s)} is not a list of 1 to 4 sizes of at most {MAX_STATE} values",
        )
    else:
        need("initial_state" in m["files"], "graph.initial_state is broadcast but lists no initial_state file")


# Checked in this order: files first (variants and bytes refer to them), graph before runtime_defaults (the budget).
TOP: dict[str, Callable[[Any, dict[str, Any]], None]] = {
    "files": _check_files,
    "sha256": _check_hashes,
    "bytes": _check_bytes,
    "edgekit_version": _check_text("edgekit_version", 64),
    "created": _check_text("created", 64),
    "recipe": _check_recipe,
    "target": _check_target,
    "model": lambda v, m: _check_model(v),
    "graph": _check_graph,
    "variants": _check_variants,
    "quantization": _check_quantization,
    "export_seconds": _check_seconds,
    "runtime_defaults": _check_defaults,
}
