"""Quantization of the step graph with NNCF: TensorRT-style Q/DQ, quantized weights inside the Loop body,
calibration from whole trajectories with a content-hash cache, and the accuracy-aware search logic."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from qdq_facts import activation_scales, dq_fed

from edgekit.quantize import QuantizeJob, QuantizeSection
from edgekit.quantize.calibration import cached_items, trajectory_items
from edgekit.quantize.lint import qdq_violations
from edgekit.quantize.nncf_backend import compress_weights_int8, layer_groups, quantize_int8
from edgekit.quantize.search import Score, search
from edgekit.tasks import sudoku


def test_calibration_covers_every_step(trm_job):
    items = trm_job.items()
    assert len(items) == 16  # 8 samples in one batch x 16 steps
    assert set(items[0]) == {"z_H", "z_L", "x"}
    assert not np.allclose(items[0]["z_H"], items[-1]["z_H"])  # step 1 and step 16 states differ


def test_int8_step_is_tensorrt_style_and_wraps_into_loop_body(trm_job):
    q = quantize_int8(trm_job.step(), trm_job.items(), [".*q_head.*"], [])
    assert qdq_violations(q) == []
    assert sum(n.op_type == "QuantizeLinear" for n in q.graph.node) > 0
    assert not any(n.op_type == "QuantizeLinear" and "q_head" in n.name for n in q.graph.node)
    loop = trm_job.wrap(q)
    body = next(n for n in loop.graph.node if n.op_type == "Loop").attribute[0].g
    assert any(n.op_type == "QuantizeLinear" for n in body.node)
    assert any(t.data_type == TensorProto.INT8 for t in body.initializer)  # weights are the body's own
    onnx.checker.check_model(loop, full_check=True)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(loop.SerializeToString(), opts)
    out = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"inputs": trm_job.search_inputs})))
    exact = float(np.mean((out["logits"].argmax(-1) == trm_job.search_labels).all(-1)))
    assert exact > 0.6 and out["steps"].mean() < 16  # still solves and halts (fp32 solves ~all of these)


def test_quantized_step_unrolls_with_its_weights_stored_once(trm_job):
    """The unrolled form of a quantized variant: 16 copies of the INT8 step reading one set of INT8 weights, the
    same answer as running that step graph 16 times in the host loop."""
    q = quantize_int8(trm_job.step(), trm_job.items(), [".*q_head.*"], [])
    unrolled = trm_job.wrap(q, "unrolled")
    stored = sum(len(t.raw_data) for t in unrolled.graph.initializer)
    assert stored < 1.05 * sum(len(t.raw_data) for t in q.graph.initializer) + 200_000  # + encode / readout weights
    assert not any(n.op_type == "Loop" for n in unrolled.graph.node)
    sess = ort.InferenceSession(unrolled.SerializeToString())
    x = trm_job.search_inputs[:8]
    logits, halt = sess.run(None, {"inputs": x})
    enc = ort.InferenceSession(str(trm_job.folder / "encode.onnx"))
    step = ort.InferenceSession(q.SerializeToString())
    read = ort.InferenceSession(str(trm_job.folder / "readout.onnx"))
    xe = enc.run(None, {"inputs": x})[0]
    from edgekit.export.onnx_export import initial_vectors

    init = initial_vectors(trm_job.model)
    zh, zl = (np.broadcast_to(init[k], xe.shape).astype(np.float32) for k in ("z_H", "z_L"))
    names = [i.name for i in step.get_inputs()]
    for _ in range(16):
        feed = {"z_H": zh, "z_L": zl, "x": xe}
        zh, zl, _h = step.run(None, {k: feed[k] for k in names})
    want, want_halt = read.run(
        None, {k: v for k, v in (("z_H", zh), ("z_L", zl)) if k in [i.name for i in read.get_inputs()]}
    )
    assert np.array_equal(logits.argmax(-1), want.argmax(-1))
    assert np.abs(logits - want).max() <= 1e-4 * np.abs(want).max() and np.abs(halt - want_halt).max() < 1e-3


def test_weight_only_compression_shrinks_and_keeps_outputs(trm_job):
    step = trm_job.step()
    q = compress_weights_int8(step, [".*q_head.*"], [])
    assert len(q.SerializeToString()) < 0.7 * len(step.SerializeToString())
    assert qdq_violations(q) == []
    feeds = dict(trm_job.items()[3].items())
    a = ort.InferenceSession(step.SerializeToString()).run(None, feeds)
    b = ort.InferenceSession(q.SerializeToString()).run(None, feeds)
    assert np.abs(a[0] - b[0]).max() < 0.05 * np.abs(a[0]).max()


def test_layer_groups_merge_calls_of_one_weight(trm_job):
    groups = layer_groups(trm_job.step(), by="layer")
    cfg = trm_job.model.config
    calls = cfg.H_cycles * (cfg.L_cycles + 1)
    assert groups["/L_level/layers.0/mlp/down_proj"].__len__() == calls
    roles = layer_groups(trm_job.step())
    assert len(roles["/L_level/layers.*/mlp/down_proj"]) == calls * cfg.L_layers


def test_lint_rejects_uint8_and_asymmetric_qdq():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    inits = [
        numpy_helper.from_array(np.array(0.1, np.float32), "s"),
        numpy_helper.from_array(np.array(3, np.int8), "zp"),
        numpy_helper.from_array(np.array(0, np.uint8), "zpu"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["q"], name="asym"),
        helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["d"], name="asym_dq"),
        helper.make_node("QuantizeLinear", ["d", "s", "zpu"], ["q2"], name="u8"),
        helper.make_node("DequantizeLinear", ["q2", "s", "zpu"], ["y"], name="u8_dq"),
    ]
    m = helper.make_model(helper.make_graph(nodes, "g", [x], [y], inits))
    bad = qdq_violations(m)
    assert any("asym:" in b and "non-zero" in b for b in bad) and any("u8:" in b and "uint8" in b for b in bad)


def test_calibration_cache_hits_and_survives_a_damaged_entry(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEKIT_CACHE", str(tmp_path))
    calls = []

    def make():
        calls.append(1)
        return [{"z": np.ones((2, 3), np.float32), "x": np.zeros((2, 3), np.float32)}]

    a, hit = cached_items("k1", make)
    b, hit2 = cached_items("k1", make)
    assert (hit, hit2, len(calls)) == (False, True, 1) and np.array_equal(a[0]["z"], b[0]["z"])
    (tmp_path / "calibration" / "k1.npz").write_bytes(b"garbage")
    c, hit3 = cached_items("k1", make)
    assert not hit3 and len(calls) == 2 and np.array_equal(c[0]["z"], a[0]["z"])


def test_search_keeps_the_smallest_sufficient_set_float():
    """Synthetic scores: only keeping group 'b' float recovers accuracy; the search must find {'b'}."""
    groups = {"a": ["a1"], "b": ["b1", "b2"], "c": ["c1"]}

    def quantize(names):
        return names

    def score(names):
        exact = 0.9 if "b1" in names else 0.7
        return Score(exact, 1.0 if "b1" in names else 0.8), None

    res, chosen = search(quantize, groups, score, Score(0.9, 1.0), 0.01, 0.95)
    assert res.passed and res.keep_float == ["b"] and chosen == ["b1", "b2"]


def test_search_reports_failure_when_nothing_suffices():
    groups = {"a": ["a1"], "b": ["b1"]}
    res, _ = search(lambda n: n, groups, lambda n: (Score(0.5, 0.5), None), Score(0.9, 1.0), 0.01, 0.95)
    assert not res.passed


def test_smoothing_is_exact_and_narrows_the_down_projection_inputs(trm_job):
    from edgekit.quantize.smooth import channel_absmax, find_gated_pairs, smooth_gated

    step = trm_job.step()
    pairs = find_gated_pairs(step)
    cfg = trm_job.model.config
    assert len(pairs) == 2 * cfg.L_layers  # mlp_t and mlp in every layer
    assert all(len(p.inputs) == cfg.H_cycles * (cfg.L_cycles + 1) for p in pairs)  # every call of the weight
    smoothed, report = smooth_gated(step, trm_job.items(), alpha=0.75)
    assert len(report) == len(pairs) and all(r["spread_after"] < r["spread_before"] for r in report)
    feeds = trm_job.items()[5]
    a = ort.InferenceSession(step.SerializeToString()).run(None, feeds)
    b = ort.InferenceSession(smoothed.SerializeToString()).run(None, feeds)
    for x, y in zip(a, b):
        assert np.abs(x - y).max() <= 1e-4 * max(1.0, np.abs(x).max())  # same function, fp32 rounding
    after = channel_absmax(smoothed, trm_job.items()[:4], pairs[0].inputs[:1])[pairs[0].inputs[0]]
    before = channel_absmax(step, trm_job.items()[:4], pairs[0].inputs[:1])[pairs[0].inputs[0]]
    assert after.max() / np.median(after) < before.max() / np.median(before)


def test_smoothing_skips_weights_used_outside_a_gated_pair():
    from edgekit.quantize.smooth import find_gated_pairs

    w = [numpy_helper.from_array(np.ones((4, 4), np.float32), n) for n in ("Wg", "Wu", "Wd")]
    nodes = [
        helper.make_node("MatMul", ["x", "Wg"], ["g"]),
        helper.make_node("Sigmoid", ["g"], ["a"]),
        helper.make_node("MatMul", ["x", "Wu"], ["u"]),
        helper.make_node("Mul", ["a", "u"], ["h"]),
        helper.make_node("MatMul", ["h", "Wd"], ["y"]),
    ]
    io = {
        "inputs": [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        "outputs": [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
    }
    ok = helper.make_model(helper.make_graph(nodes, "g", initializer=w, **io))
    assert [(p.up, p.down) for p in find_gated_pairs(ok)] == [("Wu", "Wd")]
    shared = helper.make_model(
        helper.make_graph(
            nodes + [helper.make_node("MatMul", ["y", "Wu"], ["z"])],
            "g",
            initializer=w,
            inputs=io["inputs"],
            outputs=[helper.make_tensor_value_info("z", TensorProto.FLOAT, [2, 4])],
        )
    )
    assert find_gated_pairs(shared) == []  # Wu also feeds another MatMul


@pytest.mark.slow  # quantizes the step graph twice with calibration (~16 s); the exactness test stays fast
def test_smoothing_lowers_int8_step_error(trm_job):
    """Why smoothing is on by default: the INT8 step's error on held-out trajectory states drops."""
    from edgekit.quantize.smooth import smooth_gated

    step = trm_job.step()
    held_out = trajectory_items(trm_job.model, trm_job.search_inputs[:8], 8)
    plain = quantize_int8(step, trm_job.items(), [".*q_head.*"], [])
    smooth = quantize_int8(smooth_gated(step, trm_job.items(), 0.75)[0], trm_job.items(), [".*q_head.*"], [])
    ref, a, b = (ort.InferenceSession(g.SerializeToString()) for g in (step, plain, smooth))

    def err(sess):
        return np.mean(
            [
                np.linalg.norm(sess.run(None, f)[0] - r) / np.linalg.norm(r)
                for f in held_out
                for r in [ref.run(None, f)[0]]
            ]
        )

    assert err(b) < 0.8 * err(a)


