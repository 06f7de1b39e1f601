"""`int8_fp16`: static INT8 Q/DQ (as `int8`) everywhere except the MatMuls `quantize.int8_fp16.float16` names, which
compute in float16 between Casts: the graph's structure, its closeness to the float32 step, batch invariance, the
recipe checks, `edgekit check`, the debug rebuild, and (slow) an export that validates it end to end."""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, numpy_helper
from qdq_facts import activation_scales, dq_fed

from edgekit.quantize import MODES, QuantizeError
from edgekit.quantize.calibration import trajectory_items
from edgekit.tasks import sudoku

DOWN = ".*down_proj.*"


@pytest.fixture(scope="module")
def variant(trm_job):
    return MODES["int8_fp16"].handler(trm_job)


@pytest.fixture(scope="module")
def static(trm_job):
    return MODES["int8"].handler(trm_job).step


def _float16_matmuls(m: onnx.ModelProto) -> set[str]:
    half = {t.name for t in m.graph.initializer if t.data_type == TensorProto.FLOAT16}
    return {n.name for n in m.graph.node if n.op_type == "MatMul" and set(n.input) & half}


def _cast_to(node: onnx.NodeProto | None) -> int | None:
    if node is None or node.op_type != "Cast":
        return None
    return next(a.i for a in node.attribute if a.name == "to")


def _session(m: onnx.ModelProto, threads: int = 1) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    return ort.InferenceSession(m.SerializeToString(), so)


