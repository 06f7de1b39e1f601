"""Recipes and targets: versioned YAML schemas, validated before any heavy work.

Recipes are data, never code: they are parsed with `yaml.safe_load`, every key is checked against the schema
(an unknown key gets the closest valid name), and nothing in them is imported or evaluated. Targets ship inside
the package (edgekit/targets/*.yaml, read by edgekit.targets with the standard library) and are validated here.
"""

from __future__ import annotations

import difflib
import math
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import RecipeError
from .quantize.config import QuantizeSection
from .safe_yaml import YAMLFileError, load_yaml_file, short_repr
from .tasks import task_names

RECIPE_SCHEMA_VERSION = 1
TARGET_SCHEMA_VERSION = 1
PRECISION_ALIASES = {"fp32": "float32", "fp16": "float16"}  # recipes accept both vocabularies


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSection(_Strict):
    path: str = Field(description="checkpoint folder or file, relative to the recipe file")
    seq_len: int | None = Field(default=None, gt=0, description="only for RoPE checkpoints whose shapes cannot tell")


class TaskSection(_Strict):
    name: str = Field(description="a registered task (edgekit/tasks/): " + ", ".join(task_names()))
    n: int = Field(default=256, gt=0, le=1_000_000, description="held-out samples to evaluate on")
    givens: tuple[int, int] | None = Field(
        default=None, description="sudoku: range of givens (default 28-40); 0 = the minimal puzzle itself"
    )
    seed: int = Field(default=123, ge=0, le=2**63 - 1)
    data: str | None = Field(
        default=None,
        description="examples from a dataset folder in the reference builders' layout (<split>/dataset.json, "
        "<set>__inputs.npy, ...) or one .npz (inputs, labels[, puzzle_identifiers]), relative to the recipe; "
        "unset: the task generates its examples",
    )
    split: str = Field(
        default="test",
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="with task.data: the split validated on, its first n examples in file order",
    )
    calibration_split: str = Field(
        default="train",
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="with task.data: the split calibration, halting-threshold and search sets are drawn from",
    )

    @model_validator(mode="after")
    def _data(self) -> TaskSection:
        from .tasks import get_task

        task = get_task(self.name)
        if self.data is None and not task.generates:
            raise ValueError(f"task {self.name!r} reads its examples from files: set task.data")
        if self.data is not None and not task.reads_files:
            raise ValueError(f"task {self.name!r} does not read task.data (it uses its own examples)")
        if self.data is not None and not self.data.endswith(".npz") and self.split == self.calibration_split:
            raise ValueError(
                f"task.split and task.calibration_split are both {self.split!r}: calibration and search sets "
                "must never be drawn from the validation examples"
            )
        return self

    @field_validator("givens")
    @classmethod
    def _givens(cls, v: tuple[int, int] | None) -> tuple[int, int] | None:
        if v is not None and not (v == (0, 0) or 17 <= v[0] <= v[1] <= 81):
            raise ValueError(
                "must be [lo, hi] with 17 <= lo <= hi <= 81 (a Sudoku has 81 cells and needs at least "
                "17 givens), or [0, 0] for minimal puzzles"
            )
        return v

    @field_validator("name")
    @classmethod
    def _known_task(cls, v: str) -> str:
        names = task_names()
        if v not in names:
            raise ValueError(f"unknown task {v!r}{_suggest(v, names)}; known: {', '.join(names)}")
        return v


