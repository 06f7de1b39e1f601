"""Per-row dynamic INT8: every quantized MatMul input gets one symmetric scale per row (max |x| over the
reduction axis), computed at run time, so a row's integers depend on that row alone.

Why: per-tensor INT8 (static or `int8_dynamic`) sizes one range for the whole tensor, and in the recursive demos
that range is set by a few large rows at the SwiGLU down projections: the noise it leaves on the other rows moves
the halting logit. A range per row fits each token (or, in a token-mixing MLP, each hidden channel) on its own.
No range spans the batch, so a puzzle's answer does not depend on its batch-mates, and the Loop form (no batch
compaction) answers exactly like the host loop (which compacts).

The rewrite composes onnxruntime's own CPU kernels through onnx-ir (no hand-written kernel):

    m = Max(ReduceMax(Abs(x), axis -1, keepdims), tiny)          once per MatMul input, shared by its MatMuls
    q = Cast(x * (127 / m) + 128.5, uint8)                      = round(x * 127 / m) + 128: zero point 128
    y = MatMulIntegerToFloat(q, W_int8, m / 127, col_scale, 128)  (kernel "contrib", com.microsoft)
      = MatMulInteger(q, W_int8, 128) -> Cast -> * col_scale -> * m / 127   (kernel "standard", plain ONNX)

W_int8 is symmetric per output column (zero point 0), stored once per weight however often the recursion calls
it. onnxruntime's MatMulInteger takes only a scalar zero point for A, so the row scale stays outside the
integers and A is uint8 with the constant zero point 128 (uint8 x int8 is the VNNI fast path; int8 x int8 is
several times slower on x86). The contrib kernel multiplies its output by a non-scalar A scale with broadcasting
(onnxruntime 1.17+; older releases refuse it loudly), which is one fused pass instead of three.
onnxruntime CPU only: `edgekit check` names MatMulInteger / MatMulIntegerToFloat as not a TensorRT graph. The modes
using it: `modes/int8_per_row.py`, `modes/int8_hybrid.py`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

TINY = np.float32(1e-30)  # floor of a row's max |x|: an all-zero row quantizes to zeros, not to NaN
QMAX = np.float32(127.0)  # symmetric: -127..127 (code -128 unused, so -x quantizes to exactly -q)
MS_DOMAIN = "com.microsoft"


@dataclass
class PerRowReport:
    """What the rewrite did: the quantized MatMul nodes, the others with the reason they stay float."""

    quantized: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    activation_quantizers: int = 0  # distinct MatMul inputs quantized (gate and up share one)
    weights: int = 0  # distinct int8 weights stored

    def info(self) -> dict[str, Any]:
        return {
            "matmuls": len(self.quantized),
            "weights": self.weights,
            "activation_quantizers": self.activation_quantizers,
            "kept_float": sorted(self.skipped),
        }


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(re.fullmatch(p, name) for p in patterns)


def select_matmuls(
    model: onnx.ModelProto, keep_patterns: list[str], keep_types: list[str], only: list[str] | None
) -> tuple[list[str], dict[str, str]]:
    """The MatMul nodes to quantize (plain MatMul with a constant 2-D float32 weight, not kept float by
    `quantize.keep_float`, matching `only` when given), and every other MatMul / Gemm with why it stays float."""
    inits = {t.name: t for t in model.graph.initializer}
    chosen: list[str] = []
    skipped: dict[str, str] = {}
    for n in model.graph.node:
        if n.op_type not in ("MatMul", "Gemm") or n.domain not in ("", "ai.onnx"):
            continue
        w = inits.get(n.input[1]) if len(n.input) > 1 else None
        if n.op_type in keep_types or _matches(n.name, keep_patterns):
            skipped[n.name] = "quantize.keep_float"
        elif n.op_type == "Gemm":
            skipped[n.name] = "Gemm (bias and transposes: kept float)"
        elif only is not None and not _matches(n.name, only):
            skipped[n.name] = "not in quantize.per_row.only"
        elif w is None:
            skipped[n.name] = "weight is not a constant"
        elif len(w.dims) != 2 or w.data_type != onnx.TensorProto.FLOAT:
            skipped[n.name] = "weight is not a 2-D float32 matrix"
        else:
            chosen.append(n.name)
    return chosen, skipped


def quantize_weight(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric INT8 per output column: (int8 weight, float32 column scale > 0)."""
    amax = np.abs(w.astype(np.float64)).max(axis=0)
    scale = np.where(amax > 0, amax / float(QMAX), 1.0)
    q = np.clip(np.rint(w / scale), -QMAX, QMAX).astype(np.int8)
    return q, scale.astype(np.float32)