def test_float16_exactly_where_the_patterns_match_and_static_int8_elsewhere(trm_job, variant, static):
    """Every down projection (and nothing else) is a float16 MatMul: a float16 weight, its input a Cast to float16
    whose source no DequantizeLinear makes, its output cast back to float32. Every other MatMul is int8's static
    Q/DQ MatMul with the same calibrated activation scales; the halting head stays float32; the Q/DQ lint of the
    declared form passes."""
    from edgekit.quantize.lint import form_violations
    from edgekit.quantize.modes import FORMS

    q = variant.step
    onnx.checker.check_model(q, full_check=True)
    downs = {n.name for n in trm_job.step().graph.node if n.op_type == "MatMul" and re.fullmatch(DOWN, n.name)}
    assert downs and _float16_matmuls(q) == downs
    producer = {o: n for n in q.graph.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in q.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    for n in (n for n in q.graph.node if n.name in downs):
        cast = producer[n.input[0]]
        assert _cast_to(cast) == TensorProto.FLOAT16 and producer[cast.input[0]].op_type != "DequantizeLinear"
        (back,) = consumers[n.output[0]]
        assert _cast_to(back) == TensorProto.FLOAT
    assert dq_fed(q) == dq_fed(static) - downs and downs <= dq_fed(static)
    assert not any("q_head" in n for n in dq_fed(q))
    assert variant.info["float16_matmuls"] == len(downs) and variant.info["static_matmuls"] == len(dq_fed(q))
    assert variant.info["float16"] == [DOWN] and variant.info["smooth"]["alpha"] == 0.75
    # one float16 copy per down-projection weight, however often the recursion calls it; no float32 copy left
    from edgekit.quantize.nncf_backend import prepare

    weights = {n.input[1] for n in q.graph.node if n.name in downs}
    assert len(weights) == len({n.input[1] for n in prepare(trm_job.step()).graph.node if n.name in downs}) < len(downs)
    assert all(w.endswith("/float16") and w[: -len("/float16")] not in {t.name for t in q.graph.initializer}
               for w in weights)  # fmt: skip
    assert form_violations(q, FORMS[MODES["int8_fp16"].form]) == []

    mine, theirs = activation_scales(q), activation_scales(static)
    assert mine and all(theirs[k] == v for k, v in mine.items())


def test_close_to_the_float32_step_and_closer_than_int8(trm_job, variant, static):
    """On a real step input: every output within a few percent of float32, and the halting logit nearer float32's
    than static INT8's (the down projections' per-tensor activation noise is what moves halting)."""
    feeds = dict(trm_job.items()[3].items())
    ref = _session(trm_job.step()).run(None, feeds)
    mine = _session(variant.step).run(None, feeds)
    theirs = _session(static).run(None, feeds)

    def rel(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.linalg.norm(a - b) / np.linalg.norm(a))

    assert all(rel(a, b) < 0.1 for a, b in zip(ref, mine))
    assert rel(ref[-1], mine[-1]) < rel(ref[-1], theirs[-1])


def test_batch_invariant(trm_job, variant):
    """Fixed scales and float16 rounding, no range over the batch: on one thread a puzzle's step output has the same
    bits alone, in a batch of 48 and shuffled. On two threads onnxruntime's CPU float16 MatMul splits its work by
    the batch size and its result can differ in the last float16 bit (measured: up to 1 ulp at the down
    projections, which a static INT8 code downstream can amplify to ~0.05 in the state), so there the outputs are
    only close; shuffling (same batch size) stays bit-identical."""
    feeds = trajectory_items(trm_job.model, trm_job.search_inputs, 48)[2]
    perm = np.random.default_rng(0).permutation(48)
    for threads in (1, 2):
        sess = _session(variant.step, threads)
        full = sess.run(None, feeds)
        shuffled = sess.run(None, {k: v[perm] for k, v in feeds.items()})
        assert all(np.array_equal(f[perm], s) for f, s in zip(full, shuffled)), threads
        for i in (0, 7, 47):
            alone = sess.run(None, {k: v[i : i + 1] for k, v in feeds.items()})
            for f, a in zip(full, alone):
                if threads == 1:
                    assert np.array_equal(f[i], a[0]), i
                else:
                    assert np.abs(f[i] - a[0]).max() <= 0.02 * np.abs(f[i]).max() + 1e-3, i


def test_check_accepts_it_for_tensorrt_targets_and_the_cpu(variant, tmp_path):
    from edgekit.tensorrt.check import check_onnx
    from edgekit.tensorrt.memory import activation_bytes_per_sample

    path = tmp_path / "step.onnx"
    onnx.save(variant.step, str(path))
    for target in ("jetson-orin-nano", "hopper", "x86-cpu"):
        findings, summary = check_onnx(path, target)
        assert [f.message for f in findings if f.severity == "error"] == [], target
    assert summary["quantization"] == ["int8"] and activation_bytes_per_sample(variant.step) > 0


def test_debug_sees_the_float16_layers_and_rebuilds_them_its_way(trm_job, variant, static):
    """`edgekit debug`: the variant's float16 MatMuls count as computed another way (with the static ones), and
    its partial rebuild makes a down projection float16, an up projection static INT8, everything else float."""
    from edgekit.debug.layers import PARTIAL, quantized_nodes
    from edgekit.quantize.nncf_backend import layer_groups

    step = trm_job.step()
    assert set(quantized_nodes(step, variant.step)) == set(quantized_nodes(step, static)) == dq_fed(static)
    groups = layer_groups(step, by="layer")
    downs, ups = groups["/L_level/layers.0/mlp/down_proj"], groups["/L_level/layers.0/mlp/gate_up_proj"]
    q = PARTIAL["int8_fp16"](step, trm_job.items(), {"float16": [DOWN]}, downs + ups)
    assert _float16_matmuls(q) == set(downs) and dq_fed(q) == set(ups)


def test_bad_patterns_are_one_line_and_tensorrt_targets_take_the_mode(trm_job, tmp_path, root):
    from edgekit.errors import RecipeError
    from edgekit.pipeline import _check_modes
    from edgekit.quantize.modes import int8_fp16, tensorrt_quantized_modes
    from edgekit.schema import load_recipe

    assert MODES["int8_fp16"].tensorrt and "int8_fp16" in tensorrt_quantized_modes()
    recipe = SimpleNamespace(quantize=SimpleNamespace(modes=["int8_fp16"]))
    _check_modes(recipe, SimpleNamespace(backend="tensorrt", name="jetson-orin-nano"))  # no error
    model = root / "examples" / "models" / "trm-sudoku"
    base = f"schema_version: 1\nname: t\nmodel: {{path: {model}}}\ntask: {{name: sudoku}}\n"
    for i, q in enumerate(["{modes: [int8_fp16], int8_fp16: {float16: ['(']}}", "{int8_fp16: {float16: []}}"]):
        (tmp_path / f"r{i}.yaml").write_text(base + f"target: jetson-orin-nano\nquantize: {q}\n")
        with pytest.raises(RecipeError) as e:
            load_recipe(tmp_path / f"r{i}.yaml")
        assert "quantize.int8_fp16.float16" in str(e.value) and "\n" not in str(e.value)
    for patterns, why in (["no-such-node"], ""), ([".*q_head.*"], "Gemm, not a MatMul"):
        with pytest.raises(QuantizeError) as e:
            int8_fp16.int8_fp16(trm_job.step(), [], [], [], patterns)
        msg = str(e.value)
        assert "found no MatMul matching quantize.int8_fp16.float16" in msg and why in msg and "\n" not in msg
        assert msg.endswith("set quantize.int8_fp16.float16 to node-name patterns of the step graph's MatMuls")


def test_a_layer_beyond_float16_range_is_refused_in_one_line():
    """A down projection whose outputs exceed 65504 on the calibration states would compute inf in float16: the mode
    refuses it (one line, what to do) instead of writing a graph that overflows."""
    from onnx import helper

    from edgekit.quantize.modes.int8_fp16 import int8_fp16, largest_values

    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((16, 16)).astype(np.float32), "w_up"),
        numpy_helper.from_array(rng.standard_normal((16, 16)).astype(np.float32), "w_down"),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "w_up"], ["h"], name="/mlp/up_proj/MatMul"),
        helper.make_node("MatMul", ["h", "w_down"], ["y"], name="/mlp/down_proj/MatMul"),
    ]
    io = helper.make_tensor_value_info
    m = helper.make_model(
        helper.make_graph(nodes, "g", [io("x", TensorProto.FLOAT, ["b", 16])], [io("y", TensorProto.FLOAT, ["b", 16])],
                          inits),
        opset_imports=[helper.make_opsetid("", 17)],
    )  # fmt: skip
    items = [{"x": rng.standard_normal((4, 16)).astype(np.float32)} for _ in range(4)]
    q, info = int8_fp16(m, items, [], [], [DOWN])
    assert _float16_matmuls(q) == {"/mlp/down_proj/MatMul"} and dq_fed(q) == {"/mlp/up_proj/MatMul"}
    assert 1 < info["float16_max_abs"] < 1000
    big = [{"x": 1e4 * v["x"]} for v in items]
    assert largest_values(m, big, ["/mlp/down_proj/MatMul"]) > 65504
    with pytest.raises(QuantizeError) as e:
        int8_fp16(m, big, [], [], [DOWN])
    assert "beyond float16's 65504" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.slow  # a small `edgekit export` (PyTorch reference, quantization, validation of two variants): ~1 min