class ExportSection(_Strict):
    opset: int = Field(default=17, ge=13, le=23, description="17 by default; TensorRT 10.3 (JetPack 6) parses up to 20")
    forms: list[Literal["step", "loop", "unrolled"]] = Field(
        default=["step", "loop", "unrolled"],
        min_length=1,
        description="step graphs are always written (every other form and the host-loop runtime build on them)",
    )
    precisions: list[Literal["float32", "float16"]] = Field(default=["float32"], min_length=1)
    optimize: bool = Field(
        default=True,
        description="step graphs: fold shape arithmetic and split sliced SwiGLU "
        "projections (same numbers, ~1.2-1.3x faster steps on onnxruntime CPU)",
    )
    puzzle_ids: list[str | int] | str | None = Field(
        default=None,
        description="rows of the puzzle-embedding table the exported graphs keep: a list of identifier names "
        "(identifiers.json of task.data) or ids, a text file of names (one per line, relative to the recipe), or "
        "from_data (the identifiers of task.split); unset: the whole table",
    )
    external_data: Literal["auto", "always"] = Field(
        default="auto",
        description="auto: the puzzle-embedding table is stored beside encode.onnx (ONNX external data) when it "
        "is over 1 GiB (protobuf's 2 GB limit); always: whenever the model has one",
    )

    @field_validator("puzzle_ids")
    @classmethod
    def _ids(cls, v: list[str | int] | str | None) -> list[str | int] | str | None:
        if isinstance(v, list) and not 1 <= len(v) <= 50_000_000:
            raise ValueError("must list at least one identifier")
        if isinstance(v, list) and any(isinstance(i, int) and i < 0 for i in v):
            raise ValueError("identifier ids are >= 0")
        if isinstance(v, str) and not v:
            raise ValueError("must be a list, a file of names, or from_data")
        return v

    @field_validator("precisions", mode="before")
    @classmethod
    def _precision_aliases(cls, v: Any) -> Any:
        """fp32 / fp16 (the targets' and `edgekit plan`'s words) name the same graphs as float32 / float16."""
        return [PRECISION_ALIASES.get(p, p) if isinstance(p, str) else p for p in v] if isinstance(v, list) else v

    @field_validator("precisions")
    @classmethod
    def _fp32_first(cls, v: list[str]) -> list[str]:
        if "float32" not in v:
            raise ValueError("must include float32 (the export-parity baseline and the quantizer's input)")
        return sorted(set(v), key=["float32", "float16"].index)


class ValidateSection(_Strict):
    halt_threshold: float | Literal["auto"] = Field(
        default="auto",
        description="halt when the halting logit exceeds this; 'auto' (the default) picks the smallest threshold "
        "whose early-halting accuracy stays within halt_tolerance of the full budget on held-out data, and each "
        "compressed variant its own (the fewest mean steps whose exact accuracy at halting stays within "
        "gates.max_exact_halted_drop of float32's); 0 is the model's training rule. Models without a halting head "
        "ignore it",
    )
    reference: Literal["float32", "trained", "both"] = Field(
        default="float32",
        description="PyTorch reference the gates compare with: float32 (like the ONNX graphs; fast), the model's "
        "trained precision (bfloat16 for the references; slow on CPUs without AVX512-BF16), or both",
    )
    halt_tolerance: float = Field(default=0.005, ge=0, le=1)

    @field_validator("halt_threshold")
    @classmethod
    def _finite(cls, v: float | str) -> float | str:
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError("must be a finite number or 'auto'")
        return v

    halt_calibration_n: int = Field(default=128, gt=0, le=1_000_000)
    batch_size: int = Field(default=64, gt=0, le=65536)
    latency_batch: int = Field(default=1, gt=0, le=65536, description="batch the latency gates are measured at")
    latency_n: int = Field(default=64, gt=0, le=100_000, description="validation examples timed for latency gates")
    latency_rounds: int = Field(
        default=9,
        ge=1,
        le=1000,
        description="timed rounds of the latency gates: each round times float32 and every variant in turn, the "
        "gates read the median and its 95 % interval (9 rounds: the 2nd to 8th of the sorted values)",
    )
    # where the rollouts run (edgekit/scale, docs/scale.md): the numbers are the same on every executor
    executor: Literal["serial", "processes", "ray"] = Field(
        default="serial",
        description="serial (this process), processes (this machine), ray (a local Ray instance or a cluster; "
        "the scale extra); `--executor` overrides",
    )
    workers: int | None = Field(default=None, ge=1, le=4096, description="workers (default: one per CPU)")
    ray_address: str | None = Field(
        default=None, max_length=256, description="a Ray cluster (host:port or ray://host:port); default RAY_ADDRESS"
    )
    device: Literal["cpu", "cuda", "auto"] = Field(
        default="cpu",
        description="PyTorch references (float32, TF32 off) and ONNX variants (onnxruntime's CUDA provider, "
        "onnxruntime-gpu) on a GPU; auto: where each finds one. Not bit-identical to CPU results",
    )
    openvino: list[Literal["f32", "bf16", "f16", "int8"]] = Field(
        default_factory=list,
        description="OpenVINO inference precisions validated like a variant (the openvino extra): the float32 "
        "graphs compiled by OpenVINO for this machine's CPU at each precision (int8: the int8_weight_only "
        "variant's INT8 weights with activations quantized per token at run time; needs that quantize mode), run "
        "through the device's host loop on the validation examples, entries openvino-<precision> with the accuracy "
        "gates of an ONNX variant against float32 PyTorch (reduced precisions also against the trained reference "
        "where that is validated); empty: none",
    )

    @field_validator("openvino")
    @classmethod
    def _ov_order(cls, v: list[str]) -> list[str]:
        """Each precision once, widest first (f32 is the one to compare the others with)."""
        return sorted(set(v), key=["f32", "bf16", "f16", "int8"].index)


