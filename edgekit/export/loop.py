"""The ONNX `Loop` form: encode, then the step graph inside one `Loop` node, then readout.

Built by stitching the exported (or quantized) encode / step / readout graphs, not by exporting a Python
loop, because:
- quantizers never look inside a Loop body, so the step graph is quantized alone and wrapped afterwards;
- the step weights must be the body's own initializers, or onnxruntime loses its integer kernels (2.7x slower);
- a body that reads top-level weights can be silently corrupted by SmoothQuant rewriting them.

Per-sample semantics, identical to the PyTorch reference:
- ACT: a sample halts after the first step whose halting logit exceeds `halt_threshold`; its state is frozen
  from then on, so the readout gives the answer at its halting step. The loop exits when every sample halted
  or after `max_steps` (the references' 16).
- DEQ: a sample converges at the first iteration whose residual (the solver's measure of f(z) against z) is
  at most `tol`; the answer is the iterate `solve` returns. Fixed-point iteration freezes converged samples;
  Anderson acceleration carries its m-slot history and solves its small least-squares problem in plain
  ONNX ops (`AndersonUpdate`), since ONNX has no linear-solve op.
Outputs: logits (+ halt for ACT), `steps` (per-sample steps / f-evaluations taken), `trace` ([steps, batch]
halting logits or residuals, as computed at each iteration), `done` (halted / converged) and the final state.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from ..errors import ExportError, first_line
from ..models.config import SolverConfig
from ..models.families import stopping_rule
from ..stopping import FixedPoint, HaltLogit
from .graphs import AndersonUpdate

_FLOAT = TensorProto.FLOAT


def inline(
    graph: onnx.GraphProto, prefix: str, io_map: dict[str, str]
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """Copy a graph's nodes and initializers under a name prefix, renaming its inputs/outputs per `io_map`."""

    def rename(name: str) -> str:
        return "" if name == "" else io_map.get(name, prefix + name)

    nodes: list[onnx.NodeProto] = []
    for n in graph.node:
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in n.attribute):
            raise ExportError(
                f"{prefix.rstrip('/')} graph node {n.name or n.op_type} ({n.op_type}) has a subgraph",
                "export the step without control flow; edgekit adds the Loop itself",
            )
        c = onnx.NodeProto()
        c.CopyFrom(n)
        c.name = prefix + (n.name or f"{n.op_type}_{len(nodes)}")
        c.input[:] = [rename(i) for i in n.input]
        c.output[:] = [rename(o) for o in n.output]
        nodes.append(c)
    inits = []
    for t in graph.initializer:
        c = onnx.TensorProto()
        c.CopyFrom(t)
        c.name = rename(t.name)
        inits.append(c)
    return nodes, inits


def has_external_data(model: onnx.ModelProto) -> bool:
    """Whether an initializer lives in an external-data file (the checker then needs the graph's folder)."""
    return any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)


def _const(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


def _export_anderson(s: SolverConfig, dim: int, opset: int) -> onnx.GraphProto:
    m = AndersonUpdate(s.anderson_m, s.anderson_lam, s.anderson_beta)
    b = 2
    args = (
        torch.zeros(b, s.anderson_m, dim),
        torch.zeros(b, s.anderson_m, dim),
        torch.rand(b, dim),
        torch.rand(b, dim),
        torch.tensor(0, dtype=torch.long),
    )
    names = ["X", "F", "z", "fz", "k"]
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            m,
            args,
            buf,  # type: ignore[arg-type]  # stub says path only; the TorchScript exporter takes a file object
            input_names=names,
            output_names=["X_next", "F_next", "z_next"],
            opset_version=opset,
            dynamic_axes={n: {0: "batch"} for n in ["X", "F", "z", "fz", "X_next", "F_next", "z_next"]},
            dynamo=False,
            do_constant_folding=True,
        )
    return onnx.load_from_string(buf.getvalue()).graph


def _like(graph: onnx.GraphProto, name: str, new_name: str) -> onnx.ValueInfoProto:
    """A value info with the type and shape of graph input `name`, renamed."""
    vi = next(v for v in graph.input if v.name == name)
    c = onnx.ValueInfoProto()
    c.CopyFrom(vi)
    c.name = new_name
    return c


def _rank(graph: onnx.GraphProto, name: str) -> int:
    for vi in graph.input:
        if vi.name == name:
            return len(vi.type.tensor_type.shape.dim)
    raise ExportError(f"step graph has no input {name!r}", "re-export the step graph with edgekit")


@dataclass(frozen=True)
class _LoopSpec:
    """What the stitching decides before any node is made: the stopping rule and its control input, the state
    layout, and the Anderson solver when the Loop carries its history."""

    rule: type[HaltLogit] | type[FixedPoint]
    opset: int  # the step graph's, for the inlined Anderson update
    states: list[str]
    rank: int  # of each state (batch first): the done mask is unsqueezed to it
    limit_default: float
    anderson: SolverConfig | None  # Anderson acceleration (carries an m-slot history), else None


