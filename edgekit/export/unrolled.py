"""The unrolled form: encode, K copies of the step graph, readout, as one static graph with no control flow.

Stitched from the exported step graph like the Loop form, not traced from a Python loop: every copy of the
step reads the same initializers, so the file holds the weights once (tracing K steps stored them once per
step after constant folding: 450 MB of duplicates in a 489 MB seq-900 TRM), export needs no PyTorch trace of K
steps (9-18 GB peak RSS at official sizes), and a quantized step graph unrolls the same way.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..errors import ExportError, first_line
from ..models.families import stopping_rule
from .loop import has_external_data, inline


def build_unrolled(
    encode: onnx.ModelProto,
    step: onnx.ModelProto,
    readout: onnx.ModelProto,
    *,
    family: str,
    state_names: list[str],
    initial: dict[str, np.ndarray],
    steps: int,
) -> onnx.ModelProto:
    """inputs -> readout after exactly `steps` steps from the initial state (no halting: the fixed budget)."""
    if steps < 1:
        raise ExportError(f"an unrolled graph needs at least 1 step, got {steps}", "set the step budget >= 1")
    nodes, inits = inline(encode.graph, "enc/", {i.name: i.name for i in encode.graph.input} | {"x": "x"})
    nodes.append(helper.make_node("Shape", ["x"], ["x_shape"]))
    elem = next(v for v in step.graph.input if v.name == state_names[0]).type.tensor_type.elem_type
    dtype = helper.tensor_dtype_to_np_dtype(elem)
    for s in state_names:
        inits.append(numpy_helper.from_array(initial[s].astype(dtype), f"init/{s}"))
        nodes.append(helper.make_node("Expand", [f"init/{s}", "x_shape"], [f"{s}@0"]))
    rule = stopping_rule(family)
    extra = rule.signal
    shared = {t.name: f"w/{t.name}" for t in step.graph.initializer}  # one copy, read by every step
    for t in range(steps):
        io = dict(shared)
        io |= {s: f"{s}@{t}" for s in state_names} | {"x": "x"}
        io |= {f"{s}_next": f"{s}@{t + 1}" for s in state_names} | {extra: f"{extra}@{t + 1}"}
        n, i = inline(step.graph, f"s{t}/", io)
        nodes += n
        if t == 0:
            inits += i
    head_out = ["logits", "halt"] if rule.halting_head else ["logits"]
    n, i = inline(readout.graph, "readout/", {s: f"{s}@{steps}" for s in state_names} | {o: o for o in head_out})
    nodes += n
    inits += i
    outputs = [o for o in readout.graph.output if o.name in head_out]
    graph = helper.make_graph(nodes, "edgekit_unrolled", list(encode.graph.input), outputs, initializer=inits)
    model = helper.make_model(
        graph, opset_imports=list(step.opset_import), producer_name="edgekit", ir_version=step.ir_version
    )
    try:
        if not has_external_data(model):  # else checked once written, beside its data (export/onnx_export.py)
            onnx.checker.check_model(model, full_check=model.ByteSize() < 2_000_000_000)
    except onnx.checker.ValidationError as e:
        raise ExportError(
            f"the unrolled graph fails onnx.checker: {first_line(e, 240)}", "report this as an edgekit bug"
        ) from None
    return model
