"""`edgekit check`: will this artefact's ONNX load on the target? A static check that needs no GPU and no TensorRT.

TensorRT targets: opset, every op (inside Loop/If/Scan bodies too) against the parser's table for the target's
TensorRT range, tensor types, the Q/DQ form TensorRT accepts (symmetric signed INT8, FP8 only where the target has
it), Loop/If rules and per-op restrictions (edgekit.tensorrt.oplist says where each rule comes from). The onnxruntime
target instead loads every graph in an InferenceSession, which is the real test there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..errors import first_line
from ..quantize.modes import onnxruntime_ops, tensorrt_quantized_modes
from ..schema import Target, load_target
from . import oplist, versions
from .graphs import load_manifest, onnx_files, quantization_types
from .memory import activation_bytes_per_sample, memory_estimate, memory_messages

if TYPE_CHECKING:
    import onnx

Severity = Literal["error", "warning", "note"]


@dataclass
class Finding:
    severity: Severity
    file: str
    node: str | None
    op: str | None
    message: str


@dataclass
class CheckReport:
    target: str
    backend: str
    tensorrt: str | None
    artefact: str
    findings: list[Finding] = field(default_factory=list)
    graphs: dict[str, dict] = field(default_factory=dict)
    memory: dict[str, Any] = field(default_factory=dict)

    @property
    def compatible(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)

    @property
    def verdict(self) -> str:
        return "compatible" if self.compatible else "incompatible"

    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    def to_dict(self) -> dict:
        return {
            "schema_version": 1,
            "artefact": self.artefact,
            "target": self.target,
            "backend": self.backend,
            "tensorrt": self.tensorrt,
            "verdict": self.verdict,
            "graphs": self.graphs,
            "memory": self.memory,
            "counts": {s: sum(f.severity == s for f in self.findings) for s in ("error", "warning", "note")},
            "findings": [asdict(f) for f in self.findings],
        }


def check_artefact(folder: str | Path, target: Target | str) -> CheckReport:
    """Check every .onnx file an artefact's manifest lists against `target`."""
    target = load_target(target) if isinstance(target, str) else target
    folder = Path(folder)
    manifest = load_manifest(folder)
    files = onnx_files(folder, manifest)
    report = CheckReport(target.name, target.backend, target.tensorrt, str(folder))
    for name, path in files.items():
        findings, summary = check_onnx(path, target, label=path.relative_to(folder).as_posix())
        report.findings += findings
        report.graphs[name] = summary
    report.memory = memory_estimate(manifest.variants, manifest.model.config, report.graphs, target)
    for severity, label, message in memory_messages(report.memory, target.name):
        report.findings.append(Finding(severity, label, None, None, message))  # type: ignore[arg-type]
    return report


def check_onnx(path: str | Path, target: Target | str, label: str | None = None) -> tuple[list[Finding], dict]:
    """Findings for one ONNX file, and a summary (opset, node count, ops used, quantization)."""
    import onnx

    target = load_target(target) if isinstance(target, str) else target
    path = Path(path)
    label = label or path.name
    try:
        model = onnx.load(str(path), load_external_data=False)  # ops and Q/DQ only; a large puzzle table stays on disk
    except Exception as e:  # protobuf raises several types for a damaged file
        unreadable: dict[str, Any] = {"file": label, "opset": None, "nodes": 0, "ops": [], "quantization": []}
        return [Finding("error", label, None, None, f"cannot be read as ONNX: {first_line(e)}")], unreadable
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    nodes = list(_walk(model.graph))
    summary = {
        "file": label,
        "opset": opset,
        "nodes": len(nodes),
        "ops": sorted({n.op_type for n, _ in nodes}),
        "quantization": sorted(quantization_types(model)),
        "bytes": path.stat().st_size,
        # shape inference is only worth its time where memory is checked (targets that state their memory)
        "activation_bytes_per_sample": _activation_bytes(model) if target.memory_gb else 0,
    }
    findings: list[Finding] = []
    if opset > target.max_opset:
        findings.append(
            Finding(
                "error",
                label,
                None,
                None,
                f"opset {opset} is above the target's maximum {target.max_opset}; "
                f"re-export with export.opset <= {target.max_opset}",
            )
        )
    if target.backend == "openvino":
        from ..runtime.openvino_backend import graph_findings

        device = target.openvino_device or "CPU"
        findings += [Finding(sev, label, None, None, msg) for sev, msg in graph_findings(path, device)]
    elif target.backend == "onnxruntime":
        findings += _check_onnxruntime(path, label)
    else:
        if opset < oplist.MIN_OPSET:
            findings.append(
                Finding(
                    "error", label, None, None, f"opset {opset} is below {oplist.MIN_OPSET}, the oldest TensorRT parses"
                )
            )
        findings += _TrtChecker(model, target, label).run()
    return _collapse(findings), summary


