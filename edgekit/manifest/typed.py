"""The typed manifest: one frozen dataclass per section, read from a checked document (`from_json`) and written
back key for key (`to_json`). A section's known JSON keys are its dataclass fields (`json` metadata names the keys
a field stands for where they differ); unknown keys are kept in `extra`, the order read in `order`.

Standard library only: the device runtime imports it.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar, TypeVar

from ..stopping import Stopping, legacy_kind, make_rule
from .checks import DEFAULT_TARGET, GRAPHS, TOP, VERSION, _bounded, _check_model, defaults_digest, need, short

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


T = TypeVar("T")


def _section(cls: T) -> T:
    """Set a section's `FIELDS`, the JSON keys it knows (the rest go to `extra`), from its dataclass fields: a
    field's `json` metadata names the keys it stands for where they differ; `extra` and `order` are no keys."""
    c: Any = cls
    c.FIELDS = tuple(
        k for f in fields(c) if f.name not in ("extra", "order") for k in f.metadata.get("json", (f.name,))
    )
    return cls


@_section
@dataclass(frozen=True)
class RecipeRef:
    """The recipe an artefact was exported from: its name and the sha256 of the recipe file."""

    name: str | None = None
    sha256: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    order: tuple[str, ...] = field(default=(), compare=False, repr=False)

    FIELDS: ClassVar[tuple[str, ...]]

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> RecipeRef:
        return cls(d.get("name"), d.get("sha256"), _extra(d, cls.FIELDS), tuple(d))

    def to_json(self) -> dict[str, Any]:
        return _emit({"name": self.name, "sha256": self.sha256}, self.order, self.extra)


@_section
@dataclass(frozen=True)
class ModelInfo:
    """The model: its family, checkpoint, configuration (a DEQ's solver settings) and declared stopping kind
    (`stopping_kind` None: the rule the family implies, as artefacts written before `model.stopping` say)."""

    family: str
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    config: Mapping[str, Any] | None = None
    stopping_kind: str | None = field(default=None, metadata={"json": ("stopping",)})
    extra: Mapping[str, Any] = field(default_factory=dict)
    order: tuple[str, ...] = field(default=(), compare=False, repr=False)

    FIELDS: ClassVar[tuple[str, ...]]

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


@_section
@dataclass(frozen=True)
class InputContract:
    """What the encode graph takes: `dtype` int64 (token ids within `range`) or float32, `shape` ["batch", n, ...]."""

    dtype: str
    shape: tuple[Any, ...]
    range: tuple[int, int] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    order: tuple[str, ...] = field(default=(), compare=False, repr=False)

    FIELDS: ClassVar[tuple[str, ...]]

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


@_section
@dataclass(frozen=True)
class InitialState:
    """Where the recursion starts: `zeros` of `shape`, or `broadcast` of the learned states in the artefact's
    initial_state file."""

    kind: str
    shape: tuple[int, ...] | None = None
    file: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    order: tuple[str, ...] = field(default=(), compare=False, repr=False)

    FIELDS: ClassVar[tuple[str, ...]]

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


@_section
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

    FIELDS: ClassVar[tuple[str, ...]]

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
            tuple(d),
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
        return _emit(values, self.order or tuple(values), self.extra)


@_section
@dataclass(frozen=True)
class GraphInfo:
    """How the graphs run: forms exported, opset, state layout, step budget, unrolled steps, the halting threshold
    the graphs were validated at, the input contract, the halting rule in words, puzzle identifiers."""

    step_budget: int
    state: StateLayout = field(metadata={"json": ("state_names", "initial_state")})
    input: InputContract
    forms: tuple[str, ...] | None = None
    opset: int | None = None
    unrolled_steps: int | None = None
    halt_threshold: float | None = None  # None: not written (0.0)
    halting: str | None = None
    puzzle_ids: PuzzleTable | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    order: tuple[str, ...] = field(default=(), compare=False, repr=False)

    FIELDS: ClassVar[tuple[str, ...]]

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


@_section
@dataclass(frozen=True)
class RuntimeDefaults:
    """What `edgekit tune --apply` chose: the variant, threshold (None: never halt before the cap) and step cap the
    runtime answers with when the caller does not say."""

    variant: str
    max_steps: int
    halt_threshold: float | None = None
    chosen_by: str | None = None
    # False: the manifest names no threshold (the validated one applies); not a key of its own
    threshold_given: bool = field(default=True, metadata={"json": ()})
    extra: Mapping[str, Any] = field(default_factory=dict)
    order: tuple[str, ...] = field(default=(), compare=False, repr=False)

    FIELDS: ClassVar[tuple[str, ...]]

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


@_section
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

    FIELDS: ClassVar[tuple[str, ...]]

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


def rule_of(doc: Mapping[str, Any]) -> Stopping:
    """The stopping rule of a manifest document, or of the part of one that says it (`model`, and
    `graph.halt_threshold` for a halting-logit rule): what `Manifest.stopping` is for a whole checked one."""
    model = ModelInfo.from_json(doc["model"])
    return make_rule(model.kind, doc.get("graph", {}).get("halt_threshold", 0.0), model.solver)


@dataclass(frozen=True)
class Dimensions:
    """The sizes a manifest gives, as a memory estimate reads them: the model's configuration and solver settings,
    how many state tensors the recursion carries, one sample's input shape. `of` a checked manifest; `read` for a
    document not (or not yet) checked, or part of one: each part that is not of the expected type is None, and the
    values inside are left for the caller to bound."""

    config: Mapping[str, Any] | None = None
    solver: Mapping[str, Any] | None = None
    states: int | None = None
    sample_shape: tuple[Any, ...] | None = None

    @classmethod
    def of(cls, manifest: Manifest) -> Dimensions:
        m = manifest
        return cls(m.model.config, m.model.solver, len(m.graph.state_names), m.graph.input.sample_shape)

    @classmethod
    def read(cls, doc: object) -> Dimensions:
        """Whatever of a plain, unchecked document is usable (never raises)."""

        def part(d: object, key: str) -> Any:
            return d.get(key) if isinstance(d, Mapping) else None

        model, graph = part(doc, "model"), part(doc, "graph")
        config = part(model, "config")
        names, shape = part(graph, "state_names"), part(part(graph, "input"), "shape")
        solver = part(config, "solver")
        return cls(
            config if isinstance(config, Mapping) else None,
            solver if isinstance(solver, Mapping) else None,
            len(names) if isinstance(names, list) else None,
            tuple(shape[1:]) if isinstance(shape, list) and len(shape) >= 2 else None,
        )
