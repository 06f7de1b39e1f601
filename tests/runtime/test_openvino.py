"""The OpenVINO backend (runtime/openvino_backend.py) on this machine's CPU: the artefact's ONNX graphs compiled by
OpenVINO answer like onnxruntime through the same host loop (halting steps, predictions, the Loop form with its
cap and threshold as inputs, slot refill), bf16 is a precision the compiled model really got, and bad input is one
line: openvino missing, a device OpenVINO does not have, a precision the device lacks, a graph it cannot read,
cache entries that are damaged, swapped or in a folder others can write. Intel GPU and NPU are not run here; the
static-shape path the NPU takes is run on the CPU (`static_shapes=True`)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgekit.errors import EXIT_USAGE, InputError
from edgekit.runtime import ArtefactError, Runner, RuntimeInputError, open_runner
from edgekit.tasks import sudoku

try:
    import openvino

    HAVE_OV = True
except ImportError:
    HAVE_OV = False

DOCS_COMMANDS = (
    r"^\.venv/bin/edgekit solve artefacts/trm-sudoku --inputs examples/puzzles\.txt --backend openvino "
    r"(--device CPU|--ov-precision bf16)$",
    r"^\.venv/bin/edgekit bench artefacts/trm-sudoku --backend openvino --ov-precision bf16 --batch 1 --batch 64$",
    r"^\.venv/bin/edgekit validate recipes/trm-sudoku-openvino\.yaml artefacts/trm-sudoku$",
    r"^\.venv/bin/edgekit bench artefacts/trm-sudoku --backend onnxruntime --backend openvino --ov-precision f32 "
    r"--ov-precision bf16 --batch 1 --batch 64$",
    r"^\.venv/bin/edgekit bench artefacts/trm-sudoku-openvino-int8 --backend onnxruntime --backend openvino "
    r"--ov-precision int8 --ov-precision bf16 --batch 1 --batch 64$",
)
INT8_ARTEFACT = "artefacts/trm-sudoku-openvino-int8"  # docs' artefact with int8_weight_only: the tests' w8_artefact

needs_ov = pytest.mark.skipif(
    not HAVE_OV, reason='openvino is not installed (pip install "edgekit[openvino]"; .ci/run installs it)'
)


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch) -> Path:
    """Compiled models go to a cache of this test session, never to the user's."""
    root = tmp_path_factory.getbasetemp() / "ov-cache"
    monkeypatch.setenv("EDGEKIT_CACHE", str(root))
    return root


@pytest.fixture(scope="module")
def puzzles() -> np.ndarray:
    pool = sudoku.SudokuPool.generate(40, seed=11)
    x, _ = pool.sample(40, (28, 40), np.random.default_rng(11), augment=False)
    return x


@pytest.fixture(scope="module")
def reference(trm_artefact, puzzles):
    return Runner(trm_artefact).solve(puzzles)


def _puzzles_txt() -> np.ndarray:
    """examples/puzzles.txt as token ids, as `edgekit solve` reads it."""
    from edgekit.runtime.inputs import read_inputs
    from edgekit.tasks.sudoku_task import SudokuTask

    path = Path(__file__).resolve().parents[2] / "examples" / "puzzles.txt"
    return read_inputs(path, lambda line: SudokuTask().parse_line(line, 81))


def _ov(artefact, **kw):
    return open_runner(artefact, backend="openvino", **kw)


def _cpu_has(capability: str) -> bool:
    return HAVE_OV and capability in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


# -- without openvino -------------------------------------------------------------------------------------------


def test_missing_openvino_is_one_line_naming_the_extra(trm_artefact, monkeypatch, tmp_path, puzzles):
    from edgekit.cli import app

    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino raises ImportError
    with pytest.raises(InputError, match=r'pip install "edgekit\[openvino\]"'):
        _ov(trm_artefact)
    inputs = tmp_path / "x.npy"
    np.save(inputs, puzzles[:2])
    res = CliRunner().invoke(app, ["solve", str(trm_artefact), "--inputs", str(inputs), "--backend", "openvino"])
    assert res.exit_code == EXIT_USAGE
    assert 'pip install "edgekit[openvino]"' in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1, res.output


