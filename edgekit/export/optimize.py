"""Graph clean-up for exported step graphs: plain ONNX in, plain ONNX out, same numbers.

Why: the TorchScript exporter writes `x @ W_gate_up` followed by a shape-computed `chunk(2)` (Shape → Gather
→ Div → Mul → Slice, twice) for every SwiGLU call. On onnxruntime CPU the two Slices copy the whole
projection output: 20 % of the fp32 step's kernel time at batch 64 and 32 % of an INT8 step's (measured on the
TRM demo, `benchmarks/quantize_speed.py`). Splitting the weight once (`x @ W_gate`, `x @ W_up`) removes the
copies; it also gives a quantizer two ordinary MatMuls instead of one whose output is sliced.
"""

from __future__ import annotations

import numpy as np
import onnx


def _const_ints(v) -> list[int] | None:
    if v is None or v.const_value is None:
        return None
    return [int(i) for i in np.asarray(v.const_value.numpy()).reshape(-1)]


def split_sliced_projections(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """Replace `MatMul(x, W)` whose output is only read by last-axis Slices with one MatMul per slice reading the
    matching columns of W. Column blocks are shared between calls of the same weight (recursion re-uses one
    module many times), so the file does not grow. Returns the model and how many MatMuls were split."""
    import onnx_ir as ir

    m = ir.from_proto(model)
    g = m.graph
    blocks: dict[tuple[str, int, int], ir.Value] = {}
    split = 0
    for node in list(g):
        if node.op_type != "MatMul" or node.domain not in ("", "ai.onnx"):
            continue
        x, w = node.inputs
        if w is None or w.const_value is None or w.shape is None or len(w.shape) != 2:
            continue
        cols = w.shape[1]
        if not isinstance(cols, int) or w.name is None or w.dtype is None:  # a named weight of static shape only
            continue
        out = node.outputs[0]
        users = [u for u, _ in out.uses()]
        if not users or out.is_graph_output() or any(u.op_type != "Slice" for u in users):
            continue
        ranges = []
        for s in users:
            ins = list(s.inputs) + [None] * (5 - len(s.inputs))
            starts, ends, axes, steps = (_const_ints(v) for v in ins[1:5])
            rank = len(out.shape) if out.shape is not None else None
            if starts is None or ends is None or len(starts) != 1:
                break
            axis = axes[0] if axes else 0
            if not (axis == -1 or (rank is not None and axis == rank - 1)) or (steps not in (None, [1])):
                break
            lo, hi = max(0, min(starts[0], cols)), max(0, min(ends[0], cols))
            if lo >= hi:
                break
            ranges.append((s, lo, hi))
        else:
            arr = w.const_value.numpy()
            for _k, (s, lo, hi) in enumerate(ranges):
                key = (w.name, lo, hi)
                if key not in blocks:
                    t = ir.tensor(np.ascontiguousarray(arr[:, lo:hi]), name=f"{w.name}__cols{lo}_{hi}")
                    v = ir.Value(
                        name=t.name, shape=ir.Shape([arr.shape[0], hi - lo]), type=ir.TensorType(w.dtype), const_value=t
                    )
                    g.register_initializer(v)
                    blocks[key] = v
                mm = ir.Node("", "MatMul", [x, blocks[key]], name=f"{node.name}_cols{lo}_{hi}", num_outputs=1)
                mm.outputs[0].name = f"{s.outputs[0].name}"
                s_out = s.outputs[0]
                s_out.name = f"{s_out.name}__sliced"
                g.insert_before(s, mm)
                if s_out.dtype is not None:
                    mm.outputs[0].dtype = s_out.dtype
                mm.outputs[0].shape = s_out.shape
                s_out.replace_all_uses_with(mm.outputs[0], replace_graph_outputs=True)
                g.remove(s, safe=True)
            g.remove(node, safe=True)
            split += 1
    for name in [n for n, v in g.initializers.items() if not v.uses() and not v.is_graph_output()]:
        del g.initializers[name]
    return ir.to_proto(m), split


def optimize_step(model: onnx.ModelProto) -> onnx.ModelProto:
    """Fold shape arithmetic and Identity weight aliases (onnxscript's optimizer), then split sliced
    projections. The result computes the same function; `tests/export/test_optimize.py` checks it on every demo."""
    from onnxscript import optimizer

    folded = optimizer.optimize(model)
    out, _ = split_sliced_projections(folded)
    del out.opset_import[:]
    out.opset_import.extend(model.opset_import)
    return out
