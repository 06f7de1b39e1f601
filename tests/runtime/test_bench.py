"""`edgekit bench`, the torch-free benchmark module, the embedded-runtime example and the benchmark scripts."""

import importlib.util
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from import_blocker import TORCH_BLOCKER

from edgekit.runtime import Runner
from edgekit.runtime.bench import SessionTimer, benchmark, make_batches, profile_ops
from edgekit.tasks import sudoku

EDGEKIT = [sys.executable, "-m", "edgekit.cli"]


def _puzzles(n: int, givens=(40, 40), seed: int = 11):
    pool = sudoku.SudokuPool.generate(n, seed=seed)
    return pool.sample(n, givens, np.random.default_rng(seed), augment=False)


def test_bench_cli_json(trm_artefact):
    r = subprocess.run(
        [
            *EDGEKIT,
            "bench",
            str(trm_artefact),
            "--json",
            "--n",
            "3",
            "--batch",
            "1",
            "--batch",
            "2",
            "--repeats",
            "1",
            "--mode",
            "all",
            "--threads",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    rows = out["results"]
    # the fixture artefact has the step graphs and the Loop form, not the unrolled graph
    assert {(x["mode"], x["batch"]) for x in rows} == {("host", 1), ("host", 2), ("loop", 1), ("loop", 2)}
    for x in rows:
        assert x["variant"] == "float32"
        assert 0 < x["p50_ms"] <= x["p90_ms"] <= x["p99_ms"]
        assert x["samples_per_s"] > 0 and x["per_sample_ms"] > 0
        assert 1 <= x["mean_steps"] <= 16
        assert sum(x["steps_hist"].values()) == x["batch"] * x["batches"]
        assert 0.0 <= x["exact"] <= 1.0
    assert "Sudoku" in out["inputs"]


def test_bench_cli_bad_artefact_exits_2_with_one_line(tmp_path):
    r = subprocess.run([*EDGEKIT, "bench", str(tmp_path / "nowhere")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "manifest.json" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_bench_cli_bad_inputs_exit_2(trm_artefact, tmp_path):
    bad = tmp_path / "x.npy"
    np.save(bad, np.zeros((2, 80), np.int64))
    r = subprocess.run(
        [*EDGEKIT, "bench", str(trm_artefact), "--inputs", str(bad), "--repeats", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "shape" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_benchmark_module(trm_artefact):
    runner = Runner(trm_artefact, threads=1)
    x, y = _puzzles(2)
    assert [len(b) for b, _ in make_batches(x, 3)] == [3]  # fewer inputs than a batch: tiled
    stats = benchmark(runner, x, [1, 3], "host", repeats=2, warmup=0, labels=y)
    assert [s.batch for s in stats] == [1, 3] and [s.batches for s in stats] == [2, 1]
    assert stats[0].repeats == 2 and sum(stats[0].steps_hist.values()) == 2
    timer = SessionTimer(runner)
    runner.solve(x, mode="host")
    assert timer.total > 0 and timer.calls["step"] >= 1
    enc = runner._call("encode", {"inputs": x})[0]
    feeds = {**dict(zip(runner.state_names, runner.initial_state(enc))), "x": enc}
    prof = profile_ops(trm_artefact / "step.onnx", feeds, runs=1, threads=1)
    assert prof["total_us"] > 0 and abs(sum(v["share"] for v in prof["by_op"].values()) - 1) < 1e-6


def test_bench_module_runs_without_torch(trm_artefact, root):
    code = TORCH_BLOCKER + textwrap.dedent(f"""
        sys.path.insert(0, {str(root)!r})
        import numpy as np
        from edgekit.runtime import Runner
        from edgekit.runtime.bench import benchmark
        s = benchmark(
            Runner({str(trm_artefact)!r}, threads=1), np.ones((2, 81), np.int64), [2], "host", repeats=1, warmup=0
        )
        assert "torch" not in sys.modules
        print("ok", s[0].batch)
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "ok 2" in p.stdout


def _embed(root, artefact, text):
    return subprocess.run(
        [sys.executable, str(root / "examples" / "embed_runtime.py"), str(artefact)],
        input=text,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_embed_example_answers_puzzles(trm_artefact, root):
    x, _ = _puzzles(4)
    x = x[[0, int(np.argmax([(r != x[0]).any() for r in x]))]]  # two different puzzles
    lines = ["".join("." if t == 1 else str(t - 1) for t in row) for row in x]
    lines[1] = lines[1].replace(".", "0")  # both blank spellings
    r = _embed(root, trm_artefact, "\n".join(lines) + "\n")
    assert r.returncode == 0, r.stderr
    out = r.stdout.strip().splitlines()
    assert len(out) == 2
    for row, line in zip(x, out):
        answer, word, steps = line.split()
        assert word == "steps" and 1 <= int(steps) <= 16
        tokens = np.array([int(c) + 1 for c in answer])
        assert sudoku.is_valid_solution(tokens, row)


def test_embed_example_reports_bad_lines_and_continues(trm_artefact, root):
    x, _ = _puzzles(1)
    good = "".join("." if t == 1 else str(t - 1) for t in x[0])
    r = _embed(root, trm_artefact, f"12345\n{good}\n")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == ["line 1: a Sudoku needs 81 cells, got 5"]
    assert len(r.stdout.strip().splitlines()) == 1


# both reference precisions (and OpenVINO where installed), trimmed: 1 torch thread, no calibrated threshold, n1 1
BOTH = ["--reference-precision", "both", "--torch-threads", "1", "--halt-threshold", "0", "--n1", "1"]
BOTH += ["--openvino"] if importlib.util.find_spec("openvino") else []


@pytest.mark.slow
@pytest.mark.parametrize(
    "script, args",
    [("runtime_vs_pytorch.py", []), ("runtime_vs_pytorch.py", BOTH), ("export_forms.py", [])],
    ids=["runtime_vs_pytorch", "runtime_vs_pytorch-both", "export_forms"],
)
def test_benchmark_scripts_quick(script, args, trm_artefact, root, tmp_path):
    extra = ["--artefact", str(trm_artefact)] if script == "runtime_vs_pytorch.py" else []
    out = tmp_path / "r.json"
    r = subprocess.run(
        [sys.executable, str(root / "benchmarks" / script), "--quick", "--out", str(out), *extra, *args],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    data = json.loads(out.read_text())
    if script == "runtime_vs_pytorch.py":
        assert "speedup" in r.stdout and data["configs"][0]["config"].startswith("pytorch")
        assert data["flops_per_step"] > 0 and data["profile_step"]["by_op"]
        assert "goal:" in r.stdout and set(data["goal"]["faster_reference"]) == {"1", "8"}
        want = ["float32", "bfloat16"] if args else ["float32"]
        assert [ref["precision"] for ref in data["references"]] == want
        assert [c["precision"] for c in data["configs"] if c["reference"]] == want
        assert data["faster_reference"]["8"] in {ref["config"] for ref in data["references"]}
        if "--openvino" in args:
            assert any(c["kind"] == "openvino" and c["precision"] == "f32" for c in data["configs"])
    else:
        assert set(data["models"]) == {"trm-sudoku", "hrm-sudoku", "deq-digits"}
        assert "Early exit" in r.stdout