class GatesSection(_Strict):
    min_exact: float | None = Field(
        default=0.01,
        ge=0,
        le=1,
        description="absolute exact accuracy (full budget) every ONNX variant must reach: catches a broken model "
        "that matches an equally broken reference (0 points lost of 0)",
    )
    max_exact_drop: float | None = Field(default=0.01, ge=0, le=1, description="fraction, e.g. 0.01 = 1 point")
    min_argmax_agreement: float | None = Field(default=None, ge=0, le=1)
    max_exact_halted_drop: float | None = Field(
        default=0.01,
        ge=0,
        le=1,
        description="exact accuracy at each sample's halting step (the answer a device returns); on by default, "
        "evaluated for models with a halting head",
    )
    min_halting_agreement: float | None = Field(
        default=0.95,
        ge=0,
        le=1,
        description="share halting at the same step: the float32 export vs the reference, each compressed variant "
        "vs the float32 export; on by default, evaluated for models with a halting head",
    )
    max_pass2_drop: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="ARC: pass@2 after voting at the full budget (TRM: fractional credit per test input; HRM: all "
        "test inputs of a task), reference minus variant",
    )
    max_residual: float | None = Field(
        default=None, gt=0, description="DEQ: ‖f(z)-z‖/‖f(z)‖ of the returned z under the original model"
    )
    max_size_mb: float | None = Field(
        default=None, gt=0, description="budget (exit 4): MB of each ONNX variant's step graphs (encode+step+readout)"
    )
    max_latency_ms: float | None = Field(
        default=None,
        gt=0,
        description="budget (exit 4): ms per puzzle of each ONNX variant on the validating machine (host loop, "
        "early halting, validate.latency_batch; median of validate.latency_rounds rounds, float32 and the "
        "variants timed in turn in each)",
    )
    min_speedup_vs_float32: float | None = Field(
        default=None,
        gt=0,
        description="budget (exit 4): each compressed variant vs float32 in the same rounds, the median of the "
        "per-round ratios; a 95 % interval that straddles the limit is reported as undecided",
    )


