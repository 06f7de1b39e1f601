"""Export a RecursiveModel's encode / step / readout graphs to ONNX (fp32, dynamic batch).

Uses the TorchScript-based exporter: it exports these static graphs in well under a second each, where the
dynamo exporter takes ~10 s and cannot make batch dynamic from a batch-1 example (measured).
"""

from __future__ import annotations

import io
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch

from ..errors import ExportError, first_line
from ..models.act import ACTModel
from ..models.config import SolverConfig
from ..models.deq import DEQModel
from ..models.families import get_family, stopping_rule
from ..stopping import FixedPoint
from .graphs import EncodeGraph, ReadoutGraph, StepGraph, takes_puzzle_ids
from .initializers import dedupe_initializers
from .loop import build_loop, has_external_data
from .optimize import optimize_step
from .puzzle_table import PuzzleTable, swapped_table

EXTERNAL_BYTES = 1 << 30  # puzzle tables above this are written as external data (protobuf stops at 2 GB)
TABLE = "model.puzzle_emb.weights"  # the table's initializer name in the exported encode graph


@dataclass
class ExportedGraph:
    name: str
    path: Path
    inputs: list[str]
    outputs: list[str]
    seconds: float
    bytes: int
    data: Path | None = None  # ONNX external data beside the graph (a puzzle table over protobuf's 2 GB)


def example_inputs(model: ACTModel | DEQModel, batch: int = 2) -> torch.Tensor:
    example: torch.Tensor = get_family(model.family).example_inputs(model, batch)
    return example


def _export(
    module: torch.nn.Module,
    args: tuple,
    path: Path,
    inputs: list[str],
    outputs: list[str],
    opset: int,
    optimize: bool = True,
) -> ExportedGraph:
    t0 = time.time()
    dyn = {n: {0: "batch"} for n in inputs + outputs}
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                args,
                buf,  # type: ignore[arg-type]  # stub says path only; the TorchScript exporter takes a file object
                input_names=inputs,
                output_names=outputs,
                dynamic_axes=dyn,
                opset_version=opset,
                dynamo=False,
                do_constant_folding=True,
            )
    except Exception as e:  # the exporter raises many types; name the graph and the op it reports
        raise ExportError(
            f"exporting the {path.stem} graph of {type(module.model).__name__} failed: {first_line(e, 240)}",
            "check the op named above against the opset, or lower export.opset",
        ) from None
    proto = onnx.load_from_string(buf.getvalue())
    proto.producer_name = "edgekit"
    if optimize:
        try:
            proto = optimize_step(proto)
        except Exception as e:  # the optimizer is a speed-up, never a reason to fail an export
            warnings.warn(f"graph optimization of {path.name} skipped: {first_line(e, 200)}", stacklevel=2)
    dedupe_initializers(proto)  # after the optimizer, which turns the exporter's Constant nodes into initializers
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as e:
        raise ExportError(
            f"{path.name} fails onnx.checker: {first_line(e, 240)}", "report this as an edgekit bug"
        ) from None
    data = proto.SerializeToString()
    path.write_bytes(data)
    return ExportedGraph(path.stem, path, inputs, outputs, time.time() - t0, len(data))


def _check_written(path: Path) -> None:
    """onnx.checker on a graph file whose initializers live in external data: checked from its path, so the data
    file is resolved beside it (an in-memory check cannot find it)."""
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as e:
        raise ExportError(f"{path.name} fails onnx.checker: {first_line(e, 240)}", "report this bug") from None


def _export_encode(
    model: ACTModel | DEQModel, folder: Path, opset: int, optimize: bool, table: PuzzleTable | None, external: bool
) -> ExportedGraph:
    """encode.onnx; with a puzzle table it takes `puzzle_ids` (rows of the kept table). A table over
    EXTERNAL_BYTES (or any, with `external`) is traced as a one-row stand-in and written as encode.onnx.data,
    so neither the exporter nor protobuf ever holds it (an ARC-2 table is 2.1 GB)."""
    inp = example_inputs(model)
    path = folder / "encode.onnx"
    if not isinstance(model, ACTModel) or not takes_puzzle_ids(model):
        return _export(EncodeGraph(model), (inp,), path, ["inputs"], ["x"], opset, optimize)
    weights = table.weights(model) if table is not None else model.puzzle_emb.weights.detach()
    pids = torch.zeros(inp.shape[0], dtype=torch.long)
    nbytes = weights.numel() * weights.element_size()
    if not external and nbytes <= EXTERNAL_BYTES:
        with swapped_table(model, weights):
            return _export(EncodeGraph(model), (inp, pids), path, ["inputs", "puzzle_ids"], ["x"], opset, optimize)
    with swapped_table(model, weights[:1].clone()):
        g = _export(EncodeGraph(model), (inp, pids), path, ["inputs", "puzzle_ids"], ["x"], opset, optimize)
    t0 = time.time()
    proto = onnx.load(str(path))
    init = next((t for t in proto.graph.initializer if t.name == TABLE), None)
    if init is None or list(init.dims) != [1, weights.shape[1]]:
        raise ExportError(f"the encode graph has no {TABLE} initializer to store externally", "report this bug")
    data = folder / "encode.onnx.data"
    raw = weights.contiguous().view(torch.uint8).numpy()  # a view of the table's bytes: no copy
    with open(data, "wb") as fh:
        for i in range(0, len(raw), 1 << 16):  # rows in chunks, so writing never copies the whole table
            raw[i : i + (1 << 16)].tofile(fh)
    init.ClearField("raw_data")
    init.dims[:] = list(weights.shape)
    for vi in proto.graph.value_info:  # the stand-in's [1, dim] shape, recorded by the exporter, is the table's now
        if vi.name == TABLE:
            vi.type.tensor_type.shape.dim[0].dim_value = int(weights.shape[0])
    init.data_location = onnx.TensorProto.EXTERNAL
    del init.external_data[:]
    for k, v in (("location", data.name), ("offset", "0"), ("length", str(nbytes))):
        e = init.external_data.add()
        e.key, e.value = k, v
    body = proto.SerializeToString()
    path.write_bytes(body)
    _check_written(path)
    return ExportedGraph(g.name, path, g.inputs, g.outputs, g.seconds + time.time() - t0, len(body) + nbytes, data)