def test_quantization_fingerprint_changes_with_what_changes_results(root):
    """A search scored at one halting threshold (or on another graph rewrite, opset or task) must never be
    reused for another: each of these is part of the cache key."""
    from edgekit.quantize import quantize_fingerprint
    from edgekit.quantize.calibration import cache_key
    from edgekit.schema import load_recipe

    recipe, _ = load_recipe(root / "recipes" / "trm-sudoku-mixed.yaml")
    base = quantize_fingerprint("abc", recipe, 0.0)
    variants = [
        quantize_fingerprint("abd", recipe, 0.0),
        quantize_fingerprint("abc", recipe, 4.0),
        quantize_fingerprint(
            "abc", recipe.model_copy(update={"export": recipe.export.model_copy(update={"optimize": False})}), 0.0
        ),
        quantize_fingerprint(
            "abc", recipe.model_copy(update={"export": recipe.export.model_copy(update={"opset": 18})}), 0.0
        ),
        quantize_fingerprint(
            "abc", recipe.model_copy(update={"task": recipe.task.model_copy(update={"seed": 7})}), 0.0
        ),
    ]
    assert len({base, *variants}) == 1 + len(variants)
    q = recipe.quantize
    keys = {cache_key("search", f, q.model_dump()) for f in [base, *variants]}
    keys.add(
        cache_key(
            "search", base, q.model_copy(update={"smooth": q.smooth.model_copy(update={"alpha": 0.5})}).model_dump()
        )
    )
    assert len(keys) == 2 + len(variants)