@dataclass
class _Graphs:
    """The outer graph's and the Loop body's parts, appended to step by step in graph order."""

    outer: list[onnx.NodeProto] = field(default_factory=list)
    inits: list[onnx.TensorProto] = field(default_factory=list)
    carried: list[str] = field(default_factory=list)  # the Loop's initial carried values
    body: list[onnx.NodeProto] = field(default_factory=list)
    body_inits: list[onnx.TensorProto] = field(default_factory=list)
    b_in: list[onnx.ValueInfoProto] = field(default_factory=list)
    b_out: list[onnx.ValueInfoProto] = field(default_factory=list)
    state_out: list[str] = field(default_factory=list)  # the body's outputs for the states


def build_loop(
    encode: onnx.ModelProto,
    step: onnx.ModelProto,
    readout: onnx.ModelProto,
    *,
    family: str,
    state_names: list[str],
    initial: dict[str, np.ndarray],
    budget: int,
    halt_threshold: float = 0.0,
    solver: SolverConfig | None = None,
) -> onnx.ModelProto:
    """Stitch encode / step / readout graphs into one model with a per-sample halting `Loop`.

    `initial[name]` is the vector each state starts from (broadcast over batch and positions; zeros for DEQ).
    `max_steps` and `halt_threshold` (ACT) or `tol` (DEQ) are graph inputs with these defaults."""
    spec = _loop_spec(step, family, state_names, halt_threshold, solver)
    g = _Graphs()
    _encode_and_constants(g, encode, spec, budget)
    _initial_states(g, step, spec, initial)
    _body_step(g, step, spec)
    dim = int(initial[spec.states[0]].size)
    if spec.anderson is not None:
        _body_anderson(g, spec, dim)
    else:
        _body_freeze(g, spec)
    _body_end(g, step, spec, dim)
    return _checked(_outer_model(g, encode, step, readout, spec))


def _loop_spec(
    step: onnx.ModelProto, family: str, states: list[str], halt_threshold: float, solver: SolverConfig | None
) -> _LoopSpec:
    """The family's stopping rule and its default limit, the solver settings checked (a DEQ needs them; Anderson
    export needs an undamped step) and the state rank."""
    opset = next(o.version for o in step.opset_import if o.domain in ("", "ai.onnx"))
    rule = stopping_rule(family)
    deq = rule is FixedPoint
    if deq and solver is None:
        raise ExportError("a DEQ Loop needs the solver settings", "pass the model's SolverConfig as solver=")
    anderson = solver if deq and solver is not None and solver.name == "anderson" else None
    if anderson is not None and anderson.damping != 1.0:
        raise ExportError(
            "Anderson export needs an undamped step (solver.damping = 1)", "mix with anderson_beta instead of damping"
        )
    rank = _rank(step.graph, states[0])
    limit_default = solver.tol if deq and solver is not None else halt_threshold
    return _LoopSpec(rule, opset, states, rank, limit_default, anderson)


def _encode_and_constants(g: _Graphs, encode: onnx.ModelProto, spec: _LoopSpec, budget: int) -> None:
    """The encode graph inlined, the control inputs' defaults and the batch-sized `done` / `steps` starts."""
    n, i = inline(encode.graph, "enc/", {i.name: i.name for i in encode.graph.input} | {"x": "x"})
    g.outer += n
    g.inits += i
    g.inits += [
        _const("max_steps", np.array(budget, np.int64)),
        _const(spec.rule.limit, np.array(spec.limit_default, np.float32)),
        _const("c/true", np.array(True)),
        _const("c/zero_i64", np.array([0], np.int64)),
        _const("c/one_i64", np.array([1], np.int64)),
    ]
    g.outer += [
        helper.make_node("Shape", ["x"], ["x_shape"]),
        helper.make_node("Slice", ["x_shape", "c/zero_i64", "c/one_i64"], ["batch"]),
        helper.make_node(
            "ConstantOfShape", ["batch"], ["done0"], value=helper.make_tensor("v", TensorProto.BOOL, [1], [False])
        ),
        helper.make_node(
            "ConstantOfShape", ["batch"], ["steps0"], value=helper.make_tensor("v", TensorProto.INT64, [1], [0])
        ),
    ]