def _activation_bytes(model: onnx.ModelProto) -> int:
    """The memory estimate's activations; a graph it cannot size (element types this ONNX does not know, shapes
    that overflow) counts 0 here: the tensor-type rules report what is wrong with it."""
    try:
        return activation_bytes_per_sample(model)
    except (KeyError, ValueError, TypeError, OverflowError):
        return 0


def _check_onnxruntime(path: Path, label: str) -> list[Finding]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # errors only: load failures are reported as findings, not as log lines
    try:
        ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types per failure
        return [Finding("error", label, None, None, f"onnxruntime cannot load it: {first_line(e, 240)}")]
    return []


def _walk(graph: onnx.GraphProto, where: str = "") -> Iterator[tuple[onnx.NodeProto, str]]:
    """Every node with the subgraph path it sits in ("" for the main graph, "Loop 'l' body" inside a Loop)."""
    for node in graph.node:
        yield node, where
        for a in node.attribute:
            for g in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                yield from _walk(g, f"{where}{node.op_type} '{node.name}' {a.name} / ")


def _collapse(findings: list[Finding]) -> list[Finding]:
    """One finding per (file, severity, op, message), naming the first nodes: a quantized graph repeats the same
    problem at every Q/DQ pair."""
    groups: dict[tuple, list[Finding]] = {}
    for f in findings:
        groups.setdefault((f.severity, f.file, f.op, f.message), []).append(f)
    out = []
    for (sev, file, op, msg), fs in groups.items():
        names = [f.node for f in fs if f.node]
        node = None
        if names:
            node = ", ".join(names[:3]) + (f" (+{len(names) - 3} more)" if len(names) > 3 else "")
        out.append(Finding(sev, file, node, op, msg))
    order = {"error": 0, "warning": 1, "note": 2}
    return sorted(out, key=lambda f: order[f.severity])