def test_search_finds_groups_that_only_help_together():
    """Neither 'b' nor 'c' alone recovers halting, both together do, while 'a' alone looks best on its own
    (and raises accuracy above float32, which must not count as closeness). A one-pass ranking keeps 'a' first;
    forward selection must end at {b, c} or a superset that passes."""
    groups = {"a": ["a1"], "b": ["b1"], "c": ["c1"]}

    def score(names):
        both = "b1" in names and "c1" in names
        agree = 0.97 if both else (0.93 if "a1" in names else 0.90 + 0.01 * (("b1" in names) + ("c1" in names)))
        return Score(0.95 if "a1" in names else 0.90, agree), None

    res, chosen = search(lambda n: n, groups, score, Score(0.90, 1.0), 0.01, 0.95)
    assert res.passed and {"b", "c"} <= set(res.keep_float)
    assert res.score.halting_agreement >= 0.95


@pytest.fixture(scope="module")
def quant_artefact(root, tmp_path_factory):
    """A small `edgekit export` run with int8, mixed, int8_per_row and int8_hybrid variants (own cache folder);
    yields (folder, results, log)."""
    from edgekit.pipeline import run_export

    tmp = tmp_path_factory.mktemp("quant")
    mp = pytest.MonkeyPatch()
    mp.setenv("EDGEKIT_CACHE", str(tmp / "cache"))
    recipe = tmp / "r.yaml"
    recipe.write_text(f"""schema_version: 1
name: tiny-quant
model: {{path: {root / "examples" / "models" / "trm-sudoku"}}}
task: {{name: sudoku, n: 32, givens: [28, 40], seed: 5}}
target: x86-cpu
export: {{forms: [step, loop]}}
quantize: {{modes: [int8, mixed, int8_per_row, int8_hybrid], calibration: {{n: 8}},
  search: {{n: 32, min_halting_agreement: 0.5}}}}
validate: {{halt_threshold: 0.0}}
gates: {{max_exact_drop: 0.5}}
output: {tmp / "out"}
""")
    lines: list[str] = []
    try:
        out = run_export(recipe, log=lines.append)
    finally:
        mp.undo()
    return out.folder, out.results, lines


def test_export_pipeline_writes_int8_and_mixed_variants(quant_artefact):
    """The quantize stage inside `edgekit export`: both INT8 variants land in the manifest with their Loop forms,
    are validated against the float32 export, and the smoothing shared by both modes runs once."""
    import json

    folder, results, lines = quant_artefact
    manifest = json.loads((folder / "manifest.json").read_text())
    for mode in ("int8", "mixed"):
        assert manifest["variants"][mode]["loop"] == f"{mode}/loop"
        assert (folder / mode / "loop.onnx").is_file()
        assert manifest["quantization"][mode]["smooth"]["alpha"] == 0.75
    from edgekit.quantize import MODES

    # each quantized variant's form is recorded: a runtime picks a variant by it (OpenVINO's int8: weight_only)
    assert {v: q["form"] for v, q in manifest["quantization"].items()} == {
        v: MODES[v].form for v in manifest["quantization"]
    }
    assert sum(line.startswith("smoothing ") for line in lines) == 1
    names = [v["name"] for v in results["variants"]]
    assert any("int8" in n for n in names) and any("mixed" in n for n in names)
    assert all("vs_onnx_float32" in v for v in results["variants"] if "int8" in v["name"] or "mixed" in v["name"])
    # the label-free fidelity measure: per-step cosine of every compressed variant, plotted and reported
    for v in results["variants"]:
        if "int8" in v["name"] or "mixed" in v["name"]:
            c = v["trajectory_cosine_vs_onnx_float32"]
            assert len(c["mean"]) == len(c["p05"]) == 16 and c["samples"] == 32
            # cosines of a working INT8 recursion: close to 1, never above it (a 5th percentile can exceed the mean)
            assert all(0.5 < m <= 1.0 + 1e-9 for m in c["mean"] + c["p05"])
            assert min(c["mean"]) < 1.0  # compression moved the state: the measure is not a constant
            assert 0 <= c["predicts_halting_change"]["halting_changed"] <= 32
    assert (folder / "trajectory_cosine.png").is_file()
    assert "Trajectory fidelity" in (folder / "report.md").read_text()