def _initial_states(g: _Graphs, step: onnx.ModelProto, spec: _LoopSpec, initial: dict[str, np.ndarray]) -> None:
    """Each state's start vector broadcast to the input's shape (and Anderson's empty histories): the carried
    values the Loop starts from."""
    sn = spec.states
    state_dtype = onnx.helper.tensor_dtype_to_np_dtype(_like(step.graph, sn[0], "_").type.tensor_type.elem_type)
    if spec.anderson is not None and state_dtype != np.float32:
        raise ExportError(
            "Anderson Loop export is float32 only", "export DEQ models in float32 (export.precisions: [float32])"
        )
    for s in sn:
        g.inits.append(_const(f"init/{s}", initial[s].astype(state_dtype)))
        g.outer.append(helper.make_node("Expand", [f"init/{s}", "x_shape"], [f"{s}0"]))
    g.carried = [f"{s}0" for s in sn] + ["done0", "steps0"]
    if spec.anderson is not None:
        dim = int(initial[sn[0]].size)
        g.inits.append(_const("c/hist_shape", np.array([spec.anderson.anderson_m, dim], np.int64)))
        g.outer += [
            helper.make_node("Concat", ["batch", "c/hist_shape"], ["hist_shape"], axis=0),
            helper.make_node(
                "ConstantOfShape", ["hist_shape"], ["hist0"], value=helper.make_tensor("v", _FLOAT, [1], [0.0])
            ),
        ]
        g.carried += ["hist0", "hist0", f"{sn[0]}0"]  # X history, F history, best iterate


def _body_step(g: _Graphs, step: onnx.ModelProto, spec: _LoopSpec) -> None:
    """The body's inputs, the step graph inlined, and the per-sample bookkeeping: steps taken by active samples,
    and `done` once the stopping signal crosses its limit."""
    sn, limit = spec.states, spec.rule.limit
    g.b_in = [
        helper.make_tensor_value_info("b/iter", TensorProto.INT64, []),
        helper.make_tensor_value_info("b/cond", TensorProto.BOOL, []),
    ]
    g.b_in += [_like(step.graph, s, f"b/{s}") for s in sn]
    g.b_in += [
        helper.make_tensor_value_info("b/done", TensorProto.BOOL, ["batch"]),
        helper.make_tensor_value_info("b/steps", TensorProto.INT64, ["batch"]),
    ]
    io = {s: f"b/{s}" for s in sn} | {"x": "x"} | {f"{s}_next": f"b/{s}_next" for s in sn}
    g.body, g.body_inits = inline(step.graph, "body/", io | {spec.rule.signal: "b/signal"})
    g.body_inits += [_const("body/axes", np.arange(1, spec.rank, dtype=np.int64))]
    g.body += [
        helper.make_node("Not", ["b/done"], ["b/active"]),
        helper.make_node("Cast", ["b/active"], ["b/active_i64"], to=TensorProto.INT64),
        helper.make_node("Add", ["b/steps", "b/active_i64"], ["b/steps_out"]),
        helper.make_node("Unsqueeze", ["b/done", "body/axes"], ["b/done_b"]),
    ]
    if spec.rule is FixedPoint:
        g.body.append(helper.make_node("LessOrEqual", ["b/signal", limit], ["b/newly"]))
    else:
        g.body.append(helper.make_node("Greater", ["b/signal", limit], ["b/newly"]))
    g.body.append(helper.make_node("Or", ["b/done", "b/newly"], ["b/done_out"]))


def _body_freeze(g: _Graphs, spec: _LoopSpec) -> None:
    """Samples already done keep their state: the step's result only where the sample is still running."""
    g.body += [helper.make_node("Where", ["b/done_b", f"b/{s}", f"b/{s}_next"], [f"b/{s}_out"]) for s in spec.states]
    g.state_out = [f"b/{s}_out" for s in spec.states]


def _body_anderson(g: _Graphs, spec: _LoopSpec, dim: int) -> None:
    """Anderson acceleration in the body: the histories in, the update graph inlined, the best iterate kept for
    samples already converged."""
    assert spec.anderson is not None
    z, m = spec.states[0], spec.anderson.anderson_m
    g.b_in += [helper.make_tensor_value_info(n_, _FLOAT, ["batch", m, dim]) for n_ in ("b/X", "b/F")]
    g.b_in.append(helper.make_tensor_value_info("b/best", _FLOAT, ["batch", dim]))
    io = {"X": "b/X", "F": "b/F", "z": f"b/{z}", "fz": f"b/{z}_next", "k": "b/iter"}
    io |= {"X_next": "b/X_out", "F_next": "b/F_out", "z_next": f"b/{z}_out"}
    a_nodes, a_inits = inline(_export_anderson(spec.anderson, dim, spec.opset), "anderson/", io)
    g.body += a_nodes
    g.body_inits += a_inits
    g.body.append(helper.make_node("Where", ["b/done_b", "b/best", f"b/{z}_next"], ["b/best_out"]))
    g.state_out = [f"b/{z}_out"]