def quantize_rows(x: np.ndarray, activation: str = "quantize_linear") -> tuple[np.ndarray, np.ndarray]:
    """The graph's activation quantization in numpy: (codes -127..127 as int32, row scale), for tests."""
    m = np.maximum(np.abs(x).max(axis=-1, keepdims=True), TINY).astype(np.float32)
    rs = m / QMAX
    if activation == "quantize_linear":  # QuantizeLinear: x / scale, rounded half to even
        return np.rint(x / rs).astype(np.int32), rs
    v = (x * (QMAX / m)).astype(np.float32) + np.float32(128.5)
    return np.floor(v).astype(np.int32) - 128, rs


def reference_matmul(x: np.ndarray, w: np.ndarray, activation: str = "quantize_linear") -> np.ndarray:
    """What one rewritten MatMul computes, in numpy (exact integer products, float32 scales)."""
    q, rs = quantize_rows(x, activation)
    qw, cs = quantize_weight(w)
    return (q.astype(np.int64) @ qw.astype(np.int64)).astype(np.float32) * cs * rs


class _Builder:
    """Inserts new nodes in front of the MatMul being replaced (`at`) and keeps constants unique by name."""

    def __init__(self, graph: Any, opset: int) -> None:
        self.g, self.opset = graph, opset
        self.at: Any = None
        self.tiny = self.const("per_row/tiny", np.array(TINY, np.float32))
        self.qmax = self.const("per_row/qmax", np.array(QMAX, np.float32))
        self.offset = self.const("per_row/offset", np.array(128.5, np.float32))
        self.zp = self.const("per_row/zero_point", np.array(128, np.uint8))
        self.axes = self.const("per_row/axes", np.array([-1], np.int64))

    def const(self, name: str, value: np.ndarray) -> Any:
        import onnx_ir as ir

        if name in self.g.initializers:
            return self.g.initializers[name]
        t = ir.tensor(value, name=name)
        v = ir.Value(name=name, shape=ir.Shape(list(value.shape)), type=ir.TensorType(t.dtype), const_value=t)
        self.g.register_initializer(v)
        return v

    def node(self, op: str, inputs: list[Any], name: str, domain: str = "", **attrs: Any) -> Any:
        import onnx_ir as ir

        def attr(k: str, v: Any) -> Any:
            if isinstance(v, np.ndarray):
                return ir.AttrTensor(k, ir.tensor(v))
            return ir.AttrInt64s(k, v) if isinstance(v, list) else ir.AttrInt64(k, v)

        n = ir.Node(domain, op, inputs, attributes=[attr(k, v) for k, v in attrs.items()], name=name)
        self.g.insert_before(self.at, n)
        n.outputs[0].name = f"{name}_output"
        return n.outputs[0]

    def reduce(self, op: str, x: Any, name: str) -> Any:
        """ReduceMax / ReduceMin over the last axis, keeping it (axes became an input in opset 18)."""
        if self.opset >= 18:
            return self.node(op, [x, self.axes], name, keepdims=1)
        return self.node(op, [x], name, axes=[-1], keepdims=1)


def _quantize_linear(b: _Builder, x: Any, k: int, p: str) -> tuple[Any, Any]:
    """max |x| from ReduceMax and ReduceMin (two read-only passes), then one per-axis QuantizeLinear over the rows
    of a 2-D view (one read, a uint8 write): the fewest passes over x, which decides the speed for wide inputs
    (the SwiGLU down projections read 4x the hidden size)."""
    neg = b.node("Neg", [b.reduce("ReduceMin", x, f"{p}/reduce_min")], f"{p}/neg")
    amax = b.node("Max", [b.reduce("ReduceMax", x, f"{p}/reduce_max"), neg, b.tiny], f"{p}/amax")
    rs = b.node("Div", [amax, b.qmax], f"{p}/row_scale")
    rows = b.node("Reshape", [x, b.const(f"per_row/rows_of_{k}", np.array([-1, k], np.int64))], f"{p}/rows")
    flat = b.node("Reshape", [rs, b.axes], f"{p}/row_scale_flat")
    n_rows = b.node("Shape", [flat], f"{p}/n_rows")
    zps = b.node("ConstantOfShape", [n_rows], f"{p}/zero_points", value=np.array([128], np.uint8))
    q = b.node("QuantizeLinear", [rows, flat, zps], f"{p}/quantize", axis=0)
    return b.node("Reshape", [q, b.node("Shape", [x], f"{p}/shape")], f"{p}/uint8"), rs


def _elementwise(b: _Builder, x: Any, k: int, p: str) -> tuple[Any, Any]:
    """Abs, ReduceMax, Mul, Add, Cast: fewer nodes (faster at batch 1), more passes over x."""
    top = b.reduce("ReduceMax", b.node("Abs", [x], f"{p}/abs"), f"{p}/reduce_max")
    amax = b.node("Max", [top, b.tiny], f"{p}/amax")
    scaled = b.node("Mul", [x, b.node("Div", [b.qmax, amax], f"{p}/inverse_scale")], f"{p}/scaled")
    # Cast truncates and every value is >= 1.5 here, so floor(v + 128.5) = round(v) + 128: no Round pass
    u8 = b.node("Cast", [b.node("Add", [scaled, b.offset], f"{p}/offset")], f"{p}/uint8", to=onnx.TensorProto.UINT8)
    return u8, b.node("Div", [amax, b.qmax], f"{p}/row_scale")