def test_every_compressed_variant_gets_its_halting_transition_plot(quant_artefact):
    """From the validation's own records: the float32 x variant halting-step counts cover every example once, their
    diagonal is the recorded same-halting-step agreement, and report.md shows each variant's figure."""
    import json

    folder, _, _ = quant_artefact
    results = json.loads((folder / "results.json").read_text())
    report = (folder / "report.md").read_text()
    f32 = next(e for e in results["variants"] if e["name"] == "float32")
    compressed = [e for e in results["variants"] if "vs_onnx_float32" in e]
    variants = json.loads((folder / "manifest.json").read_text())["variants"]
    assert {e["name"] for e in compressed} == set(variants) - {"float32"} and len(compressed) >= 3
    for e in compressed:
        vs = e["vs_onnx_float32"]
        m = np.asarray(vs["halting_step_transition"])
        assert m.shape == (16, 16) and m.sum() == 32
        assert np.trace(m) / m.sum() == vs["halting_step_agreement"]
        assert m.sum(1).tolist() == f32["halting_histogram"] and m.sum(0).tolist() == e["halting_histogram"]
        png = folder / f"halting_transition_{e['name']}.png"
        assert png.read_bytes()[:4] == b"\x89PNG" and f"![{png.name}]({png.name})" in report


def _bench(root, script: str, *args: str, timeout: int = 600):
    """Run one benchmarks/ script as a user would, capturing its output."""
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, str(root / "benchmarks" / script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow  # runs the benchmark script over every variant (~16 s)
def test_halting_agreement_benchmark_scores_every_variant(quant_artefact, root, tmp_path):
    """benchmarks/halting_agreement.py: every variant scored against float32 on fresh puzzles, with intervals
    that contain the estimate; a folder without a manifest is one line and exit 2."""
    import json

    folder = quant_artefact[0]
    out = tmp_path / "a.json"
    r = _bench(
        root, "halting_agreement.py", folder, "--n", "48", "--full-budget", "16", "--invariance", "24", "--out", out
    )
    assert r.returncode == 0, r.stderr[-2000:]
    rows = {row["variant"]: row for row in json.loads(out.read_text())["rows"]}
    # batch invariance: the per-row, hybrid and static INT8 variants' Loop forms and shuffled batches answer like
    # the host loop on every puzzle
    for name in ("float32", "int8", "int8_per_row", "int8_hybrid"):
        assert rows[name]["loop_same"] == 1.0 and rows[name]["shuffle_same"] == 1.0, rows[name]
    for row in rows.values():
        assert row["full_budget_n"] == 16 and 0 <= row["exact_full"] <= 1
        if row["variant"] != "float32":
            lo, hi = row["exact_drop_ci"]
            assert lo <= row["exact_drop"] <= hi
    assert set(rows) == {"float32", "int8", "mixed", "int8_per_row", "int8_hybrid"}
    assert rows["float32"]["halting_agreement"] == 1.0
    for name in ("int8", "mixed", "int8_per_row", "int8_hybrid"):
        lo, hi = rows[name]["halting_agreement_ci"]
        assert 0 <= lo <= rows[name]["halting_agreement"] <= hi <= 1 and hi - lo > 0.01
        assert rows[name]["mean_steps"] >= 1
    bad = _bench(root, "halting_agreement.py", tmp_path, timeout=120)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "manifest.json" in bad.stderr
    bad = _bench(root, "halting_agreement.py", folder, "--batch", "0", timeout=120)
    assert bad.returncode == 2 and bad.stderr.strip() == "error: --n and --batch must be positive"
    bad = _bench(root, "halting_agreement.py", folder, "--variants", "int9", timeout=120)
    assert bad.returncode == 2 and "no variant 'int9'" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.slow  # a benchmark run (interleaved rounds of every variant): minutes on 2 cores
def test_quantize_speed_benchmark_times_every_variant(quant_artefact, root, tmp_path):
    """benchmarks/quantize_speed.py: step latency at batch 1 and 64 and the host-loop solve for every variant,
    as ratios to float32 (float32's own ratio is 1); bad arguments are one line and exit 2."""
    import json

    folder = quant_artefact[0]
    out = tmp_path / "s.json"
    r = _bench(root, "quantize_speed.py", folder, "--rounds", "1", "--rollout-rounds", "1", "--out", out)
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads(out.read_text())
    for batch in ("1", "64"):
        assert set(rep["step"][batch]) == {"float32", "int8", "mixed", "int8_per_row", "int8_hybrid"}
        assert rep["step"][batch]["float32"]["speedup"] == 1.0
        assert all(v["ms"] > 0 for v in rep["step"][batch].values())
    assert set(rep["solve"]) == {"float32", "int8", "mixed", "int8_per_row", "int8_hybrid"} and all(
        0 <= v["exact"] <= 1 for v in rep["solve"].values()
    )
    for batch in ("1", "64"):  # the full-budget rollout, and every ratio's interval contains its median
        assert set(rep["rollout"][batch]) == set(rep["solve"]) and rep["rollout"][batch]["float32"]["speedup"] == 1.0
    for part in (rep["step"]["64"], rep["solve"], rep["rollout"]["64"]):
        assert all(v["interval"][0] <= v["speedup"] <= v["interval"][1] for v in part.values())
    assert len(rep["load_before"]) == 3 and len(rep["load_after"]) == 3
    for args in ([str(tmp_path)], [str(folder), "--rounds", "0"]):
        bad = _bench(root, "quantize_speed.py", *args, timeout=120)
        assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr


def test_weight_only_scales_are_positive_and_check_agrees(trm_job, tmp_path):
    """NNCF's INT8_SYM weight compression keeps each channel's sign in its scale; TensorRT refuses negative
    scales. edgekit flips them into the weights, so the lint and `edgekit check` both pass the graph."""
    from edgekit.tensorrt.check import check_onnx

    q = compress_weights_int8(trm_job.step(), [".*q_head.*"], [])
    scales = [numpy_helper.to_array(t) for t in q.graph.initializer if t.name.endswith("_scale")]
    assert scales and all((s > 0).all() for s in scales)
    path = tmp_path / "wo.onnx"
    onnx.save(q, str(path))
    findings, _ = check_onnx(path, "jetson-orin-nano")
    assert not [f for f in findings if f.severity == "error" and "scale" in f.message]


def test_lint_rejects_negative_and_non_constant_scales():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    s = helper.make_tensor_value_info("s_in", TensorProto.FLOAT, [])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    inits = [
        numpy_helper.from_array(np.array([-0.1, 0.2], np.float32), "neg"),
        numpy_helper.from_array(np.array([1, 2], np.int8), "w"),
        numpy_helper.from_array(np.array(0, np.int8), "zp"),
    ]
    nodes = [
        helper.make_node("DequantizeLinear", ["w", "neg", "zp"], ["d"], name="negscale", axis=0),
        helper.make_node("QuantizeLinear", ["x", "s_in", "zp"], ["q"], name="dyn"),
        helper.make_node("DequantizeLinear", ["q", "s_in", "zp"], ["d2"], name="dyn_dq"),
        helper.make_node("Add", ["d", "d2"], ["y"]),
    ]
    m = helper.make_model(helper.make_graph(nodes, "g", [x, s], [y], inits))
    bad = qdq_violations(m)
    assert any("negscale:" in b and "<= 0" in b for b in bad)
    assert any("dyn:" in b and "not a constant" in b for b in bad)
    from edgekit.quantize.lint import positive_scales

    fixed, changed = positive_scales(m)
    assert changed == 1 and not any("negscale" in b for b in qdq_violations(fixed))
    w = numpy_helper.to_array(next(t for t in fixed.graph.initializer if t.name == "w"))
    assert w.tolist() == [-1, 2]  # the channel whose scale was negated is negated too: same dequantized values


@pytest.mark.parametrize("mode", ["int8_dynamic", "int8_per_row", "int8_hybrid", "int8_nbits", "int4_weight_only"])
def test_onnxruntime_cpu_modes_run_close_to_float_and_are_not_tensorrt_graphs(trm_job, tmp_path, mode):
    """The onnxruntime CPU modes: their step graph stays close to float32 on a real step input, keeps the halting
    head float, re-wraps into the Loop form, and `edgekit check` names it as not a TensorRT graph."""
    from edgekit.quantize import MODES
    from edgekit.tensorrt.check import check_onnx

    out = MODES[mode].handler(trm_job)
    assert not MODES[mode].tensorrt
    ops = {n.op_type for n in out.step.graph.node}
    assert ops & {"MatMulInteger", "MatMulIntegerToFloat", "DynamicQuantizeLinear", "MatMulNBits"}
    assert any(n.op_type in ("Gemm", "MatMul") and "q_head" in n.name for n in out.step.graph.node)
    feeds = dict(trm_job.items()[3].items())
    a = ort.InferenceSession(trm_job.step().SerializeToString()).run(None, feeds)
    b = ort.InferenceSession(out.step.SerializeToString()).run(None, feeds)
    # relative error of every output (state and halting logit); static INT8 measures 0.09, dynamic INT8 on the
    # unsmoothed graph 0.23-0.45 (why int8_dynamic quantizes the smoothed graph)
    assert all(np.linalg.norm(u - v) < 0.15 * np.linalg.norm(u) for u, v in zip(a, b))
    loop = trm_job.wrap(out.step)
    ort.InferenceSession(loop.SerializeToString())  # the Loop form loads with the com.microsoft / integer ops
    path = tmp_path / f"{mode}.onnx"
    onnx.save(out.step, str(path))
    findings, _ = check_onnx(path, "jetson-orin-nano")
    assert any(f.severity == "error" and "not a TensorRT graph" in f.message for f in findings)
    cpu, _ = check_onnx(path, "x86-cpu")
    assert not [f for f in cpu if f.severity == "error"]


def test_trajectory_cosine_predicts_changed_halting():
    from edgekit.validate.drift import auroc, cosine_predicts_halting

    assert auroc(np.array([0.9, 0.8, 0.1, 0.2]), np.array([True, True, False, False])) == 1.0
    assert auroc(np.array([0.1, 0.9]), np.array([True, False])) == 0.0
    assert auroc(np.array([0.5, 0.5]), np.array([True, False])) == 0.5
    assert auroc(np.array([0.5]), np.array([True])) is None
    cos = np.array([[0.99, 0.5], [0.9, 0.98], [0.999, 0.999]])
    steps_a, steps_b = np.array([1, 2, 2]), np.array([1, 1, 2])
    r = cosine_predicts_halting(cos, steps_a, steps_b)
    # sample 0 halts at step 1 (its step-2 cosine is not looked at): lowest 0.99; sample 1: 0.9 and it changed
    assert r["halting_changed"] == 1 and r["auroc"] == 1.0 and r["mean_min_cosine_changed"] == pytest.approx(0.9)


@pytest.mark.parametrize("mode", ["int8", "mixed", "int8_per_row", "int8_hybrid"])
def test_quantized_variants_run_the_io_bound_host_loop_bit_for_bit(quant_artefact, mode):
    from bound_loop import runs_bound_like_plain, sudoku_mix

    runs_bound_like_plain(quant_artefact[0], mode, sudoku_mix(16))


# -- per-row dynamic INT8 ---------------------------------------------------------------------------------------


def _matmul_model(k: int, n: int, opset: int = 17, seed: int = 0) -> tuple[onnx.ModelProto, np.ndarray]:
    w = np.random.default_rng(seed).standard_normal((k, n)).astype(np.float32)
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 5, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 5, n])],
        [numpy_helper.from_array(w, "W")],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)]), w


