"""The artefact manifest (manifest.json) as typed, frozen data: the one contract between export, quantize, validate,
tune, the TensorRT stage and the runtime, written down here and nowhere else.

`Manifest.from_json(doc)` is the strict reader: artefact folders travel from CI machines to devices, so a manifest
is untrusted input and every field a command reads is checked before anything uses it:
- at most 200,000 values nested at most 32 deep; every string at most 4,096 characters (names far less);
- `schema_version` is `VERSION`: another version is one line naming both (re-export with this edgekit);
- file keys match the safe-name pattern edgekit writes; with `complete=True` (a finished artefact) every listed
  file has a sha256 and every sha256 a listed file; `bytes` records a size per listed file;
- the model family and its configuration (a DEQ's solver settings), the graph section (step budget, unrolled steps,
  halting threshold, state names, initial state and its shape, input contract, puzzle identifiers), the variants
  (each naming listed files), quantization details, `target` (a target *name*, never a path);
- `runtime_defaults` (written by `edgekit tune --apply`) must carry `runtime_defaults_sha256`, the sha256 of its
  canonical JSON: defaults edited after tuning are refused (this catches edits, not a forger who recomputes it).
Anything else is an `ArtefactError` with one line naming the problem (exit 2). The folder-side checks (paths inside
the folder, no symbolic links, bounded JSON parsing) are `edgekit.runtime.manifest.load_manifest`'s.

`to_json()` gives back the document: keys in the order they were read (or the order export writes them), explicit
nulls kept, unknown keys kept, so `to_json(from_json(d)) == d` and a rewritten manifest.json is byte-identical.

Standard library only: the device runtime imports it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from .errors import ArtefactError
from .stopping import KINDS as STOPPING_KINDS
from .stopping import Stopping, kind_of, legacy_kind, make_rule

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


# -- the typed manifest ------------------------------------------------------------------------------------------------


def _emit(values: dict[str, Any], order: tuple[str, ...], extra: Mapping[str, Any]) -> dict[str, Any]:
    """A section's JSON: keys in the order read (nulls read stay null), then fields set since in the canonical
    order (None left out), then unknown keys."""
    out: dict[str, Any] = {}
    for k in order:
        if k in values:
            out[k] = values[k]
        elif k in extra:
            out[k] = copy.deepcopy(extra[k])
    for k, v in values.items():
        if k not in out and v is not None:
            out[k] = v
    for k, v in extra.items():
        if k not in out:
            out[k] = copy.deepcopy(v)
    return out


def _extra(doc: Mapping[str, Any], known: tuple[str, ...]) -> dict[str, Any]:
    return {k: copy.deepcopy(v) for k, v in doc.items() if k not in known}


def _plain(v: Any) -> Any:
    """A free-form value (a model configuration, quantization details) as a fresh JSON tree."""
    return copy.deepcopy(dict(v) if isinstance(v, Mapping) else v)


@dataclass(frozen=True)
class RecipeRef:
    """The recipe an artefact was exported from: its name and the sha256 of the recipe file."""

    name: str | None = None
    sha256: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    order: tuple[str, ...] = field(default=(), compare=False, repr=False)

    FIELDS: ClassVar[tuple[str, ...]] = ("name", "sha256")

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> RecipeRef:
        return cls(d.get("name"), d.get("sha256"), _extra(d, cls.FIELDS), tuple(d))

    def to_json(self) -> dict[str, Any]:
        return _emit({"name": self.name, "sha256": self.sha256}, self.order, self.extra)


@dataclass(frozen=True)
class ModelInfo:
    """The model: its family, checkpoint, configuration (a DEQ's solver settings) and declared stopping kind
    (`stopping_kind` None: the rule the family implies, as artefacts written before `model.stopping` say)."""

    family: str
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    config: Mapping[str, Any] | None = None
    stopping_kind: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    order: tuple[str, ...] = field(default=(), compare=False, repr=False)

    FIELDS: ClassVar[tuple[str, ...]] = ("family", "checkpoint", "checkpoint_sha256", "config", "stopping")

    @property
    def kind(self) -> str:
        """How the recursion stops: `halt_logit` or `fixed_point`."""
        return self.stopping_kind if self.stopping_kind is not None else legacy_kind(self.family)

    @property
    def solver(self) -> Mapping[str, Any] | None:
        """A fixed-point model's solver settings (`model.config.solver`), None for others."""
        s = (self.config or {}).get("solver")
        return s if isinstance(s, Mapping) else None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ModelInfo:
        """The section, checked (one line naming the first problem)."""
        _check_model(d)
        s = d.get("stopping")
        kind = str(s["kind"]) if isinstance(s, Mapping) else None
        return cls(
            d["family"],
            d.get("checkpoint"),
            d.get("checkpoint_sha256"),
            _plain(d.get("config")),
            kind,
            _extra(d, cls.FIELDS),
            tuple(d),
        )

    def to_json(self) -> dict[str, Any]:
        stopping = None if self.stopping_kind is None else {"kind": self.stopping_kind}
        values = {
            "family": self.family,
            "checkpoint": self.checkpoint,
            "checkpoint_sha256": self.checkpoint_sha256,
            "config": _plain(self.config),
            "stopping": stopping,
        }
        return _emit(values, self.order, self.extra)


@dataclass(frozen=True)
class InputContract:
    """What the encode graph takes: `dtype` int64 (token ids within `range`) or float32, `shape` ["batch", n, ...]."""

    dtype: str
    shape: tuple[Any, ...]
    range: tuple[int, int] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    order: tuple[str, ...] = field(default=(), compare=False, repr=False)

    FIELDS: ClassVar[tuple[str, ...]] = ("dtype", "shape", "range")

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """One sample's shape (the shape without its batch axis)."""
        return tuple(int(d) for d in self.shape[1:])

    @property
    def tokens(self) -> bool:
        return self.dtype == "int64"

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> InputContract:
        rng = d.get("range")
        return cls(
            d["dtype"],
            tuple(d["shape"]),
            (rng[0], rng[1]) if isinstance(rng, list) else None,
            _extra(d, cls.FIELDS),
            tuple(d),
        )

    def to_json(self) -> dict[str, Any]:
        rng = None if self.range is None else list(self.range)
        return _emit({"dtype": self.dtype, "shape": list(self.shape), "range": rng}, self.order, self.extra)


@dataclass(frozen=True)
class InitialState:
    """Where the recursion starts: `zeros` of `shape`, or `broadcast` of the learned states in the artefact's
    initial_state file."""

    kind: str
    shape: tuple[int, ...] | None = None
    file: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    order: tuple[str, ...] = field(default=(), compare=False, repr=False)

    FIELDS: ClassVar[tuple[str, ...]] = ("kind", "shape", "file")

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> InitialState:
        s = d.get("shape")
        return cls(d["kind"], tuple(s) if isinstance(s, list) else None, d.get("file"), _extra(d, cls.FIELDS), tuple(d))

    def to_json(self) -> dict[str, Any]:
        shape = None if self.shape is None else list(self.shape)
        return _emit({"kind": self.kind, "shape": shape, "file": self.file}, self.order, self.extra)


@dataclass(frozen=True)
class StateLayout:
    """The recursion state: its tensors' names (in the step graph's order) and where it starts."""

    names: tuple[str, ...]
    initial: InitialState


@dataclass(frozen=True)
class PuzzleTable:
    """The puzzle-identifier input of a model with a puzzle-embedding table: rows kept of `rows_before`, the row
    used without identifiers (None: identifiers are required), sizes before / after the cut."""

    rows: int
    rows_before: int
    file: str = "puzzle_ids"
    dtype: str | None = None
    shape: tuple[Any, ...] | None = None
    dim: int | None = None
    bytes_before: int | None = None
    bytes_after: int | None = None
    default_row: int | None = None
    named: bool | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    order: tuple[str, ...] = field(default=(), compare=False, repr=False)

    FIELDS: ClassVar[tuple[str, ...]] = (
        "dtype",
        "shape",
        "rows",
        "rows_before",
        "dim",
        "bytes_before",
        "bytes_after",
        "default_row",
        "named",
    )
    FIELDS += ("file",)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> PuzzleTable:
        s = d.get("shape")
        return cls(
            d["rows"],
            d["rows_before"],
            d["file"],
            d.get("dtype"),
            tuple(s) if isinstance(s, list) else None,
            d.get("dim"),
            d.get("bytes_before"),
            d.get("bytes_after"),
            d.get("default_row"),
            d.get("named"),
            _extra(d, cls.FIELDS),
            tuple(d) if d else cls.FIELDS,
        )

    def to_json(self) -> dict[str, Any]:
        values = {
            "dtype": self.dtype,
            "shape": None if self.shape is None else list(self.shape),
            "rows": self.rows,
            "rows_before": self.rows_before,
            "dim": self.dim,
            "bytes_before": self.bytes_before,
            "bytes_after": self.bytes_after,
            "default_row": self.default_row,
            "named": self.named,
            "file": self.file,
        }
        # default_row null is meaningful (identifiers required): written as export writes it
        return _emit(values, self.order or self.FIELDS, self.extra)


@dataclass(frozen=True)
class GraphInfo:
    """How the graphs run: forms exported, opset, state layout, step budget, unrolled steps, the halting threshold
    the graphs were validated at, the input contract, the halting rule in words, puzzle identifiers."""

    step_budget: int
    state: StateLayout
    input: InputContract
    forms: tuple[str, ...] | None = None
    opset: int | None = None
    unrolled_steps: int | None = None
    halt_threshold: float | None = None  # None: not written (0.0)
    halting: str | None = None
    puzzle_ids: PuzzleTable | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    order: tuple[str, ...] = field(default=(), compare=False, repr=False)

    FIELDS: ClassVar[tuple[str, ...]] = (
        "forms",
        "opset",
        "state_names",
        "step_budget",
        "unrolled_steps",
        "halt_threshold",
        "initial_state",
    )
    FIELDS += ("input", "halting", "puzzle_ids")

    @property
    def threshold(self) -> float:
        """The validated halting threshold (0.0 where the manifest does not say)."""
        return 0.0 if self.halt_threshold is None else self.halt_threshold

    def threshold_of(self, variant: str) -> float:
        """The halting threshold `variant` was validated at: its own calibrated one (`graph.variant_thresholds`,
        written with `halt_threshold: auto`), else the artefact's."""
        own = (self.extra.get("variant_thresholds") or {}).get(variant)
        return self.threshold if own is None else float(own)

    @property
    def state_names(self) -> tuple[str, ...]:
        return self.state.names

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> GraphInfo:
        forms, p = d.get("forms"), d.get("puzzle_ids")
        return cls(
            d["step_budget"],
            StateLayout(tuple(d["state_names"]), InitialState.from_json(d["initial_state"])),
            InputContract.from_json(d["input"]),
            tuple(forms) if isinstance(forms, list) else None,
            d.get("opset"),
            d.get("unrolled_steps"),
            d.get("halt_threshold"),
            d.get("halting"),
            PuzzleTable.from_json(p) if isinstance(p, Mapping) else None,
            _extra(d, cls.FIELDS),
            tuple(d),
        )

    def to_json(self) -> dict[str, Any]:
        values = {
            "forms": None if self.forms is None else list(self.forms),
            "opset": self.opset,
            "state_names": list(self.state.names),
            "step_budget": self.step_budget,
            "unrolled_steps": self.unrolled_steps,
            "halt_threshold": self.halt_threshold,
            "initial_state": self.state.initial.to_json(),
            "input": self.input.to_json(),
            "halting": self.halting,
            "puzzle_ids": None if self.puzzle_ids is None else self.puzzle_ids.to_json(),
        }
        return _emit(values, self.order, self.extra)


@dataclass(frozen=True)
class VariantGraphs:
    """One variant's graphs: graph role -> file key (a key of the manifest's `files`); None where not exported."""

    encode: str | None = None
    step: str | None = None
    readout: str | None = None
    loop: str | None = None
    unrolled: str | None = None
    order: tuple[str, ...] = field(default=(), compare=False, repr=False)

    @property
    def roles(self) -> dict[str, str]:
        """Role -> file key of the graphs this variant has, in the order written."""
        return {k: v for k, v in self.to_json().items() if v is not None}

    def __iter__(self) -> Iterator[str]:
        return iter(self.roles)

    def __contains__(self, role: object) -> bool:
        return role in self.roles

    def key(self, role: str) -> str | None:
        return self.roles.get(role)

    def require(self, role: str) -> str:
        """The file key of the `role` graph; one line when the variant was exported without it."""
        key = self.roles.get(role)
        need(key is not None, f"a variant lists no {role} graph")
        assert key is not None
        return key

    @classmethod
    def from_json(cls, d: Mapping[str, str]) -> VariantGraphs:
        return cls(**{k: d[k] for k in GRAPHS if k in d}, order=tuple(d))

    @classmethod
    def of(cls, roles: Mapping[str, str]) -> VariantGraphs:
        """From role -> file key, keeping the roles' order."""
        return cls.from_json(roles)

    def to_json(self) -> dict[str, Any]:
        values = {k: getattr(self, k) for k in GRAPHS}
        return {k: v for k, v in _emit(values, self.order, {}).items() if v is not None}


@dataclass(frozen=True)
class RuntimeDefaults:
    """What `edgekit tune --apply` chose: the variant, threshold (None: never halt before the cap) and step cap the
    runtime answers with when the caller does not say."""

    variant: str
    max_steps: int
    halt_threshold: float | None = None
    chosen_by: str | None = None
    threshold_given: bool = True  # False: the manifest names no threshold (the validated one applies)
    extra: Mapping[str, Any] = field(default_factory=dict)
    order: tuple[str, ...] = field(default=(), compare=False, repr=False)

    FIELDS: ClassVar[tuple[str, ...]] = ("variant", "halt_threshold", "max_steps", "chosen_by")

    @property
    def threshold(self) -> float | None:
        """The tuned threshold as the host loop applies it: +inf for null (never halt before the cap), None where
        the defaults name none."""
        if not self.threshold_given:
            return None
        return math.inf if self.halt_threshold is None else float(self.halt_threshold)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> RuntimeDefaults:
        return cls(
            d["variant"],
            d["max_steps"],
            d.get("halt_threshold"),
            d.get("chosen_by"),
            "halt_threshold" in d,
            _extra(d, cls.FIELDS),
            tuple(d),
        )

    def to_json(self) -> dict[str, Any]:
        values = {
            "variant": self.variant,
            "halt_threshold": self.halt_threshold,
            "max_steps": self.max_steps,
            "chosen_by": self.chosen_by,
        }
        # null is a threshold here (never halt before the cap): written even when set in code
        order = self.order or (("variant", "halt_threshold") if self.threshold_given else ())
        out = _emit(values, order, self.extra)
        if not self.threshold_given:
            out.pop("halt_threshold", None)
        return out

    @property
    def digest(self) -> str:
        """The sha256 the manifest records for these defaults."""
        return defaults_digest(self.to_json())


@dataclass(frozen=True)
class Manifest:
    """An artefact's manifest. Build with the constructor (export), read with `from_json` (everything else); change
    with `dataclasses.replace` (quantize adds variants, validate the hashes, tune the runtime defaults)."""

    model: ModelInfo
    graph: GraphInfo
    files: Mapping[str, str]
    variants: Mapping[str, VariantGraphs]
    schema_version: int = VERSION
    edgekit_version: str | None = None
    created: str | None = None
    recipe: RecipeRef | None = None
    target: str | None = None
    sha256: Mapping[str, str] | None = None
    export_seconds: Mapping[str, float] | None = None
    bytes: Mapping[str, int] | None = None
    quantization: Mapping[str, Mapping[str, Any]] | None = None
    runtime_defaults: RuntimeDefaults | None = None
    runtime_defaults_sha256: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    order: tuple[str, ...] = field(default=(), compare=False, repr=False)

    FIELDS: ClassVar[tuple[str, ...]] = (
        "schema_version",
        "edgekit_version",
        "created",
        "recipe",
        "target",
        "model",
        "graph",
        "files",
    )
    FIELDS += ("variants", "sha256", "export_seconds", "bytes", "quantization", "runtime_defaults")
    FIELDS += ("runtime_defaults_sha256",)

    # -- what commands ask ------------------------------------------------------------------------------------------
    @property
    def target_name(self) -> str:
        """The target the artefact was exported for (x86-cpu where the manifest does not say)."""
        return self.target or DEFAULT_TARGET

    @property
    def family(self) -> str:
        return self.model.family

    @property
    def stopping(self) -> Stopping:
        """How the recursion stops, with the values the graphs were exported with: the halting threshold from
        `graph.halt_threshold`, the solver from `model.config.solver`."""
        return make_rule(self.model.kind, self.graph.threshold, self.model.solver)

    def stopping_of(self, variant: str) -> Stopping:
        """`stopping` for one variant: a compressed variant halts at its own calibrated threshold where it has one."""
        return make_rule(self.model.kind, self.graph.threshold_of(variant), self.model.solver)

    @property
    def hashes(self) -> Mapping[str, str]:
        """File key -> sha256 (empty before validation adds them)."""
        return self.sha256 or {}

    def quantization_of(self, variant: str) -> Mapping[str, Any]:
        """How a variant was quantized (empty for float variants)."""
        return (self.quantization or {}).get(variant) or {}

    def with_defaults(self, defaults: RuntimeDefaults) -> Manifest:
        """This manifest with `defaults` as its runtime defaults and their digest."""
        return replace(self, runtime_defaults=defaults, runtime_defaults_sha256=defaults.digest)

    # -- JSON ---------------------------------------------------------------------------------------------------------
    @classmethod
    def from_json(cls, doc: object, complete: bool = False) -> Manifest:
        """The checked manifest of a parsed manifest.json (`complete`: every listed file has a hash; a finished
        artefact). One `ArtefactError` line otherwise."""
        need(isinstance(doc, dict), "the top level is not an object")
        assert isinstance(doc, dict)
        _bounded(doc)
        version = doc.get("schema_version")
        if isinstance(version, int) and not isinstance(version, bool) and version != VERSION:
            need(  # another manifest format: say which, and that re-exporting (or that edgekit) reads it
                False,
                f"schema_version {short(version)} is not {VERSION}, the manifest format this edgekit reads",
                "export the artefact again with this edgekit, or run it with the edgekit version that wrote it",
            )
        need(version == VERSION and not isinstance(version, bool), f"schema_version {short(version)} is not {VERSION}")
        for key, check in TOP.items():
            check(doc.get(key), doc)
        m = doc
        rd = m.get("runtime_defaults")
        recipe = m.get("recipe")
        out = cls(
            ModelInfo.from_json(m["model"]),
            GraphInfo.from_json(m["graph"]),
            dict(m["files"]),
            {name: VariantGraphs.from_json(g) for name, g in m["variants"].items()},
            m["schema_version"],
            m.get("edgekit_version"),
            m.get("created"),
            RecipeRef.from_json(recipe) if isinstance(recipe, Mapping) else None,
            m.get("target"),
            _plain(m.get("sha256")),
            _plain(m.get("export_seconds")),
            _plain(m.get("bytes")),
            _plain(m.get("quantization")),
            RuntimeDefaults.from_json(rd) if isinstance(rd, Mapping) else None,
            m.get("runtime_defaults_sha256"),
            _extra(m, cls.FIELDS),
            tuple(m),
        )
        if complete:
            out.require_hashes()
        return out

    def require_hashes(self) -> None:
        """A finished artefact: every listed file has a sha256 and every sha256 a listed file."""
        hashes = self.hashes
        need(bool(hashes), "it lists no file hashes")
        missing = sorted(set(self.files) - set(hashes))
        extra = sorted(set(hashes) - set(self.files))
        need(not missing, f"files without a hash: {short(missing[:3])}")
        need(not extra, f"hashes for files it does not list: {short(extra[:3])}")

    def to_json(self) -> dict[str, Any]:
        """The manifest.json document (a fresh tree: changing it changes nothing here)."""
        values = {
            "schema_version": self.schema_version,
            "edgekit_version": self.edgekit_version,
            "created": self.created,
            "recipe": None if self.recipe is None else self.recipe.to_json(),
            "target": self.target,
            "model": self.model.to_json(),
            "graph": self.graph.to_json(),
            "files": dict(self.files),
            "variants": {name: g.to_json() for name, g in self.variants.items()},
            "sha256": _plain(self.sha256),
            "export_seconds": _plain(self.export_seconds),
            "bytes": _plain(self.bytes),
            "quantization": _plain(self.quantization),
            "runtime_defaults": None if self.runtime_defaults is None else self.runtime_defaults.to_json(),
            "runtime_defaults_sha256": self.runtime_defaults_sha256,
        }
        return _emit(values, self.order, self.extra)

    def dumps(self) -> str:
        """manifest.json's text as edgekit writes it."""
        return json.dumps(self.to_json(), indent=1, sort_keys=False) + "\n"


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