@torch.no_grad()
def export_step_graphs(
    model: ACTModel | DEQModel,
    folder: Path,
    opset: int = 17,
    optimize: bool = True,
    table: PuzzleTable | None = None,
    external: bool = False,
) -> list[ExportedGraph]:
    """Write encode.onnx, step.onnx, readout.onnx into `folder` and return what was written."""
    model = model.eval()
    inp = example_inputs(model)
    x = model.encode(inp)
    state = model.initial_state(x)
    names = list(model.state_names)
    rule = stopping_rule(model.family)
    extra = rule.signal
    head_out = ["logits", "halt"] if rule.halting_head else ["logits"]
    return [
        _export_encode(model, folder, opset, optimize, table, external),
        _export(
            StepGraph(model),
            (*state, x),
            folder / "step.onnx",
            names + ["x"],
            [n + "_next" for n in names] + [extra],
            opset,
            optimize,
        ),
        _export(ReadoutGraph(model), tuple(state), folder / "readout.onnx", names, head_out, opset, optimize),
    ]


def initial_vectors(model: ACTModel | DEQModel) -> dict[str, np.ndarray]:
    """The vector each state starts from, broadcast over batch (and positions): learned for ACT, zeros for DEQ."""
    return {name: v.float().numpy() for name, v in model.initial_vectors().items()}


def stitch(
    model: ACTModel | DEQModel,
    form: str,
    encode: onnx.ModelProto,
    step: onnx.ModelProto,
    readout: onnx.ModelProto,
    halt_threshold: float = 0.0,
    solver: SolverConfig | None = None,
    steps: int | None = None,
) -> onnx.ModelProto:
    """The `loop` (export/loop.py) or `unrolled` (export/unrolled.py) form of a model from its encode / step /
    readout graphs: the float ones in a folder, or a quantized step graph in memory."""
    from .unrolled import build_unrolled

    names, init = list(model.state_names), initial_vectors(model)
    if form == "unrolled":
        budget = model.step_budget if steps is None else steps
        return build_unrolled(encode, step, readout, family=model.family, state_names=names, initial=init, steps=budget)
    return build_loop(
        encode,
        step,
        readout,
        family=model.family,
        state_names=names,
        initial=init,
        budget=model.step_budget,
        halt_threshold=halt_threshold,
        solver=(solver or model.solver) if stopping_rule(model.family) is FixedPoint else None,
    )


def _stitch_folder(
    model: ACTModel | DEQModel, form: str, folder: Path, path: Path, step_file: str, **kw
) -> ExportedGraph:
    t0 = time.time()
    # external data (a large puzzle table) stays where it is: the stitched graph refers to the same file
    parts = [onnx.load(str(folder / f), load_external_data=False) for f in ("encode.onnx", step_file, "readout.onnx")]
    proto = stitch(model, form, *parts, **kw)
    data = proto.SerializeToString()
    Path(path).write_bytes(data)
    if has_external_data(proto):
        _check_written(Path(path))
    ins, outs = [i.name for i in proto.graph.input], [o.name for o in proto.graph.output]
    return ExportedGraph(Path(path).stem, Path(path), ins, outs, time.time() - t0, len(data))


def export_loop(
    model: ACTModel | DEQModel,
    folder: Path,
    path: Path,
    halt_threshold: float = 0.0,
    solver: SolverConfig | None = None,
    step_file: str = "step.onnx",
) -> ExportedGraph:
    """Wrap the encode / step / readout graphs already in `folder` into one ONNX Loop model at `path`.
    `step_file` picks the step graph (e.g. a quantized one); see export/loop.py for the semantics."""
    return _stitch_folder(model, "loop", folder, path, step_file, halt_threshold=halt_threshold, solver=solver)


def export_unrolled(
    model: ACTModel | DEQModel, folder: Path, path: Path, steps: int | None = None, step_file: str = "step.onnx"
) -> ExportedGraph:
    """Stitch the encode / step / readout graphs already in `folder` into one graph running `steps` recursion
    steps (default: the budget) at `path`; the step weights are stored once (export/unrolled.py)."""
    return _stitch_folder(model, "unrolled", folder, path, step_file, steps=steps)