@pytest.mark.parametrize("kernel", ["contrib", "standard"])
@pytest.mark.parametrize("activation", ["quantize_linear", "elementwise"])
@pytest.mark.parametrize("opset", [17, 18])
def test_per_row_matmul_is_the_per_row_int8_product(kernel, activation, opset):
    """The rewritten MatMul computes exactly sum_k q(x)[r, k] * q(W)[k, c] * row_scale[r] * column_scale[c] (integer
    products, float32 scales) in every kernel / quantizer / opset form; an all-zero row gives zeros, not NaN; rows
    of very different magnitude each keep their own relative precision (a per-tensor range would not)."""
    from edgekit.quantize.per_row import per_row_int8, reference_matmul

    model, w = _matmul_model(64, 48, opset)
    q, report = per_row_int8(model, [], [], kernel=kernel, activation=activation)
    onnx.checker.check_model(q)
    assert report.quantized == ["mm"] and report.weights == 1
    assert "MatMul" not in {n.op_type for n in q.graph.node}
    x = np.random.default_rng(1).standard_normal((3, 5, 64)).astype(np.float32)
    x[0, 1] = 0.0
    x[1] *= 1e4  # one puzzle 10^4 times larger than its batch-mates
    y = ort.InferenceSession(q.SerializeToString()).run(None, {"x": x})[0]
    ref = reference_matmul(x, w, activation)
    assert np.isfinite(y).all() and np.all(y[0, 1] == 0)
    assert np.abs(y - ref).max() <= 1e-5 * np.abs(ref).max()
    exact = x @ w
    for i in (0, 2):  # the small puzzles keep ~1 % error next to the large one
        assert np.linalg.norm(y[i] - exact[i]) < 0.02 * np.linalg.norm(exact[i])