def test_options_a_backend_does_not_take_are_refused_by_flag(trm_artefact, tmp_path, puzzles):
    from edgekit.cli import app

    with pytest.raises(RuntimeInputError, match="--provider is not used by the openvino backend"):
        _ov(trm_artefact, providers=["cuda"])
    with pytest.raises(RuntimeInputError, match="--device is not used by the onnxruntime backend"):
        open_runner(trm_artefact, device="GPU")
    with pytest.raises(RuntimeInputError, match="unknown backend 'tvm'"):
        open_runner(trm_artefact, backend="tvm")
    inputs = tmp_path / "x.npy"
    np.save(inputs, puzzles[:2])
    res = CliRunner().invoke(app, ["solve", str(trm_artefact), "--inputs", str(inputs), "--device", "GPU"])
    said = " ".join(res.output.split())
    assert res.exit_code == EXIT_USAGE
    assert "--device is not used by the onnxruntime backend: add --backend openvino" in said


# -- answers ----------------------------------------------------------------------------------------------------


@needs_ov
def test_f32_answers_like_onnxruntime_through_the_same_host_loop(trm_artefact, puzzles, reference):
    r = _ov(trm_artefact)
    assert r.backend == "openvino" and r.device == "CPU" and r.precision == "f32"
    got = r.solve(puzzles)
    assert len(np.unique(reference.steps)) > 1, "halting and compaction must be exercised"
    np.testing.assert_array_equal(got.steps, reference.steps)
    np.testing.assert_array_equal(got.done, reference.done)
    np.testing.assert_array_equal(got.preds, reference.preds)
    np.testing.assert_allclose(got.logits, reference.logits, atol=0.05)  # float32 kernels: rounding differs
    uncompacted = r.solve(puzzles, compact=False)
    np.testing.assert_array_equal(uncompacted.steps, reference.steps)
    ref_run, got_run = Runner(trm_artefact).run(puzzles, steps=3), r.run(puzzles, steps=3)
    for a, b in zip(ref_run.preds, got_run.preds):
        np.testing.assert_array_equal(a, b)
    compiled = r.compiled("step")
    r.override("step", r.model("step").clone())  # what the benchmark does with an INT8-weight step graph
    assert r.compiled("step") is not compiled
    np.testing.assert_array_equal(r.solve(puzzles[:8]).steps, reference.steps[:8])


@needs_ov
def test_loop_form_takes_the_step_cap_and_threshold_as_inputs(trm_artefact, puzzles, reference):
    r = _ov(trm_artefact)
    assert {"max_steps", "halt_threshold"} <= r.inputs_of("loop")  # made inputs again, not built in
    got = r.solve(puzzles, mode="loop")
    np.testing.assert_array_equal(got.steps, reference.steps)
    np.testing.assert_array_equal(got.preds, reference.preds)
    ref = Runner(trm_artefact)
    for cap, threshold in ((2, 0.0), (16, 5.0), (3, 1e9)):
        a = ref.solve(puzzles, mode="loop", max_steps=cap, threshold=threshold)
        b = r.solve(puzzles, mode="loop", max_steps=cap, threshold=threshold)
        np.testing.assert_array_equal(b.steps, a.steps)
        np.testing.assert_array_equal(b.done, a.done)
        np.testing.assert_array_equal(b.preds, a.preds)
    assert int(b.steps.max()) == 3 and not b.done.any()  # the cap reached: not halted


@needs_ov
def test_slot_refill_serves_the_same_answers(trm_artefact, puzzles, reference):
    from edgekit.runtime.server import SlotScheduler

    r = _ov(trm_artefact)
    answers = {a.request_id: a for a in SlotScheduler(r, slots=4).run(enumerate(puzzles[:12]))}
    assert [answers[i].steps for i in range(12)] == reference.steps[:12].tolist()
    assert all((answers[i].prediction == reference.preds[i]).all() for i in range(12))