def test_the_variant_exports_and_validates_end_to_end(root, tmp_path):
    """A TensorRT-target recipe with the int8_fp16 variant: exported with its Loop form, validated against float32
    (halting agreement and accuracy recorded), `edgekit check` passes every graph, the build recipe for the variant
    is strongly typed at int8+fp16, and the deployed variant answers alike in the host loop (batch compaction) and the
    Loop form (no compaction)."""
    import json

    from edgekit.pipeline import run_export
    from edgekit.runtime import Runner
    from edgekit.tensorrt.build_spec import make_recipe

    mp = pytest.MonkeyPatch()
    mp.setenv("EDGEKIT_CACHE", str(tmp_path / "cache"))
    (tmp_path / "r.yaml").write_text(f"""schema_version: 1
name: tiny-int8-fp16
model: {{path: {root / "examples" / "models" / "trm-sudoku"}}}
task: {{name: sudoku, n: 32, givens: [28, 40], seed: 5}}
target: jetson-orin-nano
export: {{forms: [step, loop]}}
quantize: {{modes: [int8_fp16], calibration: {{n: 8}}}}
validate: {{halt_threshold: 0.0}}
gates: {{max_exact_drop: 0.5, max_exact_halted_drop: 0.5, min_halting_agreement: 0.5}}
output: {tmp_path / "out"}
""")
    try:
        out = run_export(tmp_path / "r.yaml", log=lambda s: None)
    finally:
        mp.undo()
    folder, results = out.folder, out.results
    assert out.exit_code == 0, results["gates"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["variants"]["int8_fp16"]["loop"] == "int8_fp16/loop"
    assert manifest["quantization"]["int8_fp16"]["float16_matmuls"] > 0
    (entry,) = [v for v in results["variants"] if v["name"] == "int8_fp16"]
    assert 0.5 <= entry["vs_onnx_float32"]["halting_step_agreement"] <= 1
    assert results["target_build"]["compatible"] is True
    r = make_recipe(folder, "jetson-orin-nano", variants=["int8_fp16"])
    assert r.strongly_typed and r.precision == "int8+fp16"
    assert {g.name for g in r.graphs if g.strongly_typed} == {"int8_fp16/step", "int8_fp16/loop"}  # encode: float32
    x, _ = sudoku.SudokuPool.generate(24, seed=77).sample(24, (22, 40), np.random.default_rng(77), augment=False)
    runner = Runner(folder, variant="int8_fp16", threads=1)  # bit-identical float16 MatMuls (test_batch_invariant)
    host, loop = runner.solve(x, mode="host"), runner.solve(x, mode="loop")
    assert np.array_equal(host.steps, loop.steps) and np.array_equal(host.preds, loop.preds)