class Recipe(_Strict):
    schema_version: Literal[1] = 1
    name: str = Field(
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$",
        description="a plain file name (the default artefact folder): no path, no leading dot",
    )
    model: ModelSection
    task: TaskSection
    target: str = "x86-cpu"
    export: ExportSection = ExportSection()
    validate_: ValidateSection = Field(default=ValidateSection(), alias="validate")
    gates: GatesSection = GatesSection()
    quantize: QuantizeSection = QuantizeSection()
    output: str | None = Field(
        default=None, description="artefact folder (default artefacts/<name>), relative to the recipe"
    )

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _mode_aliases(cls, data: Any) -> Any:
        """quantize.modes takes fp16 for float16, as export.precisions does."""
        q = data.get("quantize") if isinstance(data, dict) else None
        if isinstance(q, dict) and isinstance(q.get("modes"), list):
            modes = [PRECISION_ALIASES.get(m, m) if isinstance(m, str) else m for m in q["modes"]]
            data = {**data, "quantize": {**q, "modes": modes}}
        return data

    @model_validator(mode="after")
    def _task_gates(self) -> Recipe:
        if self.gates.max_pass2_drop is not None and self.task.name != "arc":
            raise ValueError(f"gates.max_pass2_drop scores ARC voting; task {self.task.name!r} has none")
        return self

    @field_validator("target")
    @classmethod
    def _known_target(cls, v: str) -> str:
        names = target_names()
        if v not in names:
            raise ValueError(f"unknown target {v!r}{_suggest(v, names)}; `edgekit targets` lists them")
        return v


class BatchProfile(_Strict):
    """TensorRT optimization profile for the dynamic batch axis: engines accept min..max, tuned for opt."""

    min: int = Field(ge=1)
    opt: int = Field(ge=1)
    max: int = Field(ge=1)

    @field_validator("max")
    @classmethod
    def _ordered(cls, v: int, info) -> int:
        lo, opt = info.data.get("min", 1), info.data.get("opt", 1)
        if not lo <= opt <= v:
            raise ValueError(f"needs min <= opt <= max, got {lo}, {opt}, {v}")
        return v


class Target(_Strict):
    schema_version: Literal[1] = 1
    name: str
    description: str
    backend: Literal["onnxruntime", "tensorrt", "openvino"]
    precisions: list[Literal["fp32", "fp16", "bf16", "int8", "fp8"]]
    openvino_device: Literal["CPU", "GPU", "NPU"] | None = Field(
        default=None, description="OpenVINO targets: the device the graphs are compiled for"
    )
    cpu_flags: list[str] = Field(
        default_factory=list, description="CPU targets: ISA extensions (/proc/cpuinfo flags) the target needs"
    )
    max_opset: int = 20
    tensorrt: str | None = Field(default=None, description="TensorRT version range, e.g. '>=10.3,<10.4'")
    compute_capability: str | None = None
    memory_gb: float | None = None
    memory_reserved_gb: float = Field(
        default=0.0, ge=0, description="memory the OS and other processes keep (not available to the model)"
    )
    unified_memory: bool = Field(
        default=False, description="CPU and GPU share the DRAM (Jetson): an engine's file and the engine coexist"
    )
    workspace_mb: int | None = None
    batch_sizes: list[int] = [1, 64]
    batch_profile: BatchProfile | None = Field(
        default=None, description="min/opt/max batch (default: from batch_sizes)"
    )
    device_model: str | None = Field(
        default=None, description="Jetson: text in /proc/device-tree/model, checked before a build"
    )
    jetpack: list[str] = Field(
        default_factory=list,
        description="Jetson: the JetPack releases whose TensorRT, CUDA and Python this target describes",
    )
    cuda: str | None = Field(default=None, description="Jetson: the CUDA release its JetPack ships")
    python: str | None = Field(
        default=None, description="Jetson: the system Python its JetPack's TensorRT bindings are built for"
    )

    @field_validator("jetpack")
    @classmethod
    def _versions(cls, v: list[str]) -> list[str]:
        if any(not re.fullmatch(r"\d+\.\d+(\.\d+)?", x) for x in v):
            raise ValueError("JetPack releases are written like '6.2'")
        return v

    def profile(self) -> BatchProfile:
        """The batch profile engines are built for: explicit, or smallest / largest of batch_sizes (opt = largest)."""
        if self.batch_profile:
            return self.batch_profile
        return BatchProfile(min=min(self.batch_sizes), opt=max(self.batch_sizes), max=max(self.batch_sizes))


