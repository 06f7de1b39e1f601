"""The step-graph optimizer computes the same function, splits the SwiGLU projections and leaves the file no larger."""

from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgekit.export.onnx_export import export_step_graphs
from edgekit.export.optimize import split_sliced_projections
from edgekit.models.checkpoint import load_model


def _run(path_or_bytes, feeds):
    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(path_or_bytes, so).run(None, feeds)


@pytest.mark.parametrize("name", ["trm-sudoku", "hrm-sudoku", "deq-digits"])
def test_optimized_graphs_compute_the_same(root, tmp_path, name):
    m = load_model(root / "examples" / "models" / name, forward_dtype="float32")
    (tmp_path / "plain").mkdir()
    (tmp_path / "opt").mkdir()
    plain = export_step_graphs(m, tmp_path / "plain", optimize=False)
    opt = export_step_graphs(m, tmp_path / "opt", optimize=True)
    rng = np.random.default_rng(0)
    for a, b in zip(plain, opt):
        sess = ort.InferenceSession(str(a.path))
        feeds = {}
        for i in sess.get_inputs():
            shape = [3 if not isinstance(d, int) else d for d in i.shape]
            feeds[i.name] = (rng.integers(1, 11, shape) if "int" in i.type else rng.standard_normal(shape)).astype(
                np.int64 if "int" in i.type else np.float32
            )
        for x, y in zip(_run(str(a.path), feeds), _run(str(b.path), feeds)):
            assert x.shape == y.shape
            assert np.abs(x - y).max() <= 1e-5 * max(1.0, np.abs(x).max()), (name, a.name)
        assert b.bytes <= a.bytes * 1.001 + 4096, (name, a.name, a.bytes, b.bytes)
    if name != "deq-digits":  # the Sudoku models use SwiGLU: its chunk(2) Slices must be gone
        ops = Counter(n.op_type for n in onnx.load(str(tmp_path / "opt" / "step.onnx")).graph.node)
        before = Counter(n.op_type for n in onnx.load(str(tmp_path / "plain" / "step.onnx")).graph.node)
        assert ops["Slice"] == 0 < before["Slice"]
        assert ops["MatMul"] > before["MatMul"]


def _sliced(starts_ends, axis=-1, used_elsewhere=False):
    w = np.arange(4 * 6, dtype=np.float32).reshape(4, 6)
    inits = [numpy_helper.from_array(w, "W"), numpy_helper.from_array(np.array([axis], np.int64), "ax")]
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"], name="mm")]
    outs = []
    for k, (s, e) in enumerate(starts_ends):
        inits += [
            numpy_helper.from_array(np.array([s], np.int64), f"s{k}"),
            numpy_helper.from_array(np.array([e], np.int64), f"e{k}"),
        ]
        nodes.append(helper.make_node("Slice", ["h", f"s{k}", f"e{k}", "ax"], [f"o{k}"], name=f"sl{k}"))
        outs.append(helper.make_tensor_value_info(f"o{k}", TensorProto.FLOAT, None))
    if used_elsewhere:
        nodes.append(helper.make_node("Relu", ["h"], ["r"]))
        outs.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, None))
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])], outs, inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("ranges", [[(0, 3), (3, 6)], [(0, 2), (2, 4), (4, 100)], [(1, 3)]])
def test_split_matches_slices(ranges):
    m = _sliced(ranges)
    out, n = split_sliced_projections(m)
    assert n == 1 and not [x for x in out.graph.node if x.op_type == "Slice"]
    x = np.random.default_rng(1).standard_normal((2, 4)).astype(np.float32)
    for a, b in zip(_run(m.SerializeToString(), {"x": x}), _run(out.SerializeToString(), {"x": x})):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kw", [{"axis": 0}, {"used_elsewhere": True}])
def test_split_leaves_other_patterns_alone(kw):
    m = _sliced([(0, 3), (3, 6)], **kw)
    out, n = split_sliced_projections(m)
    assert n == 0 and Counter(x.op_type for x in out.graph.node)["Slice"] == 2
