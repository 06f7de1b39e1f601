"""The ONNX graphs an artefact holds, read from the files themselves: inputs, the batch axis, quantization.

Plans and engine builds take input names and non-batch dims from the ONNX file, not from the manifest, so a
script can never disagree with the graph it builds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..artefact import sha256_file
from ..errors import InputError
from ..manifest import Manifest

QUANT_NAMES = {"INT8": "int8", "UINT8": "uint8", "FLOAT8E4M3FN": "fp8", "INT4": "int4", "UINT4": "uint4"}


@dataclass
class GraphInput:
    name: str
    dtype: str  # ONNX type name, e.g. FLOAT, INT64
    dims: list[int | str]  # ints for static dims, names for symbolic ones
    batch_axis: int | None  # 0 when the first dim is symbolic (edgekit exports name it "batch")


@dataclass
class GraphInfo:
    name: str  # key in manifest["files"], e.g. "step"
    path: Path
    sha256: str
    opset: int
    inputs: list[GraphInput] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    quantization: set[str] = field(default_factory=set)  # {"int8", "fp8", ...} from Q/DQ zero points / output_dtype
    floats: set[str] = field(default_factory=set)  # float types it computes in: {"fp32"}, {"fp16", "fp32"}, ...


def load_manifest(folder: str | Path) -> Manifest:
    """The artefact's manifest through the one strict reader every command uses (edgekit.runtime.manifest)."""
    from ..runtime.errors import ArtefactError
    from ..runtime.manifest import load_manifest as read

    try:
        return read(Path(folder), complete=True)
    except ArtefactError as e:
        raise InputError(str(e)) from None


def onnx_files(folder: str | Path, manifest: Manifest | None = None) -> dict[str, Path]:
    """name -> path of every .onnx file the manifest lists (in manifest order)."""
    folder = Path(folder)
    manifest = manifest or load_manifest(folder)
    from ..runtime.manifest import safe_path

    out = {name: safe_path(folder, rel) for name, rel in manifest.files.items() if str(rel).endswith(".onnx")}
    if not out:
        raise InputError(
            f"{folder}/manifest.json lists no .onnx file", "re-run `edgekit export` to rewrite the artefact"
        )
    for name, path in out.items():
        if not path.is_file():
            raise InputError(f"{path} (graph {name!r} in manifest.json) is missing", "copy the whole artefact folder")
    return out


def _dims(value_info) -> list[int | str]:
    shape = value_info.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in shape.dim]


def describe(path: Path, name: str | None = None) -> GraphInfo:
    """Inputs (without initializers), outputs, opset and quantization types of one ONNX file."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    info = GraphInfo(name or path.stem, path, sha256_file(path), opset)
    inits = {i.name for i in model.graph.initializer}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        dims = _dims(vi)
        batch = 0 if dims and isinstance(dims[0], str) else None
        info.inputs.append(
            GraphInput(vi.name, onnx.TensorProto.DataType.Name(vi.type.tensor_type.elem_type), dims, batch)
        )
    info.outputs = [o.name for o in model.graph.output]
    info.quantization = quantization_types(model)
    info.floats = float_types(model)
    return info


FLOAT_NAMES = {"FLOAT": "fp32", "FLOAT16": "fp16", "BFLOAT16": "bf16"}


def float_types(model) -> set[str]:
    """Float types the model computes in ("fp32", "fp16", "bf16"): those of its inputs, outputs, initializers,
    Constants and Cast targets (Q/DQ scales count as the float type they dequantize to). A strongly typed TensorRT
    build runs each layer in these types; a weakly typed one picks from its precision flags instead."""
    import onnx

    types: set[int] = set()
    graphs = [model.graph]
    while graphs:
        g = graphs.pop()
        types.update(v.type.tensor_type.elem_type for v in [*g.input, *g.output])
        types.update(t.data_type for t in g.initializer)
        for node in g.node:
            for a in node.attribute:
                if node.op_type == "Cast" and a.name == "to":
                    types.add(a.i)
                elif node.op_type == "Constant" and a.name == "value":
                    types.add(a.t.data_type)
                graphs += ([a.g] if a.HasField("g") else []) + list(a.graphs)
    names = {onnx.TensorProto.DataType.Name(t) for t in types if t}
    return {FLOAT_NAMES[n] for n in names if n in FLOAT_NAMES}


def quantization_types(model) -> set[str]:
    """Quantized types the model's Q/DQ nodes use ("int8", "uint8", "fp8", ...); empty for a float graph."""
    import onnx

    types: dict[str, int] = {t.name: t.data_type for t in _all_initializers(model.graph)}
    found: set[str] = set()
    for node in _all_nodes(model.graph):
        if node.op_type in ("Constant",) and node.output:
            for a in node.attribute:
                if a.name == "value":
                    types[node.output[0]] = a.t.data_type
    for node in _all_nodes(model.graph):
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        dtype = None
        if len(node.input) > 2 and node.input[2]:
            dtype = types.get(node.input[2])
        for a in node.attribute:
            if a.name == "output_dtype" and a.i:
                dtype = a.i
        if node.op_type == "DequantizeLinear" and dtype is None:
            dtype = types.get(node.input[0])
        name = onnx.TensorProto.DataType.Name(dtype) if dtype else "UINT8"  # ONNX's default without a zero point
        found.add(QUANT_NAMES.get(name, name.lower()))
    return found


def _all_nodes(graph):
    for node in graph.node:
        yield node
        for a in node.attribute:
            for g in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                yield from _all_nodes(g)


def _all_initializers(graph):
    yield from graph.initializer
    for node in graph.node:
        for a in node.attribute:
            for g in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                yield from _all_initializers(g)


def profile_shapes(info: GraphInfo, batch: tuple[int, int, int]) -> dict[str, tuple[list[int], list[int], list[int]]]:
    """input -> (min, opt, max) shapes for every input with a dynamic batch axis; other dims must be static."""
    shapes: dict[str, tuple[list[int], list[int], list[int]]] = {}
    for inp in info.inputs:
        rest = inp.dims[1:] if inp.batch_axis == 0 else inp.dims
        static = [d for d in rest if isinstance(d, int) and d > 0]
        symbolic = [d for d in rest if not isinstance(d, int) or d <= 0]
        if symbolic:
            raise InputError(
                f"input {inp.name!r} of {info.path.name} has symbolic dim {symbolic[0]!r} besides the batch axis",
                "TensorRT profiles here cover the batch only: re-export with that dim fixed",
            )
        if inp.batch_axis == 0:
            lo, opt, hi = batch
            shapes[inp.name] = ([lo, *static], [opt, *static], [hi, *static])
    return shapes