def _suggest(word: str, options: list[str] | set[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def target_names() -> list[str]:
    """The targets shipped inside the package (edgekit/targets/*.yaml)."""
    from . import targets

    return targets.target_names()


def load_target(name: str) -> Target:
    """A shipped target, validated; an unknown name (a recipe's `target` is untrusted) is one line, exit 2."""
    from . import targets

    try:
        data = targets.read_target(name)
    except KeyError:
        raise RecipeError(
            f"unknown target {name!r}{_suggest(name, target_names())}", "`edgekit targets` lists the valid ones"
        ) from None
    except targets.TargetFileError as e:
        raise RecipeError(f"target file {e}", "reinstall edgekit (the packaged target files are damaged)") from None
    version = data.get("schema_version", TARGET_SCHEMA_VERSION)
    if version != TARGET_SCHEMA_VERSION:
        raise RecipeError(
            f"target {name!r}: schema_version {version!r} is not supported",
            f"this edgekit reads target schema_version {TARGET_SCHEMA_VERSION}",
        )
    try:
        return Target.model_validate(data)
    except ValidationError as e:
        raise RecipeError(f"target {name!r}: {_explain(e, Target, data)}", "fix the target file") from None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = load_yaml_file(path, "recipe")
    except YAMLFileError as e:
        raise RecipeError(e.problem, e.fix) from None
    if not isinstance(data, dict):
        raise RecipeError(f"{path} must be a YAML mapping of recipe keys", "see recipes/trm-sudoku.yaml for the layout")
    return data


def _model_fields(model: type[BaseModel]) -> dict[str, type[BaseModel] | None]:
    out: dict[str, type[BaseModel] | None] = {}
    for name, f in model.model_fields.items():
        ann = f.annotation
        out[f.alias or name] = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return out


def _explain(e: ValidationError, schema: type[BaseModel], data: dict[str, Any]) -> str:
    err = e.errors()[0]
    loc = [str(p) for p in err["loc"]]
    where = ".".join(loc) or "recipe"
    if err["type"] == "extra_forbidden":
        # Walk the schema to the parent of the bad key and suggest the closest valid sibling.
        model: type[BaseModel] | None = schema
        for part in loc[:-1]:
            model = _model_fields(model).get(part) if model else None
        valid = list(_model_fields(model)) if model else []
        return f"unknown key {where!r}{_suggest(loc[-1], valid)}"
    if err["type"] == "missing":
        return f"missing required key {where!r}"
    msg = err["msg"].removeprefix("Value error, ")
    if msg.startswith("unknown target"):
        return msg
    if msg.startswith("unknown "):
        return f"{where[:100]}: {msg[:200]}"
    return f"{where[:100]}: {msg[:200]} (got {short_repr(err.get('input'))})"


def parse_recipe(data: dict[str, Any], source: str = "recipe") -> Recipe:
    version = data.get("schema_version", RECIPE_SCHEMA_VERSION)
    if version != RECIPE_SCHEMA_VERSION:
        raise RecipeError(
            f"{source}: schema_version {version!r} is not supported",
            f"this edgekit reads schema_version {RECIPE_SCHEMA_VERSION}",
        )
    try:
        return Recipe.model_validate(data)
    except ValidationError as e:
        raise RecipeError(
            f"{source}: {_explain(e, Recipe, data)}", "see docs/recipes.md (every key) and recipes/trm-sudoku.yaml"
        ) from None


def load_recipe(path: str | Path) -> tuple[Recipe, Path]:
    """(recipe, folder that relative paths in it are resolved against)."""
    path = Path(path)
    recipe, base = parse_recipe(_read_yaml(path), str(path)), path.resolve().parent
    if recipe.task.data is not None:  # relative to the recipe, like model.path
        recipe.task.data = str((base / Path(recipe.task.data).expanduser()).resolve())
    return recipe, base