class _TrtChecker:
    """The TensorRT rules, over one model (with inferred types) and one target."""

    def __init__(self, model, target: Target, label: str) -> None:
        import onnx

        self.onnx = onnx
        with contextlib.suppress(Exception):  # inference is best effort; rules needing types then stay silent
            model = onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False, data_prop=True)
        self.model, self.target, self.label = model, target, label
        self.lowest = versions.lowest(target.tensorrt)
        self.types: dict[str, str] = {}
        self.shapes: dict[str, list[int | str] | None] = {}
        self.consts: dict[str, np.ndarray] = {}
        self.consumed: set[str] = {o.name for o in model.graph.output}
        self.local_functions = {(f.domain, f.name) for f in model.functions}
        self.findings: list[Finding] = []
        self._index(model.graph)
        for f in model.functions:
            for n in f.node:
                self.consumed.update(n.input)

    # -- bookkeeping --------------------------------------------------------------------------------------------
    def _index(self, graph) -> None:
        from onnx import numpy_helper

        for vi in [*graph.input, *graph.output, *graph.value_info]:
            tt = vi.type.tensor_type
            if tt.elem_type:
                self.types[vi.name] = _type_name(tt.elem_type)
            self.shapes[vi.name] = (
                [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tt.shape.dim]
                if tt.HasField("shape")
                else None
            )
        for init in graph.initializer:
            self.types[init.name] = _type_name(init.data_type)
            self.shapes[init.name] = list(init.dims)
            _store(self.consts, init.name, numpy_helper, init)
        for node in graph.node:
            self.consumed.update(node.input)
            if node.op_type == "Constant" and node.output:
                for a in node.attribute:
                    if a.name == "value":
                        self.types[node.output[0]] = _type_name(a.t.data_type)
                        _store(self.consts, node.output[0], numpy_helper, a.t)
                    elif a.name in ("value_int", "value_ints"):
                        self.consts[node.output[0]] = np.array(
                            a.i if a.name == "value_int" else list(a.ints), dtype=np.int64
                        )
            if node.op_type == "Identity" and node.input and node.input[0] in self.consts:
                self.consts[node.output[0]] = self.consts[node.input[0]]
            for a in node.attribute:
                for g in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                    self._index(g)

    def add(self, severity: Severity, node, message: str) -> None:
        name = node.name or (node.output[0] if node.output else None)
        self.findings.append(Finding(severity, self.label, name, node.op_type, message))

    def trt(self, name: str) -> str | None:
        t = self.types.get(name)
        return oplist.ONNX_TO_TRT.get(t, t) if t else None

    # -- rules ----------------------------------------------------------------------------------------------------
    def run(self) -> list[Finding]:
        self._tensor_types()
        for node, where in _walk(self.model.graph):
            self._node(node, where)
        for f in self.model.functions:
            for node in f.node:
                self._node(node, f"function {f.name} / ")
        return self.findings

    def _tensor_types(self) -> None:
        io = {v.name for v in [*self.model.graph.input, *self.model.graph.output]}
        qdq_tensors = set()
        for node, _ in _walk(self.model.graph):
            if node.op_type in oplist.QDQ_OPS:
                qdq_tensors.update(node.input[2:3])
                qdq_tensors.update(node.output if node.op_type == "QuantizeLinear" else node.input[:1])
        for name, t in self.types.items():
            trt = oplist.ONNX_TO_TRT.get(t)
            if trt is None:
                self.findings.append(
                    Finding(
                        "error",
                        self.label,
                        name,
                        None,
                        f"tensor type {t} is not a TensorRT type; export with float32/float16/int32/int64/bool tensors",
                    )
                )
            elif trt == "DOUBLE":
                self.findings.append(
                    Finding(
                        "warning",
                        self.label,
                        name,
                        None,
                        "DOUBLE tensor: TensorRT casts it to FLOAT, clamping to +-FLT_MAX; export in float32",
                    )
                )
            elif trt == "UINT8" and name not in io and name not in qdq_tensors:
                self.findings.append(
                    Finding(
                        "error",
                        self.label,
                        name,
                        None,
                        "UINT8 tensor inside the graph: TensorRT "
                        "takes UINT8 only as a network input or output; cast to int32 or float",
                    )
                )
        inits = {i.name for i in self.model.graph.initializer}
        for vi in self.model.graph.input:
            if vi.name in inits:
                # onnx-tensorrt ModelImporter.cpp: "Initializers are not really network inputs, so they need to be
                # excluded"
                self.findings.append(
                    Finding(
                        "note",
                        self.label,
                        vi.name,
                        None,
                        "input with a default value (an "
                        "initializer): TensorRT builds the default in as a constant, so the engine "
                        "cannot override it",
                    )
                )
            elif self.types.get(vi.name) == "INT64":
                self.findings.append(
                    Finding(
                        "note",
                        self.label,
                        vi.name,
                        None,
                        "int64 network input: TensorRT 10 takes INT64 I/O natively (feed int64 token ids as they are)",
                    )
                )

    def _node(self, node, where: str) -> None:
        op = node.op_type
        if op in ORT_CPU_OPS and node.domain in ("", "ai.onnx", "com.microsoft"):
            self.add(
                "error",
                node,
                f"{where}{op} is an onnxruntime CPU kernel (quantize mode {ORT_CPU_OPS[op]}): this is not a "
                "TensorRT graph; deploy it with onnxruntime, or quantize with a TensorRT Q/DQ mode "
                f"({', '.join(tensorrt_quantized_modes())})",
            )
            return
        if node.domain not in ("", "ai.onnx"):
            if (node.domain, op) not in self.local_functions:
                self.add(
                    "error",
                    node,
                    f"{where}custom op {node.domain}::{op} needs a TensorRT plugin; export with standard ONNX ops",
                )
            return
        if (node.domain, op) in self.local_functions:
            return
        if not self._supported(node, where):
            return
        self._dtype(node, where)
        self._constant_inputs(node, where)
        self._attributes(node, where)
        if op in oplist.QDQ_OPS:
            self._qdq(node, where)
        elif op == "Loop":
            self._loop(node, where)
        elif op == "If":
            self._if(node, where)
        elif op == "EyeLike" and node.input:
            shape = self.shapes.get(node.input[0])
            if shape is not None and not all(isinstance(d, int) and d > 0 for d in shape):
                self.add("error", node, f"{where}EyeLike input has shape {shape}: TensorRT needs static dimensions")
        elif op == "TopK" and len(node.input) > 1 and node.input[1] in self.consts:
            k = _first_int(self.consts[node.input[1]])
            if k is not None and k >= oplist.TOPK_MAX_K:
                self.add("error", node, f"{where}TopK K={k}: TensorRT needs K < {oplist.TOPK_MAX_K}")

    def _supported(self, node, where: str) -> bool:
        op = node.op_type
        if op in oplist.ADDED_IN:
            need = oplist.ADDED_IN[op]  # (major, minor)
            if self.lowest >= need:
                return True
            if versions.admits_at_least(self.target.tensorrt, (*need, 0)):
                self.add(
                    "warning",
                    node,
                    f"{where}{op} is parsed from TensorRT {versions.version_str(need)}; the target "
                    f"admits {self.target.tensorrt}: build with TensorRT >= {versions.version_str(need)}",
                )
                return True
            self.add(
                "error",
                node,
                f"{where}{op} needs TensorRT >= {versions.version_str(need)}, the target runs "
                f"{self.target.tensorrt}; export it decomposed (lower export.opset)",
            )
            return False
        if op in oplist.SUPPORTED:
            return True
        if op in oplist.UNSUPPORTED:
            self.add("error", node, f"{where}{op} is not supported by TensorRT's ONNX parser; replace it in the model")
        else:
            self.add("error", node, f"{where}{op} is not in TensorRT's ONNX operator table; replace it in the model")
        return False

    def _dtype(self, node, where: str) -> None:
        op = node.op_type
        allowed = oplist.SUPPORTED.get(op)
        if not allowed or op in oplist.QDQ_OPS or op in ("Constant", "Loop", "If", "Scan", "Shape", "Size"):
            return
        idx = 1 if op == "Where" else 0
        if len(node.input) <= idx or not node.input[idx]:
            return
        t = self.trt(node.input[idx])
        if t and t not in allowed and t not in oplist.QUANTIZED_TYPES and t != "DOUBLE" and t in oplist.TRT_TYPES:
            self.add(
                "error", node, f"{where}{op} takes {', '.join(allowed)} in TensorRT, got {t}; cast the input first"
            )
        if op == "Cast":
            to = next((a.i for a in node.attribute if a.name == "to"), None)
            to_t = oplist.ONNX_TO_TRT.get(_type_name(to)) if to else None
            if to and to_t not in allowed and to_t != "DOUBLE":
                self.add(
                    "error",
                    node,
                    f"{where}Cast to {_type_name(to)}: TensorRT casts only to {', '.join(allowed)}",
                )

    def _constant_inputs(self, node, where: str) -> None:
        for idx, what in oplist.CONSTANT_INPUTS.get(node.op_type, {}).items():
            if len(node.input) <= idx or not node.input[idx] or node.input[idx] in self.consts:
                if (
                    node.op_type == "Dropout"
                    and len(node.input) > idx
                    and node.input[idx] in self.consts
                    and bool(_first_int(self.consts[node.input[idx]]))
                ):
                    self.add("error", node, f"{where}Dropout training_mode is True; export in eval mode")
                continue
            relaxed = oplist.RELAXED_IN.get((node.op_type, what))
            if relaxed and self.lowest >= relaxed:
                continue
            self.add(
                "error",
                node,
                f"{where}{node.op_type} `{what}` must be a build-time constant (initializer) in "
                f"TensorRT {versions.version_str(self.lowest)}; fold it at export (do_constant_folding)",
            )

    def _attributes(self, node, where: str) -> None:
        op = node.op_type
        attrs = {a.name: a for a in node.attribute}
        for name, allowed in oplist.ATTRIBUTE_VALUES.get(op, {}).items():
            if name in attrs:
                a = attrs[name]
                value = a.s if a.type == self.onnx.AttributeProto.STRING else a.i
                if value not in allowed:
                    shown = value.decode() if isinstance(value, bytes) else value
                    self.add(
                        "error",
                        node,
                        f"{where}{op} {name}={shown!r} is not supported by TensorRT "
                        f"({oplist.RESTRICTIONS.get(op, 'see operators.md')})",
                    )
        ones = oplist.ALL_ONES_ATTRIBUTES.get(op)
        if ones in attrs and any(v != 1 for v in attrs[ones].ints):
            self.add("error", node, f"{where}{op} {ones} must be empty or all ones in TensorRT")
        for name in oplist.FORBIDDEN_ATTRIBUTES.get(op, ()):
            if name in attrs:
                self.add("error", node, f"{where}{op} attribute `{name}` is not supported by TensorRT")
        limit = oplist.MAX_USED_OUTPUTS.get(op)
        if limit is not None and any(o and o in self.consumed for o in node.output[limit:]):
            self.add(
                "error",
                node,
                f"{where}{op}: TensorRT produces only the first {limit} output(s), and a later one is used",
            )

    def _qdq(self, node, where: str) -> None:
        op = node.op_type
        zp = node.input[2] if len(node.input) > 2 and node.input[2] else None
        out_dtype = next((a.i for a in node.attribute if a.name == "output_dtype" and a.i), None)
        t = self.types.get(zp) if zp else (_type_name(out_dtype) if out_dtype else None)
        if t is None and op == "DequantizeLinear":
            t = self.types.get(node.input[0])
        precisions = self.target.precisions
        if t is None and zp is None:
            self.add(
                "error",
                node,
                f"{where}{op} has no zero point, so ONNX quantizes to UINT8 (0..255) while TensorRT "
                "uses INT8; quantize with a signed int8 zero point of 0",
            )
        elif t == "UINT8":
            self.add(
                "error",
                node,
                f"{where}{op} is UINT8 (asymmetric): TensorRT turns it into INT8 with the same scale, "
                "clipping the upper half of the range; quantize signed (NNCF: signedness_to_force=True)",
            )
        elif t == "INT8":
            if "int8" not in precisions:
                self.add("error", node, f"{where}INT8 Q/DQ but target {self.target.name} has no int8 precision")
        elif t == "FLOAT8E4M3FN":
            if "fp8" not in precisions:
                self.add(
                    "error",
                    node,
                    f"{where}FP8 Q/DQ but target {self.target.name} has no fp8 (FP8 needs compute "
                    "capability >= 8.9: Ada, Hopper); quantize to int8 for this target",
                )
        elif t and t.startswith("FLOAT8"):
            self.add("error", node, f"{where}{t} Q/DQ: TensorRT's only FP8 type is E4M3FN")
        elif t in ("INT4", "UINT4"):
            self.add(
                "error",
                node,
                f"{where}{t} Q/DQ: not among target {self.target.name}'s precisions ({', '.join(precisions)})",
            )
        elif t is not None:
            self.add("error", node, f"{where}{op} quantizes to {t}: TensorRT quantizes only to INT8, FP8 or INT4")
        if zp:
            if zp in self.consts:
                if np.any(np.asarray(self.consts[zp]).astype(np.float64) != 0):
                    self.add(
                        "error",
                        node,
                        f"{where}{op} zero point is not 0: TensorRT supports only symmetric "
                        "quantization; re-quantize symmetric",
                    )
            else:
                self.add(
                    "warning",
                    node,
                    f"{where}{op} zero point is computed at run time: TensorRT needs it to be all "
                    "zeros; make it an initializer",
                )
        scale = node.input[1] if len(node.input) > 1 else None
        if scale in self.consts and np.any(np.asarray(self.consts[scale]).astype(np.float64) <= 0):
            self.add("error", node, f"{where}{op} scale has values <= 0; TensorRT needs positive scales")

    def _loop(self, node, where: str) -> None:
        body = next((a.g for a in node.attribute if a.name == "body" and a.HasField("g")), None)
        if body is None:
            self.add("error", node, f"{where}Loop has no body graph: the file is damaged; re-export it")
            return
        m = node.input[0] if len(node.input) > 0 and node.input[0] else None
        cond = node.input[1] if len(node.input) > 1 and node.input[1] else None
        m_value = _first_int(self.consts[m]) if m in self.consts else None
        if m in self.consts and (m_value is None or np.asarray(self.consts[m]).size != 1):
            self.add(
                "error",
                node,
                f"{where}Loop trip count M is not one integer ({np.asarray(self.consts[m]).dtype} tensor of "
                f"{np.asarray(self.consts[m]).size} values): the file is damaged; re-export it",
            )
            return
        has_count = m is not None and not (m_value is not None and m_value >= oplist.INT32_MAX)
        if not has_count and cond is None:
            self.add(
                "error",
                node,
                f"{where}Loop has neither a trip count below INT32_MAX nor a condition: TensorRT needs "
                "a trip limit; pass M",
            )
        n_carried = len(node.input) - 2
        scan_outs = [o for o in node.output[n_carried:] if o]
        if scan_outs:
            used = [o for o in scan_outs if o in self.consumed]
            if not has_count and used:
                self.add(
                    "error",
                    node,
                    f"{where}Loop without trip count M: TensorRT gives its scan outputs a dummy length "
                    "of 1024, so they must not be used; pass a constant M",
                )
            elif has_count and m_value is None:
                self.add(
                    "error",
                    node,
                    f"{where}Loop scan outputs with a run-time trip count: TensorRT needs the scan "
                    "output length fixed; make M a constant",
                )
        if m is not None and m_value is None:
            self.add(
                "note",
                node,
                f"{where}Loop trip count M is a run-time tensor: TensorRT casts it to INT32 and needs "
                "it available before the loop starts",
            )
        allowed = oplist.SUPPORTED["Loop"]
        for i in range(n_carried):
            if 2 + i >= len(body.input) or 1 + i >= len(body.output):
                break
            b_in, b_out = body.input[2 + i].name, body.output[1 + i].name
            t = self.trt(node.input[2 + i]) or self.trt(b_in)
            if t and t not in allowed:
                self.add(
                    "error",
                    node,
                    f"{where}Loop carries {b_in!r} as {t}; TensorRT loops carry only {', '.join(allowed)}",
                )
            s_in, s_out = self.shapes.get(b_in), self.shapes.get(b_out)
            if (
                s_in is not None
                and s_out is not None
                and (
                    len(s_in) != len(s_out)
                    or any(
                        isinstance(a, int) and isinstance(b, int) and a and b and a != b for a, b in zip(s_in, s_out)
                    )
                )
            ):
                self.add(
                    "error",
                    node,
                    f"{where}Loop carried {b_in!r} changes shape {s_in} -> {s_out}: TensorRT needs "
                    "the same shape in every iteration",
                )
        carried = {body.input[i].name for i in range(2, len(body.input))}
        for inner in body.node:
            for idx in oplist.SHAPE_INPUTS.get(inner.op_type, ()):
                if idx < len(inner.input) and inner.input[idx] in carried:
                    self.add(
                        "warning",
                        node,
                        f"{where}Loop carried {inner.input[idx]!r} feeds the shape input of "
                        f"{inner.op_type}: a TensorRT recurrence cannot be a shape tensor "
                        "(onnx/onnx-tensorrt#670)",
                    )

    def _if(self, node, where: str) -> None:
        branches = {a.name: a.g for a in node.attribute if a.name in ("then_branch", "else_branch")}
        then_g, else_g = branches.get("then_branch"), branches.get("else_branch")
        if then_g is None or else_g is None:
            return
        if len(then_g.output) != len(else_g.output):
            self.add(
                "error",
                node,
                f"{where}If branches have {len(then_g.output)} and {len(else_g.output)} outputs; "
                "TensorRT needs the same number",
            )
            return
        for a, b in zip(then_g.output, else_g.output):
            if a.name == b.name:
                self.add(
                    "error", node, f"{where}If branches both name an output {a.name!r}; TensorRT needs different names"
                )
            sa, sb = self.shapes.get(a.name), self.shapes.get(b.name)
            if sa is not None and sb is not None and len(sa) != len(sb):
                self.add(
                    "error",
                    node,
                    f"{where}If outputs {a.name!r} and {b.name!r} have ranks {len(sa)} and {len(sb)}; "
                    "TensorRT needs the same rank",
                )


# ops of onnxruntime's CPU quantizers, named after the modes whose declared form makes them (quantize/modes/)
ORT_CPU_OPS = onnxruntime_ops()


def _type_name(elem_type: int) -> str:
    """ONNX's name of an element type; a number the ONNX version here does not know stays a number (a damaged or
    newer file: reported as not a TensorRT type, never a crash)."""
    import onnx

    try:
        return str(onnx.TensorProto.DataType.Name(elem_type))
    except ValueError:
        return f"elem_type {elem_type}"


def _first_int(value: np.ndarray) -> int | None:
    """The first element of a constant as an integer; None when it is empty or not a number."""
    a = np.asarray(value)
    if a.size == 0 or not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.bool_)):
        return None
    return int(a.reshape(-1)[0])


def _store(consts: dict[str, np.ndarray], name: str, numpy_helper, tensor) -> None:
    """Record a constant's value; one that cannot be read (exotic type, missing external data) stays unknown."""
    if tensor.data_location == tensor.EXTERNAL:  # never read: numpy_helper would resolve it against the cwd
        return
    with contextlib.suppress(Exception):  # numpy_helper raises several types; unknown values only silence value rules
        consts[name] = numpy_helper.to_array(tensor)
