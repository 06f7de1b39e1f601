"""Work is bounded by the artefact and the device: memory per sample and chunk sizes from the manifest, ONNX files
counted before a session loads them, verify's golden replay capped, CLI numbers with upper bounds, graph times
that keep tune's predictions finite, and `edgekit check` on damaged TensorRT graphs (findings, never a crash)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgekit.manifest import Manifest
from edgekit.runtime.errors import ArtefactError, RuntimeInputError
from edgekit.runtime.memory import (
    DEFAULT_MEMORY_BUDGET,
    MAX_CHUNK,
    MAX_GOLDEN_INPUTS,
    GraphLimits,
    bytes_per_sample,
    check_golden_work,
    check_graph_file,
    chunk_for_memory,
)

ARC_DEMO_CONFIG = {  # examples/make_arc_dataset.py's random-init HRM (the ARC demo artefact)
    "family": "hrm",
    "seq_len": 900,
    "vocab_size": 12,
    "puzzle_emb_ndim": 64,
    "H_cycles": 1,
    "L_cycles": 1,
    "H_layers": 1,
    "L_layers": 1,
    "hidden_size": 64,
    "expansion": 2,
    "num_heads": 2,
}


def _manifest(config: dict, family: str, shape: list, states: int = 2) -> dict:
    return {
        "model": {"family": family, "config": config},
        "graph": {"input": {"shape": ["batch", *shape]}, "state_names": [f"s{i}" for i in range(states)]},
    }


def _edgekit(*args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgekit.cli", *args], capture_output=True, text=True, timeout=timeout, **kw
    )


# -- memory per sample and chunk sizes --------------------------------------------------------------------------
def test_arc_demo_chunk_fits_an_8gb_jetson():
    """The ARC demo HRM (seq 900 + 1 prefix row, hidden 64, 2 heads): measured 34 MB a sample with onnxruntime
    (peak RSS 4,683 MB for 128 samples in one chunk of the old 1,024, 1,129 MB in chunks of 27), dominated by the
    attention scores; estimated 38.6 MB. The default budget gives 27 samples, ~1 GB of activations."""
    m = _manifest(ARC_DEMO_CONFIG, "hrm", [900])
    per = bytes_per_sample(m)
    s = 901
    assert 34e6 < per < 45e6  # the measured 34 MB, never under it
    assert per > 4 * 3 * 2 * s * s  # at least scores, scaled scores and softmax of both heads in float32
    chunk = chunk_for_memory(m)
    assert chunk == DEFAULT_MEMORY_BUDGET // per == 27
    assert chunk * per <= DEFAULT_MEMORY_BUDGET < 6.5e9  # Orin Nano 8 GB: ~6.5 GB free after JetPack
    assert chunk_for_memory(m, 256 << 20) == 6


def test_memory_per_sample_follows_the_configuration(trm_artefact):
    manifest = json.loads((trm_artefact / "manifest.json").read_text())
    trm = bytes_per_sample(manifest)  # TRM mlp_t (no attention scores), 81 cells + 16 prefix rows, hidden 128
    assert 2.1e6 < trm < 3e6  # measured 2.1 MB a sample
    assert chunk_for_memory(manifest) == DEFAULT_MEMORY_BUDGET // trm == 457
    assert bytes_per_sample(Manifest.from_json(manifest)) == trm  # the typed manifest, as a runner reads it
    with_attention = json.loads(json.dumps(manifest))
    with_attention["model"]["config"]["mlp_t"] = False  # attention scores in place of the token MLP
    assert bytes_per_sample(with_attention) - trm == 4 * (5 * 4 * 97 * 97 - 4 * 128 * 512)
    anderson = {"name": "anderson", "anderson_m": 5}
    deq = _manifest({"hidden_size": 64, "num_classes": 10, "solver": anderson}, "deq", [64])
    plain = _manifest({"hidden_size": 64, "num_classes": 10, "solver": {"name": "fixed_point"}}, "deq", [64])
    assert bytes_per_sample(deq) == bytes_per_sample(plain) + 4 * 10 * 64  # Anderson's 2 m history states
    assert chunk_for_memory(deq) == MAX_CHUNK


@pytest.mark.parametrize(
    "config",
    [None, "x", {}, {"hidden_size": "64", "seq_len": 900}, {"hidden_size": 2**80, "seq_len": 900}, {"seq_len": -1}],
)
def test_memory_estimate_of_a_malformed_configuration_is_a_guess_never_a_crash(config):
    """The manifest is untrusted: an unusable configuration falls back to a guess from the input length
    (attention over it with one head), which still bounds the chunk."""
    m = _manifest(config, "hrm", [900])  # type: ignore[arg-type]
    per = bytes_per_sample(m)
    assert per >= 4 * 2 * 900 * 900
    assert 1 <= chunk_for_memory(m) <= MAX_CHUNK
    small = _manifest({"hidden_size": 8, "num_classes": 2}, "deq", [4])
    assert chunk_for_memory(small) == MAX_CHUNK  # tiny models keep the 1,024-sample ceiling
    for junk in ({}, {"graph": 5}, {"model": [], "graph": {"input": {"shape": "x"}}}, []):
        assert bytes_per_sample(junk) >= 1  # type: ignore[arg-type]
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="budget_bytes"):
            chunk_for_memory(m, bad)  # type: ignore[arg-type]
    huge = _manifest({**ARC_DEMO_CONFIG, "seq_len": 65536, "num_heads": 1024}, "hrm", [65536])
    assert chunk_for_memory(huge) == 1  # one sample over the budget still runs, alone


def test_golden_replay_is_capped():
    check_golden_work(8, 16, runs=8)  # what export writes
    check_golden_work(2, 100_000)  # a DEQ with the largest max_iter its schema allows
    with pytest.raises(ArtefactError, match=f"more than the {MAX_GOLDEN_INPUTS}"):
        check_golden_work(200_000, 16)
    with pytest.raises(ArtefactError, match="sample steps"):
        check_golden_work(8, 100_000)
    assert "\n" not in str(pytest.raises(ArtefactError, check_golden_work, 9, 100_000).value)


# -- ONNX files counted before a session ------------------------------------------------------------------------
def _model_file(path: Path, initializers: int = 0, nodes: int = 1, depth: int = 0) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.array([i], np.float32), f"w{i}") for i in range(initializers)]
    body: onnx.GraphProto | None = None
    for d in range(depth):  # Loops inside Loop bodies
        inner = [helper.make_node("Identity", ["c"], ["c_out"]), helper.make_node("Identity", ["v"], ["v_out"])]
        if body is not None:
            inner.append(helper.make_node("Loop", ["", "c", "v"], ["v_loop"], body=body, name=f"loop{d}"))
        body = helper.make_graph(
            inner,
            f"body{d}",
            [
                helper.make_tensor_value_info(n, t, s)
                for n, t, s in (
                    ("i", TensorProto.INT64, []),
                    ("c", TensorProto.BOOL, []),
                    ("v", TensorProto.FLOAT, [1]),
                )
            ],  # fmt: skip
            [
                helper.make_tensor_value_info("c_out", TensorProto.BOOL, []),
                helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [1]),
            ],  # fmt: skip
        )
    chain = [helper.make_node("Identity", ["x" if i == 0 else f"a{i - 1}"], [f"a{i}"]) for i in range(nodes)]
    if body is not None:
        chain.append(helper.make_node("Loop", ["", "", f"a{nodes - 1}"], ["l"], body=body))
    g = helper.make_graph(
        chain,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info(f"a{nodes - 1}", TensorProto.FLOAT, [1])],
        inits,
    )
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_graph_files_of_an_artefact_are_counted(trm_artefact):
    import onnx

    for name in ("step", "loop", "encode", "readout"):
        counts = check_graph_file(trm_artefact / f"{name}.onnx")
        m = onnx.load(str(trm_artefact / f"{name}.onnx"))
        assert counts["nodes"] >= len(m.graph.node) > 0
        assert counts["initializers"] >= len(m.graph.initializer)
    assert check_graph_file(trm_artefact / "loop.onnx")["depth"] == 1  # the step inside the Loop body


def test_an_initializer_bomb_is_refused_before_onnxruntime_sees_it(tmp_path):
    """300,000 tiny initializers stalled session creation for 386 s; the scan stops at the limit in milliseconds."""
    bomb = _model_file(tmp_path / "bomb.onnx", initializers=40_000)
    t0 = time.perf_counter()
    with pytest.raises(ArtefactError, match="more initializers than the runtime loads") as e:
        check_graph_file(bomb)
    assert time.perf_counter() - t0 < 2.0
    assert "\n" not in str(e.value) and "bomb.onnx" in str(e.value)
    limits = GraphLimits(max_nodes=50, max_depth=3)
    with pytest.raises(ArtefactError, match="more nodes"):
        check_graph_file(_model_file(tmp_path / "nodes.onnx", nodes=51), limits)
    assert check_graph_file(_model_file(tmp_path / "ok.onnx", nodes=40), limits)["nodes"] == 40
    deep = _model_file(tmp_path / "deep.onnx", depth=5)
    assert check_graph_file(deep)["depth"] == 5
    with pytest.raises(ArtefactError, match="more subgraph nesting"):
        check_graph_file(deep, limits)


def test_graph_files_that_are_not_onnx_are_one_line(tmp_path):
    good = _model_file(tmp_path / "good.onnx", initializers=3, nodes=3).read_bytes()
    cases = {
        "empty.onnx": b"",
        "truncated.onnx": good[: len(good) // 2],
        "group.onnx": bytes([0x3B]) + good,  # a start-group tag (field 7, wire type 3): ONNX writers never emit
        "varint.onnx": b"\x08" + b"\xff" * 20,
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ArtefactError) as e:
            check_graph_file(tmp_path / name)
        assert name in str(e.value) and "\n" not in str(e.value)
    (tmp_path / "link.onnx").symlink_to(tmp_path / "good.onnx")
    (tmp_path / "dir.onnx").mkdir()
    for name in ("link.onnx", "dir.onnx", "missing.onnx"):
        with pytest.raises(ArtefactError):
            check_graph_file(tmp_path / name)
    sparse = tmp_path / "sparse.onnx"
    with open(sparse, "wb") as f:  # 3 GiB that takes no disk space: refused by its size, never read
        f.truncate(3 << 30)
    t0 = time.perf_counter()
    with pytest.raises(ArtefactError, match="over the"):
        check_graph_file(sparse)
    assert time.perf_counter() - t0 < 1.0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=400), cut=st.integers(0, 400))
def test_arbitrary_bytes_are_counted_or_refused_in_one_line(tmp_path, data, cut):
    """Whatever the bytes (random, or a real model cut anywhere), the scan returns counts or raises one line."""
    path = tmp_path / "x.onnx"
    real = (tmp_path / "real.onnx").read_bytes() if (tmp_path / "real.onnx").exists() else None
    if real is None:
        real = _model_file(tmp_path / "real.onnx", initializers=2, nodes=2).read_bytes()
    for blob in (data, real[:cut] + data):
        path.write_bytes(blob)
        try:
            counts = check_graph_file(path)
        except ArtefactError as e:
            assert "\n" not in str(e)
        else:
            assert set(counts) == {"nodes", "initializers", "values", "depth"}


# -- CLI numbers ----------------------------------------------------------------------------------------------------
def test_cli_numbers_have_upper_bounds(trm_artefact, tmp_path):
    """bench --batch 1000000000 tiled the inputs past 6 GB and --threads 100000 hung: both are usage errors now,
    before the artefact is opened."""
    for args in (
        ["bench", str(trm_artefact), "--batch", "1000000000", "--n", "2"],
        ["bench", str(trm_artefact), "--batch", "8", "--batch", "65537", "--n", "2"],
        ["solve", str(trm_artefact), "--inputs", str(tmp_path / "x.txt"), "--threads", "100000"],
        ["serve", str(trm_artefact), "--queue", "1000000"],
        ["serve", str(trm_artefact), "--max-line-bytes", str(1 << 30)],
    ):
        t0 = time.perf_counter()
        p = _edgekit(*args, timeout=60)
        assert p.returncode == 2, (args, p.stdout, p.stderr)
        assert "Traceback" not in p.stderr and re.search("range|less than or equal", p.stderr), p.stderr
        assert time.perf_counter() - t0 < 30


def test_benchmark_api_refuses_a_batch_before_any_work(trm_artefact):
    from edgekit.runtime import Runner
    from edgekit.runtime.bench import MAX_BATCH, benchmark, make_batches

    x = np.zeros((2, 81), np.int64)
    for bad in (0, MAX_BATCH + 1, 10**9, 2.5, True):
        with pytest.raises(RuntimeInputError, match="batch size"):
            make_batches(x, bad)  # type: ignore[arg-type]
    runner = Runner(trm_artefact)
    calls = []
    runner.solve = lambda *a, **k: calls.append(1)  # type: ignore[method-assign]
    with pytest.raises(RuntimeInputError, match="batch size"):
        benchmark(runner, x, [1, 10**9])
    assert not calls, "a bad size late in the list must not cost the earlier ones"


def test_puzzle_id_reads_ascii_digits_as_ids_and_anything_else_as_names(trm_artefact, tmp_path):
    from edgekit.cli.device import _puzzle_id

    assert _puzzle_id("55") == 55 and _puzzle_id(None) is None
    for name in ("²", "５５", "1" * 40, "006ident|||t1", ""):
        assert _puzzle_id(name) == name
    text = tmp_path / "p.txt"
    text.write_text("0" * 81 + "\n")
    p = _edgekit("solve", str(trm_artefact), "--inputs", str(text), "--puzzle-id", "²")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip().startswith("error:") and len(p.stderr.strip().splitlines()) == 1, p.stderr


# -- graph times ----------------------------------------------------------------------------------------------------
def _times_file(path: Path, ms: float) -> Path:
    entry = {"step_sha256": "0" * 64, "sizes": [1, 2], **{f"{g}_ms": [ms, ms] for g in ("encode", "step", "readout")}}
    path.write_text(json.dumps({"schema_version": 1, "variants": {"float32": entry}}))
    return path


def test_graph_times_stay_within_what_tune_can_add_up(tmp_path):
    """Times of 1e308 ms summed to inf and wrote `Infinity` (not JSON) into tune.json: the reader bounds each time
    to a nanosecond .. an hour, so 100,000 steps of three calls stay finite; the writer refuses what it could not
    read back."""
    from edgekit.runtime.graph_times import MAX_MS, StepTimes, graph_times_record, read_graph_times

    assert read_graph_times(_times_file(tmp_path / "ok.json", 2.5))["variants"]["float32"]["step_ms"] == [2.5, 2.5]
    assert np.isfinite(MAX_MS * 3 * 100_000)
    for ms in (1e308, 1e-300, MAX_MS * 2):
        with pytest.raises(RuntimeInputError, match="outside") as e:
            read_graph_times(_times_file(tmp_path / "bad.json", ms))
        assert "\n" not in str(e.value)

    from types import SimpleNamespace

    class _R:  # a runner as far as the record reads it: the step graph's key and the manifest's hashes
        graphs = {"step": "step"}
        manifest = SimpleNamespace(hashes={"step": "0" * 64})

    ok = StepTimes([1], [1.0], [2.0], [3.0])
    assert graph_times_record(_R(), ok)["step_ms"] == [2.0]
    with pytest.raises(RuntimeInputError, match="step graph"):
        graph_times_record(_R(), StepTimes([1], [1.0], [float("inf")], [3.0]))


def test_graph_timing_is_bounded_by_memory():
    """`bench --graph-times` runs each batch size as one graph call: a size whose activations exceed the per-call
    bound is refused before anything runs."""
    from edgekit.runtime.graph_times import time_graphs

    class _Arc:
        variant = "float32"
        manifest = _manifest(ARC_DEMO_CONFIG, "hrm", [900])

        def call(self, *a, **k):  # pragma: no cover - must not be reached
            raise AssertionError("a graph ran")

    with pytest.raises(RuntimeInputError, match="time at most batch 111"):
        time_graphs(_Arc(), np.zeros((1, 900), np.int64), 65536)


# -- check: damaged TensorRT graphs are findings ---------------------------------------------------------------------
def _loop_file(path: Path, damage: str) -> Path:
    from onnx import TensorProto, helper, numpy_helper

    body = helper.make_graph(
        [helper.make_node("Identity", ["c"], ["c_out"]), helper.make_node("Identity", ["v"], ["v_out"])],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("c", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v", TensorProto.FLOAT, [1]),
        ],  # fmt: skip
        [
            helper.make_tensor_value_info("c_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [1]),
        ],  # fmt: skip
    )
    if damage == "string":
        init = helper.make_tensor("M", TensorProto.STRING, [1], [b"abc"])
    else:
        init = numpy_helper.from_array(np.zeros(0, np.int64) if damage == "empty" else np.array(4, np.int64), "M")
    loop = helper.make_node("Loop", ["M", "", "x"], ["y"], body=body)
    if damage == "no_body":
        del loop.attribute[:]
    out_type = 999 if damage == "elem_type" else TensorProto.FLOAT
    g = helper.make_graph([loop], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", out_type, [1])], [init])  # fmt: skip
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    path.write_bytes(model.SerializeToString())
    return path


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("no_body", "Loop has no body graph"),
        ("empty", "trip count M is not one integer"),
        ("string", "trip count M is not one integer"),
        ("elem_type", "elem_type 999 is not a TensorRT type"),
    ],
)
def test_check_reports_damaged_loops_as_findings(tmp_path, damage, message):
    """A Loop without its body, an empty or string trip count and an output of an unknown element type raised
    StopIteration, IndexError, ValueError and KeyError in `edgekit check`; each is an error finding now."""
    from edgekit.tensorrt.check import check_onnx

    findings, summary = check_onnx(_loop_file(tmp_path / "loop.onnx", damage), "jetson-orin-nano")
    errors = [f.message for f in findings if f.severity == "error"]
    assert any(message in m for m in errors), errors
    assert summary["nodes"] >= 1
    ok, _ = check_onnx(_loop_file(tmp_path / "fine.onnx", "none"), "jetson-orin-nano")
    assert not [f for f in ok if f.severity == "error"], ok


def test_solve_arc_refuses_a_task_that_is_not_a_name():
    from edgekit.runtime.arc_solver import solve_arc

    for task in (["006ident"], None, 5, b"006ident"):
        with pytest.raises(RuntimeInputError, match="task must be a task name"):
            solve_arc(object(), task, [[[1]]])  # type: ignore[arg-type]


def test_trajectory_fidelity_chunks_within_the_runners_memory_budget(trm_artefact):
    """Validation's per-step fidelity ran the step graph in batches of 64 whatever the sample size: ARC's 900-token
    samples (34 MB each) peaked the ARC demo export at 3.6 GB. It now chunks as the runners do."""
    from edgekit.runtime import Runner
    from edgekit.validate.drift import trajectory_fidelity

    a, b = Runner(trm_artefact, chunk_size=64), Runner(trm_artefact, chunk_size=5)
    sizes: list[int] = []

    def counted(real):
        def call(graph, feeds):
            if graph == "step":
                sizes.append(len(feeds["x"]))
            return real(graph, feeds)

        return call

    for r in (a, b):
        r._call = counted(r._call)  # type: ignore[method-assign]
    (fid,) = trajectory_fidelity(a, [b], np.ones((12, 81), np.int64), steps=2)
    assert sizes and max(sizes) == 5 and fid["samples"] == 12
    assert fid["cosine_mean"] == [1.0, 1.0], "the same graph on both sides"