@needs_ov
def test_static_shape_path_pads_batches_to_buckets(trm_artefact, puzzles, reference):
    """What an NPU gets (static shapes only), run on the CPU: batches padded to powers of two, answers cut back."""
    from edgekit.runtime.openvino_backend import OpenVINORunner

    r = OpenVINORunner(trm_artefact, static_shapes=True, chunk_size=16)
    assert r.max_batch == 16
    got = r.solve(puzzles)  # 40 puzzles: chunks of 16, 16, 8; compaction leaves odd sizes
    np.testing.assert_array_equal(got.steps, reference.steps)
    np.testing.assert_array_equal(got.preds, reference.preds)
    buckets = {b for _, b in r._compiled}
    assert buckets and all(b is not None and b & (b - 1) == 0 for b in buckets), buckets


@needs_ov
@pytest.mark.skipif(not _cpu_has("BF16"), reason="this CPU has no bf16 inference in OpenVINO (no AVX512-BF16/AMX)")
def test_bf16_is_the_precision_the_compiled_model_got(trm_artefact, puzzles, reference):
    r = _ov(trm_artefact, precision="bf16")
    assert r.compiled("step").get_property("INFERENCE_PRECISION_HINT").get_type_name() == "bf16"
    got = r.solve(puzzles)
    assert float((got.steps == reference.steps).mean()) >= 0.9  # bf16 rounding may move a halting step
    assert float((got.preds == reference.preds).all(axis=1).mean()) >= 0.9
    assert not np.array_equal(got.logits, r.__class__(trm_artefact).solve(puzzles).logits)  # not f32 in disguise


@pytest.fixture(scope="module")
def w8_artefact(trm_artefact, tmp_path_factory) -> Path:
    """A copy of the demo artefact with an int8_weight_only variant (NNCF INT8 weights), which OpenVINO's int8 runs."""
    from weight_only_variant import add_int8_weight_only

    art = tmp_path_factory.mktemp("w8") / "art"
    shutil.copytree(trm_artefact, art)
    return add_int8_weight_only(art)


def _fc_precisions(compiled) -> dict[str, int]:
    """How many FullyConnected layers OpenVINO's CPU plugin compiled at each runtime precision."""
    out: dict[str, int] = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        rt = op.get_rt_info()
        if "layerType" in rt and rt["layerType"].astype(str) == "FullyConnected":
            p = rt["runtimePrecision"].astype(str)
            out[p] = out.get(p, 0) + 1
    return out


@needs_ov
@pytest.mark.skipif(not _cpu_has("INT8"), reason="this CPU has no INT8 inference in OpenVINO")
def test_int8_runs_int8_weights_with_activations_quantized_at_run_time(w8_artefact, puzzles):
    """int8 runs the int8_weight_only graphs as INT8-weight FullyConnected layers with activation groups of 32;
    the float precisions set the group to 0, so "f32" on those graphs keeps activations in float (OpenVINO's CPU
    default, 32, would quantize them unasked)."""
    ort = Runner(w8_artefact, variant="int8_weight_only").solve(puzzles)
    i8 = _ov(w8_artefact, precision="int8")
    assert i8.variant == "int8_weight_only" and i8.precision == "int8"
    assert int(i8.compiled("step").get_property("DYNAMIC_QUANTIZATION_GROUP_SIZE")) == 32
    fcs = _fc_precisions(i8.compiled("step"))  # INT8 weights everywhere but the float halting head
    assert fcs.get("i8", 0) > 8 * fcs.get("f32", 0), fcs
    f32 = _ov(w8_artefact, variant="int8_weight_only", precision="f32")
    assert int(f32.compiled("step").get_property("DYNAMIC_QUANTIZATION_GROUP_SIZE")) == 0
    float_acts, int8_acts = f32.solve(puzzles), i8.solve(puzzles)
    assert np.array_equal(float_acts.steps, ort.steps) and np.array_equal(float_acts.preds, ort.preds)
    assert not np.allclose(int8_acts.logits, float_acts.logits, atol=1e-3)  # activations really were quantized
    assert float((int8_acts.steps == ort.steps).mean()) >= 0.9
    assert float((int8_acts.preds == ort.preds).all(axis=1).mean()) >= 0.9