def _body_end(g: _Graphs, step: onnx.ModelProto, spec: _LoopSpec, dim: int) -> None:
    """The continue condition (some sample still running), the trace output and the body's outputs."""
    g.body += [
        helper.make_node("Cast", ["b/done_out"], ["b/done_i32"], to=TensorProto.INT32),
        helper.make_node("ReduceMin", ["b/done_i32"], ["b/all_done"], keepdims=0),
        helper.make_node("Equal", ["b/all_done", "body/zero_i32"], ["b/cond_out"]),
        helper.make_node("Identity", ["b/signal"], ["b/trace"]),
    ]
    g.body_inits.append(_const("body/zero_i32", np.array(0, np.int32)))
    g.b_out = [helper.make_tensor_value_info("b/cond_out", TensorProto.BOOL, [])]
    g.b_out += [_like(step.graph, s, o) for s, o in zip(spec.states, g.state_out)]
    g.b_out += [
        helper.make_tensor_value_info("b/done_out", TensorProto.BOOL, ["batch"]),
        helper.make_tensor_value_info("b/steps_out", TensorProto.INT64, ["batch"]),
    ]
    if spec.anderson is not None:
        m = spec.anderson.anderson_m
        g.b_out += [helper.make_tensor_value_info(o, _FLOAT, ["batch", m, dim]) for o in ("b/X_out", "b/F_out")]
        g.b_out.append(helper.make_tensor_value_info("b/best_out", _FLOAT, ["batch", dim]))
    g.b_out.append(helper.make_tensor_value_info("b/trace", _FLOAT, ["batch"]))


def _outer_model(
    g: _Graphs, encode: onnx.ModelProto, step: onnx.ModelProto, readout: onnx.ModelProto, spec: _LoopSpec
) -> onnx.ModelProto:
    """The `Loop` node over the body, the readout inlined on the final (Anderson: best) state, and the model's
    inputs (encode's and the two control inputs) and outputs."""
    sn, anderson = spec.states, spec.anderson is not None
    body_graph = helper.make_graph(g.body, "step_body", g.b_in, g.b_out, initializer=g.body_inits)
    final = [f"{s}_final" for s in sn]
    loop_out = final + ["done", "steps"] + (["X_final", "F_final", "best"] if anderson else []) + ["trace"]
    g.outer.append(
        helper.make_node("Loop", ["max_steps", "c/true", *g.carried], loop_out, body=body_graph, name="recursion")
    )
    answer = {sn[0]: "best"} if anderson else {s: f"{s}_final" for s in sn}
    head_out = ["logits", "halt"] if spec.rule.halting_head else ["logits"]
    n, i = inline(readout.graph, "readout/", answer | {o: o for o in head_out})
    g.outer += n
    g.inits += i
    inputs = [
        *encode.graph.input,  # inputs[, puzzle_ids]
        helper.make_tensor_value_info("max_steps", TensorProto.INT64, []),
        helper.make_tensor_value_info(spec.rule.limit, _FLOAT, []),
    ]
    outputs = [o for o in readout.graph.output if o.name in head_out]
    outputs += [
        helper.make_tensor_value_info("steps", TensorProto.INT64, ["batch"]),
        helper.make_tensor_value_info("done", TensorProto.BOOL, ["batch"]),
        helper.make_tensor_value_info("trace", _FLOAT, ["steps_taken", "batch"]),
    ]
    outputs += [_like(step.graph, s, answer[s]) for s in sn]
    graph = helper.make_graph(g.outer, "edgekit_loop", inputs, outputs, initializer=g.inits)
    return helper.make_model(
        graph, opset_imports=list(step.opset_import), producer_name="edgekit", ir_version=step.ir_version
    )


def _checked(model: onnx.ModelProto) -> onnx.ModelProto:
    """The stitched model through onnx.checker (a failure is an edgekit bug, said in one line)."""
    try:
        if not has_external_data(model):  # else checked once written, beside its data (export/onnx_export.py)
            onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as e:
        raise ExportError(
            f"the Loop graph fails onnx.checker: {first_line(e, 240)}", "report this as an edgekit bug"
        ) from None
    return model


def set_halt_threshold(path: Path, threshold: float) -> bool:
    """Set the default of a saved ACT Loop form's `halt_threshold` input (an initializer of the same name) in place:
    a compressed variant's Loop answers at that variant's own calibrated threshold when a backend builds the default
    in (TensorRT). False when the graph has no such input (a DEQ's Loop takes `tol`)."""
    model = onnx.load(str(path), load_external_data=False)
    for i, t in enumerate(model.graph.initializer):
        if t.name == "halt_threshold":
            model.graph.initializer[i].CopyFrom(_const("halt_threshold", np.array(threshold, np.float32)))
            onnx.save(model, str(path))
            return True
    return False