def test_per_row_shares_one_quantizer_per_input_and_one_int8_weight_per_weight():
    """gate and up read the same input: quantized once; a weight called twice is stored once; a MatMul kept float
    (keep_float) or outside `only` stays a MatMul, and a non-constant weight is left alone with its reason."""
    from edgekit.quantize.per_row import per_row_int8

    rng = np.random.default_rng(0)
    w = {n: numpy_helper.from_array(rng.standard_normal((8, 8)).astype(np.float32), n) for n in ("Wg", "Wu", "Wh")}
    nodes = [
        helper.make_node("MatMul", ["x", "Wg"], ["g"], name="gate"),
        helper.make_node("MatMul", ["x", "Wu"], ["u"], name="up"),
        helper.make_node("Mul", ["g", "u"], ["h"]),
        helper.make_node("MatMul", ["h", "Wu"], ["u2"], name="up_again"),
        helper.make_node("MatMul", ["u2", "Wh"], ["y1"], name="head"),
        helper.make_node("MatMul", ["y1", "x2"], ["y"], name="dynamic_weight"),
    ]
    io = helper.make_tensor_value_info
    m = helper.make_model(
        helper.make_graph(
            nodes,
            "g",
            [io("x", TensorProto.FLOAT, [2, 8]), io("x2", TensorProto.FLOAT, [8, 8])],
            [io("y", TensorProto.FLOAT, [2, 8])],
            list(w.values()),
        ),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    q, rep = per_row_int8(m, [".*head.*"], [])
    assert rep.quantized == ["gate", "up", "up_again"] and rep.weights == 2 and rep.activation_quantizers == 2
    assert rep.skipped == {"head": "quantize.keep_float", "dynamic_weight": "weight is not a constant"}
    assert sum(t.data_type == TensorProto.INT8 for t in q.graph.initializer) == 2
    only, rep2 = per_row_int8(m, [], [], only=["up.*"])
    assert rep2.quantized == ["up", "up_again"] and rep2.skipped["gate"] == "not in quantize.per_row.only"
    feeds = {"x": rng.standard_normal((2, 8)).astype(np.float32), "x2": rng.standard_normal((8, 8)).astype(np.float32)}
    a = ort.InferenceSession(m.SerializeToString()).run(None, feeds)[0]
    for g in (q, only):
        b = ort.InferenceSession(g.SerializeToString()).run(None, feeds)[0]
        assert np.linalg.norm(a - b) < 0.05 * np.linalg.norm(a)


def test_per_row_step_is_batch_invariant_bit_for_bit(trm_job):
    """The per-row step, and the hybrid (static INT8 + per-row down projections), answer a puzzle with the same bits
    whatever shares its batch (alone, in a batch of 48, shuffled), on 1 and 2 threads; int8_dynamic's per-call
    range does not (why it is not batch-invariant)."""
    from edgekit.quantize import MODES

    feeds = trajectory_items(trm_job.model, trm_job.search_inputs, 48)[2]
    perm = np.random.default_rng(0).permutation(48)
    for mode, invariant in (("int8_per_row", True), ("int8_hybrid", True), ("int8_dynamic", False)):
        step = MODES[mode].handler(trm_job).step.SerializeToString()
        for threads in (1, 2):
            so = ort.SessionOptions()
            so.intra_op_num_threads = threads
            sess = ort.InferenceSession(step, so)
            full = sess.run(None, feeds)
            shuffled = sess.run(None, {k: v[perm] for k, v in feeds.items()})
            alone = [sess.run(None, {k: v[i : i + 1] for k, v in feeds.items()}) for i in (0, 7, 47)]
            same = all(np.array_equal(f[perm], s) for f, s in zip(full, shuffled)) and all(
                np.array_equal(full[j][i], a[j][0]) for i, a in zip((0, 7, 47), alone) for j in range(3)
            )
            assert same == invariant, (mode, threads)


def test_per_row_mode_is_cpu_only_and_refused_for_tensorrt_targets(root, tmp_path):
    from edgekit.quantize import MODES, cpu_only_modes

    assert not MODES["int8_per_row"].tensorrt and cpu_only_modes(["int8", "int8_per_row"]) == ["int8_per_row"]
    assert "int8_per_row" in QuantizeSection.model_fields["modes"].annotation.__args__[0].__args__


def test_per_row_mode_with_nothing_to_quantize_is_one_line(trm_job):
    from edgekit.quantize import MODES, QuantizeError

    section = QuantizeSection.model_validate({"modes": ["int8_per_row"], "per_row": {"only": ["no-such-node"]}})
    job = QuantizeJob(trm_job.model, trm_job.folder, section, trm_job.calib_inputs, trm_job.search_inputs,
                      trm_job.search_labels, "test", log=lambda s: None)  # fmt: skip
    with pytest.raises(QuantizeError, match="found no MatMul to quantize"):
        MODES["int8_per_row"].handler(job)
    with pytest.raises(Exception, match="kernel"):
        QuantizeSection.model_validate({"per_row": {"kernel": "fast"}})


@pytest.mark.parametrize("mode", ["int8_per_row", "int8_hybrid"])
def test_per_row_variant_answers_alone_in_a_batch_shuffled_and_in_its_loop_form_alike(quant_artefact, mode):
    """A deployed int8_per_row (or int8_hybrid) variant: each puzzle's answer, halting step and halting logit are
    the same solved alone, in a batch of 40 (where batch compaction changes its batch-mates every step), shuffled,
    and through the Loop form (no compaction: all 40 stay in the batch to the end). int8_dynamic's Loop form agrees
    with its host loop on 88 % of halting steps on the TRM demo; this must agree on all."""
    from edgekit.runtime import Runner

    folder = quant_artefact[0]
    runner = Runner(folder, variant=mode)
    x, _ = sudoku.SudokuPool.generate(40, seed=77).sample(40, (22, 40), np.random.default_rng(77), augment=False)
    host = runner.solve(x, mode="host")
    loop = runner.solve(x, mode="loop")
    perm = np.random.default_rng(1).permutation(40)
    shuffled = runner.solve(x[perm], mode="host")
    assert len(set(host.steps.tolist())) > 1  # puzzles halt at different steps: compaction happened
    for other, order in ((loop, np.arange(40)), (shuffled, perm)):
        assert np.array_equal(host.steps[order], other.steps)
        assert np.array_equal(host.preds[order], other.preds)
    for i in (0, 13, 39):
        alone = runner.solve(x[i : i + 1], mode="host")
        assert alone.steps[0] == host.steps[i] and np.array_equal(alone.logits[0], host.logits[i])
        assert alone.halt is not None and host.halt is not None and alone.halt[0] == host.halt[i]


# -- int8_hybrid: static INT8, per-row dynamic INT8 at the down projections ------------------------------------------


def test_hybrid_is_static_int8_with_per_row_down_projections(trm_job):
    """int8_hybrid is int8's static Q/DQ graph except the down projections, which are per-row MatMulIntegerToFloat
    (no static quantizer in front of them); the halting head stays float; the static MatMuls are exactly int8's
    minus the down projections, with the same calibrated activation scales."""
    from edgekit.quantize import MODES

    out = MODES["int8_hybrid"].handler(trm_job)
    static = MODES["int8"].handler(trm_job).step
    downs = [n.name for n in trm_job.step().graph.node if n.op_type == "MatMul" and "down_proj" in n.name]
    assert downs and out.info["per_row_matmuls"] == len(downs) and sorted(out.info["per_row_nodes"]) == sorted(downs)
    assert out.info["per_row"] == [".*down_proj.*"] and out.info["smooth"]["alpha"] == 0.75

    assert dq_fed(out.step) == dq_fed(static) - set(downs) and len(dq_fed(out.step)) == out.info["static_matmuls"]
    assert not any("down_proj" in n for n in dq_fed(out.step)) and any("down_proj" in n for n in dq_fed(static))
    fused = [n for n in out.step.graph.node if n.op_type == "MatMulIntegerToFloat"]
    assert len(fused) == len(downs) and all("down_proj" in n.name for n in fused)
    assert out.info["kept_float"] == ["/q_head/Gemm"]

    mine, theirs = activation_scales(out.step), activation_scales(static)
    assert mine and all(theirs[k] == v for k, v in mine.items())


def test_hybrid_partial_quantizes_the_named_layers_its_way(trm_job):
    """`edgekit debug`'s rebuild of an int8_hybrid variant for chosen layers: a down projection per row, an up
    projection static, every other MatMul float."""
    from edgekit.debug.layers import PARTIAL

    step = trm_job.step()
    groups = layer_groups(step, by="layer")  # a layer is every call of one weight (the debugger's unit)
    downs, ups = groups["/L_level/layers.0/mlp/down_proj"], groups["/L_level/layers.0/mlp/gate_up_proj"]
    q = PARTIAL["int8_hybrid"](step, trm_job.items(), {"per_row": [".*down_proj.*"]}, downs + ups)
    fused = sorted(n.name for n in q.graph.node if n.op_type == "MatMulIntegerToFloat")
    assert fused == sorted(f"{n}/matmul_integer_to_float" for n in downs)
    q_out = {o for n in q.graph.node if n.op_type == "QuantizeLinear" for o in n.output}
    dq = {o for n in q.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in q_out for o in n.output}
    assert sorted(n.name for n in q.graph.node if n.op_type == "MatMul" and n.input[0] in dq) == sorted(ups)


def test_hybrid_mode_refused_for_tensorrt_targets_and_bad_patterns_are_one_line(root, trm_job, tmp_path):
    """int8_hybrid makes an onnxruntime CPU graph: a TensorRT target refuses it at recipe load (exit 2, one line);
    a pattern that is not a regular expression is a recipe error; patterns that match no MatMul fail the mode."""
    import subprocess
    import sys

    from edgekit.quantize import MODES, QuantizeError, cpu_only_modes

    assert not MODES["int8_hybrid"].tensorrt and cpu_only_modes(["int8", "int8_hybrid"]) == ["int8_hybrid"]
    deq = root / "examples" / "models" / "deq-digits"
    for i, (extra, text) in enumerate(
        [
            ("target: jetson-orin-nano\nquantize: {modes: [int8_hybrid]}\n", "int8_hybrid make onnxruntime CPU"),
            ("quantize: {modes: [int8_hybrid], hybrid: {per_row: ['(']}}\n", "quantize.hybrid.per_row"),
            ("quantize: {modes: [int8_hybrid], hybrid: {per_row: []}}\n", "quantize.hybrid.per_row"),
        ]
    ):
        recipe = tmp_path / f"r{i}.yaml"
        recipe.write_text(
            f"schema_version: 1\nname: bad\nmodel: {{path: {deq}}}\ntask: {{name: digits, n: 20}}\n{extra}"
        )
        r = subprocess.run(
            [sys.executable, "-m", "edgekit.cli", "export", str(recipe), "--out", str(tmp_path / "out")],
            capture_output=True,
            text=True,
            timeout=300,
        )
        lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
        assert r.returncode == 2 and len(lines) == 1 and text in lines[0], (extra, r.stderr)
        assert not (tmp_path / "out").exists()
    section = QuantizeSection.model_validate({"modes": ["int8_hybrid"], "hybrid": {"per_row": ["no-such-node"]}})
    job = QuantizeJob(trm_job.model, trm_job.folder, section, trm_job.calib_inputs, trm_job.search_inputs,
                      trm_job.search_labels, "test", log=lambda s: None)  # fmt: skip
    job._items = trm_job.items()
    with pytest.raises(QuantizeError, match="found no MatMul matching quantize.hybrid.per_row"):
        MODES["int8_hybrid"].handler(job)


def test_nbits_block_sweep_reads_its_blocks_and_the_whole_axis_block(root):
    """benchmarks/nbits_blocks.py: block sizes are K or powers of two within MatMulNBits' range (anything else is
    refused before work), and K is the power of two at or above the largest reduction length."""
    import sys

    import onnx
    from onnx import helper, numpy_helper

    sys.path.insert(0, str(root))
    from benchmarks.nbits_blocks import parse_blocks, whole_axis_block

    assert parse_blocks("32, 256,K") == ["32", "256", "K"]
    for bad in ("48", "8", "8192", "k", ""):
        with pytest.raises(ValueError):
            parse_blocks(bad)
    w = {k: numpy_helper.from_array(np.zeros((k, 4), np.float32), f"w{k}") for k in (96, 300)}
    nodes = [helper.make_node("MatMul", ["x", f"w{k}"], [f"y{k}"]) for k in w]
    g = helper.make_graph(nodes, "g", [], [], initializer=list(w.values()))
    assert whole_axis_block(helper.make_model(g)) == 512
    assert whole_axis_block(onnx.ModelProto()) == 16