@needs_ov
def test_int8_needs_its_own_graphs_one_line(trm_artefact, w8_artefact):
    with pytest.raises(RuntimeInputError, match="runs the artefact's int8_weight_only graphs, not variant 'float32'"):
        _ov(w8_artefact, variant="float32", precision="int8")
    with pytest.raises(ArtefactError, match="export it with int8_weight_only in quantize.modes"):
        _ov(trm_artefact, precision="int8")


@needs_ov
@pytest.mark.skipif(not _cpu_has("INT8"), reason="this CPU has no INT8 inference in OpenVINO")
def test_bench_compares_openvino_int8_with_onnxruntime_float32(w8_artefact):
    """openvino-int8 runs its own graphs on the rows it shares with onnxruntime's float32, and says so."""
    from edgekit.cli import app

    args = ["bench", str(w8_artefact), "--backend", "onnxruntime", "--backend", "openvino", "--ov-precision", "int8"]
    res = CliRunner().invoke(app, [*args, "--n", "4", "--batch", "2", "--repeats", "2", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output[res.output.index("{") :])["results"]
    assert [(r["config"], r["variant"], r.get("graphs")) for r in rows] == [
        ("onnxruntime", "float32", None), ("openvino-int8", "float32", "int8_weight_only")
    ]  # fmt: skip
    assert rows[1]["speedup"]["vs"] == "onnxruntime"
    table = CliRunner().invoke(app, [*args, "--n", "4", "--batch", "2", "--repeats", "1"])
    assert table.exit_code == 0, table.output  # (its cells wrap with the terminal's width: not read here)


@needs_ov
@pytest.mark.skipif(not _cpu_has("INT8"), reason="this CPU has no INT8 inference in OpenVINO")
def test_halting_agreement_benchmark_scores_openvino_configurations(trm_artefact, w8_artefact, tmp_path):
    """benchmarks/halting_agreement.py --openvino: rows openvino-<precision> (the deployed host loop on OpenVINO)
    scored against onnxruntime float32; int8 on an artefact without its graphs is one line, exit 2."""
    import subprocess

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "halting_agreement.py"
    out = tmp_path / "a.json"
    args = [sys.executable, str(script), str(w8_artefact), "--n", "16", "--variants", "float32", "--openvino", "int8"]
    r = subprocess.run([*args, "--full-budget", "4", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = {row["variant"]: row for row in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"float32", "openvino-int8"}
    lo, hi = rows["openvino-int8"]["halting_agreement_ci"]
    assert 0 <= lo <= rows["openvino-int8"]["halting_agreement"] <= hi <= 1 and rows["openvino-int8"]["exact_full"] >= 0
    args[2] = str(trm_artefact)
    bad = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "int8_weight_only" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


# -- bad input --------------------------------------------------------------------------------------------------


@needs_ov
def test_a_device_or_precision_openvino_does_not_have_is_one_line(trm_artefact):
    have = openvino.Core().available_devices
    missing = next(d for d in ("NPU", "GPU.7") if d not in have)
    with pytest.raises(RuntimeInputError, match=rf"device '{missing}' is not on this machine; this OpenVINO has: CPU"):
        _ov(trm_artefact, device=missing)
    with pytest.raises(RuntimeInputError, match="unknown OpenVINO device 'TPU'"):
        _ov(trm_artefact, device="TPU")
    if not _cpu_has("FP16"):  # OpenVINO would quietly run bf16 instead
        with pytest.raises(RuntimeInputError, match="has no f16 inference"):
            _ov(trm_artefact, precision="f16")
    with pytest.raises(RuntimeInputError, match="unknown OpenVINO precision"):
        _ov(trm_artefact, precision="int4")


def _unreadable_step(artefact: Path, tmp_path: Path) -> Path:
    """A copy of `artefact` whose step graph is valid ONNX with an op OpenVINO has no conversion for."""
    import onnx
    from onnx import TensorProto, helper

    art = tmp_path / "art"
    shutil.copytree(artefact, art)
    node = helper.make_node("NoSuchOp", ["z_H"], ["halt"], domain="com.example")
    graph = helper.make_graph(
        [node],
        "step",
        [helper.make_tensor_value_info("z_H", TensorProto.FLOAT, ["batch", 97, 128])],
        [helper.make_tensor_value_info("halt", TensorProto.FLOAT, ["batch"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    onnx.save(model, art / "step.onnx")
    return art


@needs_ov
def test_a_graph_openvino_cannot_read_is_one_line(trm_artefact, tmp_path, puzzles):
    from edgekit.cli import app

    art = _unreadable_step(trm_artefact, tmp_path)
    with pytest.raises(ArtefactError, match=r"OpenVINO \S+ cannot read step.onnx \(.*com.example.NoSuchOp"):
        _ov(art).solve(puzzles[:2])
    (art / "readout.onnx").write_bytes(b"not a model")  # refused before OpenVINO parses it, as for onnxruntime
    with pytest.raises(ArtefactError, match=r"readout.onnx is not an ONNX model"):
        _ov(art).call("readout", {})
    inputs = tmp_path / "x.npy"
    np.save(inputs, puzzles[:2])
    res = CliRunner().invoke(app, ["solve", str(art), "--inputs", str(inputs), "--backend", "openvino"])
    assert res.exit_code == EXIT_USAGE and "cannot read step.onnx" in res.output
    assert len(res.output.strip().splitlines()) == 1, res.output


@needs_ov
def test_cache_entries_are_checked_damaged_or_swapped_ones_rebuilt(
    trm_artefact, puzzles, reference, tmp_path, monkeypatch
):
    monkeypatch.setenv("EDGEKIT_CACHE", str(tmp_path / "c"))
    r = _ov(trm_artefact)
    folder = r.cache_folder
    assert folder.parent.parent == tmp_path / "c" and folder.parent.name == "openvino"
    assert (os.stat(folder).st_mode & 0o777) == 0o700
    r.compiled("readout")
    readout = set(folder.glob("*.blob"))
    r.compiled("step")
    (step,) = set(folder.glob("*.blob")) - readout
    index = json.loads((folder / "edgekit-index.json").read_text())
    assert set(index) == {p.name for p in folder.glob("*.blob")}

    step.write_bytes(b"damaged" * 100)  # damaged: not the blob recorded, deleted before OpenVINO sees it
    again = _ov(trm_artefact)
    assert not step.exists()
    np.testing.assert_array_equal(again.solve(puzzles).steps, reference.steps)
    assert step.exists() and not again.warnings

    # another graph's blob under the step's key, the index forged to match: caught by the compiled model's inputs
    step.write_bytes(next(iter(readout)).read_bytes())
    index = json.loads((folder / "edgekit-index.json").read_text())
    index[step.name] = index[next(iter(readout)).name]
    (folder / "edgekit-index.json").write_text(json.dumps(index))
    swapped = _ov(trm_artefact)
    got = swapped.solve(puzzles)
    assert any("belonged to another graph" in w for w in swapped.warnings)
    np.testing.assert_array_equal(got.steps, reference.steps)
    np.testing.assert_array_equal(got.preds, reference.preds)


@needs_ov
def test_a_cache_folder_others_can_write_is_refused_one_not_creatable_unused(trm_artefact, tmp_path, monkeypatch):
    root = tmp_path / "shared-cache"
    (root / "openvino").mkdir(parents=True)
    os.chmod(root / "openvino", 0o777)
    monkeypatch.setenv("EDGEKIT_CACHE", str(root))
    with pytest.raises(RuntimeInputError, match="writable by group or others.*--cache-dir"):
        _ov(trm_artefact)
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("EDGEKIT_CACHE", str(tmp_path / "a-file" / "cache"))  # cannot be created: run uncached
    r = _ov(trm_artefact)
    assert r.cache_folder is None and "compiled on every start" in r.warnings[0]
    assert "CACHE_DIR" not in r.config


def _docs_commands() -> list[str]:
    page = (Path(__file__).resolve().parents[2] / "docs" / "openvino.md").read_text()
    blocks = re.findall(r"^```bash\n(.*?)^```", page, re.S | re.M)
    # export lines run in tests/system/test_readme.py (the recipe checked, the full run with -m slow)
    return [c for b in blocks for c in b.splitlines() if c.strip() and not c.startswith(".venv/bin/edgekit export ")]


def _validates(cmd: str) -> bool:
    return cmd.startswith(".venv/bin/edgekit validate ")


@needs_ov
@pytest.mark.parametrize(
    "cmd", [pytest.param(c, marks=pytest.mark.slow) if _validates(c) else c for c in _docs_commands()]
)
def test_docs_commands_on_the_demo_artefact(cmd, trm_artefact, w8_artefact, reference, tmp_path):
    """docs/openvino.md's commands on the tests' artefact (bench on a few puzzles, one pass; validate on a copy with
    the bundled recipe's 256 examples: slow, tests/validate/test_openvino_configs.py is its fast sibling); the int8
    artefact's on the tests' copy with an int8_weight_only variant."""
    from edgekit.cli import app

    assert any(re.match(p, cmd) for p in DOCS_COMMANDS), cmd
    if ("bf16" in cmd or _validates(cmd)) and not _cpu_has("BF16"):
        pytest.skip("this CPU has no bf16 inference in OpenVINO")
    if "int8" in cmd and not _cpu_has("INT8"):
        pytest.skip("this CPU has no INT8 inference in OpenVINO")
    art = w8_artefact if INT8_ARTEFACT in cmd else trm_artefact
    if _validates(cmd):
        art = tmp_path / "art"
        shutil.copytree(trm_artefact, art)
    root = Path(__file__).resolve().parents[2]
    args = [str(art) if a in ("artefacts/trm-sudoku", INT8_ARTEFACT) else a for a in shlex.split(cmd)[1:]]
    args = [str(root / a) if a.startswith("recipes/") else a for a in args]
    if args[0] == "bench":
        args += ["--n", "8", "--repeats", "1", "--json"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    if args[0] == "validate":
        results = json.loads((art / "results.json").read_text())
        assert {"openvino-f32", "openvino-bf16"} <= {e["name"] for e in results["variants"]}
        assert {g["variant"] for g in results["gates"]} >= {"openvino-f32", "openvino-bf16"}
    elif args[0] == "solve":
        steps = [int(line.split("steps ")[1].split()[0]) for line in res.output.strip().splitlines()]
        ref = Runner(trm_artefact).solve(_puzzles_txt()).steps.tolist()
        assert len(steps) == len(ref) == 2
        if "bf16" not in cmd:
            assert steps == ref
    else:
        rows = json.loads(res.output[res.output.index("{") :])["results"]
        assert {r["batch"] for r in rows} == {1, 64}
        if INT8_ARTEFACT in cmd:
            assert {r.get("graphs") for r in rows if r["config"] == "openvino-int8"} == {"int8_weight_only"}


@needs_ov
def test_check_reads_and_compiles_the_graphs_for_an_openvino_target(trm_artefact, tmp_path):
    """`edgekit check --target intel-cpu-*`: every graph read by OpenVINO's ONNX frontend and compiled for the CPU
    (the Loop form included); a graph it cannot read is an error, exit 6."""
    from edgekit.cli import app
    from edgekit.errors import EXIT_INCOMPATIBLE

    res = CliRunner().invoke(app, ["check", str(trm_artefact), "--target", "intel-cpu-avx2", "--json"])
    report = json.loads(res.output[res.output.index("{") :])
    assert res.exit_code == 0 and report["backend"] == "openvino" and report["verdict"] == "compatible", res.output
    assert "loop" in report["graphs"] and not [f for f in report["findings"] if f["severity"] != "note"]
    gpu = json.loads(CliRunner().invoke(app, ["check", str(trm_artefact), "--target", "intel-gpu", "--json"]).output)
    if "GPU" not in openvino.Core().available_devices:
        assert any("not compiled: this machine has no OpenVINO GPU device" in f["message"] for f in gpu["findings"])
    art = _unreadable_step(trm_artefact, tmp_path)
    res = CliRunner().invoke(app, ["check", str(art), "--target", "intel-cpu-avx2"])
    said = " ".join(res.output.split())
    assert res.exit_code == EXIT_INCOMPATIBLE and "cannot read it" in said and "NoSuchOp" in said, res.output


@needs_ov
def test_verify_passes_on_the_openvino_backend(trm_artefact):
    """`verify` re-runs the golden answers through any runner: OpenVINO f32 meets them at the device tolerance."""
    from edgekit.runtime.verify import verify

    rep = verify(trm_artefact, runner=lambda folder, variant: _ov(folder, variant=variant))
    assert rep.passed, rep


# -- bench side by side ------------------------------------------------------------------------------------------


@needs_ov
def test_bench_configurations_interleaves_rounds_and_measures_speedups(trm_artefact, puzzles):
    """Every configuration, variant and batch timed once per round; the second's speed-up over the first is the
    median of per-round ratios; OpenVINO f32 takes the same steps as onnxruntime on the same puzzles."""
    from edgekit.runtime.bench import BenchPlan, Configuration, bench_configurations

    configs = [
        Configuration("onnxruntime", lambda v: Runner(trm_artefact, variant=v)),
        Configuration("openvino-f32", lambda v: _ov(trm_artefact, variant=v, precision="f32")),
    ]
    plan = BenchPlan(["float32"], "host", [1, 4], repeats=3, warmup=0, puzzle_id=None, graph_times=False)
    run = bench_configurations(configs, plan, puzzles[:8], None)
    assert [(r["config"], r["batch"]) for r in run.rows] == [
        ("onnxruntime", 1), ("onnxruntime", 4), ("openvino-f32", 1), ("openvino-f32", 4)
    ]  # fmt: skip
    for r in run.rows:
        assert len(r["latencies_ms"]) == 3 * r["batches"] and r["repeats"] == 3
    ort, ov = run.rows[1], run.rows[3]
    assert "speedup" not in ort and ov["speedup"]["vs"] == "onnxruntime" and ov["speedup"]["rounds"] == 3
    lo, hi = ov["speedup"]["interval"]
    assert lo <= ov["speedup"]["median"] <= hi
    assert ov["steps_hist"] == ort["steps_hist"]


@needs_ov
def test_bench_cli_backends_side_by_side(trm_artefact):
    from edgekit.cli import app

    precisions = ["--ov-precision", "f32"] + (["--ov-precision", "bf16"] if _cpu_has("BF16") else [])
    args = ["bench", str(trm_artefact), "--backend", "onnxruntime", "--backend", "openvino", *precisions]
    res = CliRunner().invoke(app, [*args, "--n", "4", "--batch", "2", "--repeats", "2", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output[res.output.index("{") :])
    want = ["onnxruntime", "openvino-f32"] + (["openvino-bf16"] if _cpu_has("BF16") else [])
    assert doc["configurations"] == want and [r["config"] for r in doc["results"]] == want
    assert all(r["speedup"]["vs"] == "onnxruntime" for r in doc["results"][1:])
    table = CliRunner().invoke(app, [*args, "--n", "4", "--batch", "2", "--repeats", "2"])
    assert table.exit_code == 0 and "baseline" in table.output and "speed-up" in table.output, table.output


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--backend", "onnxruntime", "--ov-precision", "f32", "--ov-precision", "bf16"], "--ov-precision is not used"),
        (["--backend", "onnxruntime", "--backend", "openvino", "--graph-times", "g.json"], "--graph-times times"),
        (["--backend", "onnxruntime", "--backend", "nosuch"], "unknown backend 'nosuch'"),
    ],
)
def test_bench_side_by_side_refuses_what_it_cannot_do_in_one_line(trm_artefact, extra, says):
    from edgekit.cli import app

    res = CliRunner().invoke(app, ["bench", str(trm_artefact), "--n", "2", "--batch", "1", "--repeats", "1", *extra])
    assert res.exit_code == EXIT_USAGE and says in " ".join(res.output.split()), res.output
    assert len(res.output.strip().splitlines()) == 1, res.output
