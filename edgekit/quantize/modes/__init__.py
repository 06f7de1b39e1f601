"""Quantization modes, one file each: every module in this package registers one or more `Mode`s.

A mode says what it is as data — its name, the recipe section holding its own settings (if any), the form of
the graphs it makes (`FORMS`: which Q/DQ type, which onnxruntime-only ops, whether TensorRT parses them) — and
names its handler (`QuantizeJob -> Quantized`) and its layer-by-layer rebuild for `edgekit debug`. The schema
(`quantize.config`: `QuantMode`, the `quantize` section's keys), the Q/DQ lint (`quantize/lint.py`), the recipe
check against TensorRT targets, `edgekit check` and `edgekit debug` all read this registry, so adding a mode is
adding one file here.

Standard library only at import: mode files import their settings' pydantic models, and onnx, NNCF or torch only
inside their handlers, so `import edgekit.schema` stays light. Modes register before the schema is built (the
first import of `edgekit.quantize.config`); a mode registered later could not be selected, so that is refused.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import onnx

    from ..stage import Quantized, QuantizeJob

    Handler = Callable[[QuantizeJob], Quantized]
    Partial = Callable[[onnx.ModelProto, list[dict[str, Any]], dict[str, Any], list[str]], onnx.ModelProto]


@dataclass(frozen=True)
class Form:
    """What a mode's graphs contain, as the checks read it."""

    tensorrt: bool  # TensorRT parses the graphs (explicit quantization); False: onnxruntime CPU kernels only
    qdq: str | None  # the type its Q/DQ nodes quantize to, which the Q/DQ lint checks; None: no Q/DQ
    ops: tuple[str, ...]  # onnxruntime-only operators its graphs use, which `edgekit check` names
    description: str


_PER_ROW_OPS = ("MatMulInteger", "MatMulIntegerToFloat")
FORMS: dict[str, Form] = {
    "qdq_int8": Form(True, "int8", (), "static symmetric signed INT8 Q/DQ (activations and weights)"),
    "qdq_int8_fp16": Form(
        True, "int8", (), "static symmetric signed INT8 Q/DQ, and float16 MatMuls between Casts (strongly typed)"
    ),
    "weight_only": Form(True, "int8", (), "symmetric signed INT8 weights behind DequantizeLinear, float compute"),
    "dynamic": Form(
        False,
        None,
        ("DynamicQuantizeLinear", "DynamicQuantizeMatMul", *_PER_ROW_OPS),
        "onnxruntime dynamic INT8 (activation ranges per call)",
    ),
    "per_row": Form(False, None, _PER_ROW_OPS, "per-row dynamic INT8 on onnxruntime's integer MatMul kernels"),
    "qdq_int8_per_row": Form(
        False, None, _PER_ROW_OPS, "static INT8 Q/DQ with per-row dynamic INT8 MatMuls (onnxruntime kernels)"
    ),
    "contrib_nbits": Form(False, None, ("MatMulNBits",), "block-wise n-bit weights in com.microsoft MatMulNBits"),
    "fp16": Form(True, None, (), "float16 graphs (an export precision: no Q/DQ)"),
    "none": Form(True, None, (), "float graphs, no Q/DQ"),
}


@dataclass(frozen=True)
class Section:
    """A mode's own settings: `quantize.<key>` in a recipe, validated by `model` (a pydantic model)."""

    key: str
    model: type
    meaning: str  # the key's one line in docs/recipes.md's `quantize` table
    doc: str  # the sentence under the section's own heading in docs/recipes.md


@dataclass(frozen=True)
class Mode:
    """A registered quantization mode. `handler` None: the variant is made by the export (float16)."""

    name: str
    form: str  # a key of FORMS
    summary: str
    handler: Handler | None = None
    partial: Partial | None = None  # the mode's method on chosen MatMul nodes only (`edgekit debug`)
    section: Section | None = None

    @property
    def qdq_form(self) -> Form:
        return FORMS[self.form]

    @property
    def tensorrt(self) -> bool:
        return self.qdq_form.tensorrt

    @property
    def backends(self) -> list[str]:
        return ["onnxruntime", "tensorrt"] if self.tensorrt else ["onnxruntime"]


MODES: dict[str, Mode] = {}
_built = False  # set when the schema has read the registry


def register(mode: Mode) -> Mode:
    """Add a mode (at import of its file). Refused once the schema is built, for a taken name or section key, or an
    unknown form."""
    if _built:
        raise RuntimeError(
            f"quantization mode {mode.name!r} registered after the recipe schema was built: import its module before "
            "edgekit.schema / edgekit.quantize.config"
        )
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", mode.name) or mode.name in MODES:
        raise ValueError(f"quantization mode name {mode.name!r} is taken or not lower_snake_case")
    if mode.form not in FORMS:
        raise ValueError(f"mode {mode.name}: unknown form {mode.form!r}; one of {', '.join(FORMS)}")
    if mode.section and mode.section.key in {s.key for s in sections()}:
        raise ValueError(f"mode {mode.name}: section quantize.{mode.section.key} belongs to another mode")
    MODES[mode.name] = mode
    return mode


def freeze() -> list[str]:
    """The mode names, in registry order; the schema calls this once, after which no mode registers."""
    global _built
    _built = True
    return list(MODES)


def sections() -> list[Section]:
    """Every mode's own settings section, in registry order."""
    return [m.section for m in MODES.values() if m.section is not None]


def cpu_only_modes(modes: list[str]) -> list[str]:
    """The requested modes whose graphs only onnxruntime runs (for the recipe check against TensorRT targets)."""
    return [m for m in modes if m in MODES and not MODES[m].tensorrt]


def tensorrt_quantized_modes() -> list[str]:
    """Modes that make TensorRT Q/DQ graphs (what `edgekit check` suggests instead of an onnxruntime-only one)."""
    return [n for n, m in MODES.items() if m.tensorrt and m.qdq_form.qdq]


def onnxruntime_ops() -> dict[str, str]:
    """onnxruntime-only operator -> the modes whose form makes it ("a / b"), for `edgekit check`'s message."""
    by_op: dict[str, list[str]] = {}
    for name, m in MODES.items():
        for op in m.qdq_form.ops:
            by_op.setdefault(op, []).append(name)
    return {op: " / ".join(names) for op, names in by_op.items()}


def regexes(patterns: list[str]) -> list[str]:
    """`patterns` unchanged once each compiles: the node-name patterns of a mode's own section, checked when the
    recipe loads; a ValueError names the first that does not."""
    for p in patterns:
        try:
            re.compile(p)
        except re.error as e:
            raise ValueError(f"{p!r} is not a regular expression ({e})") from None
    return patterns


def others_than(model: Any, names: list[str]) -> list[str]:
    """Regexes matching every MatMul / Gemm node of `model` except `names`: how a partial rebuild tells a quantizer
    what to keep float."""
    keep = set(names)
    return [re.escape(n.name) for n in model.graph.node if n.op_type in ("MatMul", "Gemm") and n.name not in keep]


def _discover() -> None:
    """Import every mode file of this package; the registry lists the modes found here by name (modes registered
    from elsewhere follow, in their order)."""
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
    for name in sorted(MODES):
        MODES[name] = MODES.pop(name)


_discover()

__all__ = [
    "FORMS",
    "MODES",
    "Form",
    "Mode",
    "Section",
    "cpu_only_modes",
    "freeze",
    "onnxruntime_ops",
    "others_than",
    "regexes",
    "register",
    "sections",
    "tensorrt_quantized_modes",
]