def _contrib(b: _Builder, u8: Any, qw: Any, row_scale: Any, cs: Any, name: str) -> Any:
    inputs = [u8, qw, row_scale, cs, b.zp]
    return b.node("MatMulIntegerToFloat", inputs, f"{name}/matmul_integer_to_float", domain=MS_DOMAIN)


def _standard(b: _Builder, u8: Any, qw: Any, row_scale: Any, cs: Any, name: str) -> Any:
    acc = b.node("MatMulInteger", [u8, qw, b.zp], f"{name}/matmul_integer")
    y = b.node("Cast", [acc], f"{name}/to_float", to=onnx.TensorProto.FLOAT)
    return b.node("Mul", [b.node("Mul", [y, cs], f"{name}/column_scale"), row_scale], f"{name}/row_scale")


ACTIVATIONS: dict[str, Callable[..., tuple[Any, Any]]] = {
    "quantize_linear": _quantize_linear,
    "elementwise": _elementwise,
}
KERNELS: dict[str, Callable[..., Any]] = {"contrib": _contrib, "standard": _standard}


def take_over(graph: Any, node: Any, value: Any) -> None:
    """`value` takes the place of `node`'s output (its name, type and shape, every use, graph outputs too) and
    `node` is removed: a rewritten MatMul's output keeps its name, so whatever reads it by name still finds it."""
    out = node.outputs[0]
    if out.type is not None:  # intermediate values of an un-inferred graph carry none
        value.type, value.shape = out.type, out.shape
    name = out.name
    out.name = f"{name}__replaced"
    value.name = name
    out.replace_all_uses_with(value, replace_graph_outputs=True)
    graph.remove(node, safe=True)


def drop_unused_initializers(graph: Any) -> None:
    """Remove the initializers no node reads any more (the float weights a rewrite replaced)."""
    for n in [k for k, v in graph.initializers.items() if not v.uses() and not v.is_graph_output()]:
        del graph.initializers[n]


def per_row_int8(
    model: onnx.ModelProto,
    keep_patterns: list[str],
    keep_types: list[str],
    only: list[str] | None = None,
    kernel: str = "contrib",
    activation: str = "quantize_linear",
) -> tuple[onnx.ModelProto, PerRowReport]:
    """Rewrite the chosen MatMuls of a float32 graph into per-row dynamic INT8 (see the module docstring).
    The input model is not changed. Returns the new model and a report."""
    import onnx_ir as ir

    if kernel not in KERNELS or activation not in ACTIVATIONS:
        raise ValueError(f"unknown per-row kernel {kernel!r} or activation quantizer {activation!r}")
    chosen, skipped = select_matmuls(model, keep_patterns, keep_types, only)
    report = PerRowReport(skipped=skipped)
    m = ir.from_proto(model)
    opset = m.opset_imports.get("", 17)
    if opset < 13:
        raise ValueError(f"per-row INT8 needs ONNX opset 13 or later (the graph has {opset})")
    b = _Builder(m.graph, opset)
    quantized_inputs: dict[str, tuple[Any, Any]] = {}  # MatMul input -> (uint8 codes, row scale): gate, up share
    weights: dict[str, tuple[Any, Any]] = {}  # float weight -> (int8 weight, column scale), once per weight
    by_name = {n.name: n for n in m.graph}
    for name in chosen:
        mm = b.at = by_name[name]
        x, w = mm.inputs
        assert x is not None and w is not None and w.const_value is not None and w.name is not None
        if w.name not in weights:
            qw, cs = quantize_weight(w.const_value.numpy())
            weights[w.name] = (b.const(f"{w.name}/int8", qw), b.const(f"{w.name}/column_scale", cs))
        key = x.name or name
        if key not in quantized_inputs:
            k = int(w.const_value.numpy().shape[0])
            quantized_inputs[key] = ACTIVATIONS[activation](b, x, k, f"{name}/per_row")
        u8, row_scale = quantized_inputs[key]
        qw, cs = weights[w.name]
        take_over(m.graph, mm, KERNELS[kernel](b, u8, qw, row_scale, cs, name))
        report.quantized.append(name)
    report.activation_quantizers, report.weights = len(quantized_inputs), len(weights)
    drop_unused_initializers(m.graph)
    if kernel == "contrib" and chosen and MS_DOMAIN not in m.opset_imports:
        m.opset_imports[MS_DOMAIN] = 1
    return ir.to_proto(m), report
