"""Slot-refill serving gives every request the answer and step count the host loop gives it, refuses bad
requests one by one, applies back-pressure, and the execution-provider options are what onnxruntime expects."""

from __future__ import annotations

import queue
import threading

import numpy as np
import pytest

from edgekit.runtime import Runner, RuntimeInputError
from edgekit.runtime.providers import PROVIDERS, ProviderError, ProviderSettings, resolve
from edgekit.runtime.server import Server, SlotScheduler


@pytest.fixture(scope="module")
def mixed_puzzles():
    """Puzzles of mixed difficulty (easy ones halt after a step or two, hard ones run long)."""
    from edgekit.tasks import sudoku

    pool = sudoku.SudokuPool.generate(12, seed=4242)
    rng = np.random.default_rng(4242)
    parts = [pool.sample(6, g, rng)[0] for g in (40, 34, 28, 0)]
    x = np.concatenate(parts)
    return x[rng.permutation(len(x))]


@pytest.mark.parametrize("slots", [1, 5, 64])
def test_slot_refill_answers_equal_the_host_loop(trm_artefact, mixed_puzzles, slots):
    runner = Runner(trm_artefact)
    ref = runner.solve(mixed_puzzles, mode="host", threshold=1.0)
    answers = list(SlotScheduler(runner, slots=slots, threshold=1.0).run(enumerate(mixed_puzzles)))
    assert sorted(a.request_id for a in answers) == list(range(len(mixed_puzzles)))
    by_id = {a.request_id: a for a in answers}
    steps = np.array([by_id[i].steps for i in range(len(mixed_puzzles))])
    preds = np.stack([by_id[i].prediction for i in range(len(mixed_puzzles))])
    assert (steps == ref.steps).all()
    assert (preds == ref.preds).all()
    assert len(set(steps.tolist())) > 1, "the test set must mix difficulties"
    if slots > 1:  # answers come out as they finish, not in arrival order
        order = [a.request_id for a in answers]
        assert order != sorted(order)


def test_a_bad_request_gets_its_own_error(trm_artefact, mixed_puzzles):
    runner = Runner(trm_artefact)
    reqs = [(0, mixed_puzzles[0]), (1, np.ones(80, np.int64)), (2, np.full(81, 99)), (3, mixed_puzzles[1])]
    answers = {a.request_id: a for a in SlotScheduler(runner, slots=2).run(reqs)}
    assert "expected [batch >= 1, 81]" in answers[1].error and answers[1].prediction is None
    assert "token ids must lie in [0, 10]" in answers[2].error
    assert answers[0].error is None and answers[3].error is None
    ref = runner.solve(mixed_puzzles[:2])
    assert answers[0].steps == ref.steps[0] and (answers[3].prediction == ref.preds[1]).all()


def test_threaded_server_futures_and_back_pressure(trm_artefact, mixed_puzzles):
    runner = Runner(trm_artefact)
    ref = runner.solve(mixed_puzzles)
    with Server(runner, slots=4, queue_size=2) as server:
        futs = [server.submit(x) for x in mixed_puzzles]
        got = [f.result(timeout=120) for f in futs]
    assert [a.steps for a in got] == ref.steps.tolist()
    assert all((a.prediction == p).all() for a, p in zip(got, ref.preds))
    # a full queue blocks submit; with a timeout it raises queue.Full instead of growing without bound
    gate = threading.Event()
    slow = Runner(trm_artefact)
    real = slow.call

    def blocked_call(graph, feeds):
        gate.wait(60)
        return real(graph, feeds)

    slow.call = blocked_call  # type: ignore[method-assign]
    server = Server(slow, slots=1, queue_size=1)
    first = server.submit(mixed_puzzles[0])  # taken by the worker, which then blocks in its first call
    second = None
    for _ in range(50):
        try:
            second = server.submit(mixed_puzzles[1], timeout=0.05)
            break
        except queue.Full:
            continue
    assert second is not None
    with pytest.raises(queue.Full):
        server.submit(mixed_puzzles[2], timeout=0.2)
    gate.set()
    server.close()
    assert first.result(timeout=60).error is None and second.result(timeout=60).error is None


def test_server_arguments_are_checked(trm_artefact):
    runner = Runner(trm_artefact)
    for bad in (0, -3, True, 2.5):
        with pytest.raises(RuntimeInputError, match="slots"):
            SlotScheduler(runner, slots=bad)  # type: ignore[arg-type]
    with pytest.raises(RuntimeInputError, match="max_steps"):
        SlotScheduler(runner, max_steps=0)
    with pytest.raises(RuntimeInputError, match="threshold"):
        SlotScheduler(runner, threshold=float("nan"))


def test_solve_limits_and_chunks(trm_artefact, mixed_puzzles):
    whole = Runner(trm_artefact).solve(mixed_puzzles)
    chunked = Runner(trm_artefact, chunk_size=5).solve(mixed_puzzles)
    assert (whole.preds == chunked.preds).all() and (whole.steps == chunked.steps).all()
    r = Runner(trm_artefact)
    assert (r.solve(mixed_puzzles[:3], max_steps=1).steps == 1).all()
    for bad in (0, -1, 1.5):
        with pytest.raises(RuntimeInputError, match="max_steps"):
            r.solve(mixed_puzzles[:1], max_steps=bad)  # type: ignore[arg-type]
    with pytest.raises(RuntimeInputError, match="threshold"):
        r.solve(mixed_puzzles[:1], threshold=float("nan"))


def test_providers_missing_gpu_is_one_line(trm_artefact):
    import onnxruntime as ort

    have = set(ort.get_available_providers())
    if "CUDAExecutionProvider" in have:
        pytest.skip("this onnxruntime has CUDA; the refusal cannot be shown here")
    with pytest.raises(ProviderError) as e:
        resolve(["cuda"])
    assert "onnxruntime-gpu" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(RuntimeInputError, match="not in this onnxruntime"):
        Runner(trm_artefact, providers=["cuda"])
    with pytest.raises(ProviderError, match="unknown execution provider 'tpu'"):
        resolve(["tpu"])
    assert resolve(None) == (["CPUExecutionProvider"], [{}])


def test_tensorrt_provider_options_cache_outside_the_artefact(tmp_path):
    _, build, _ = PROVIDERS["tensorrt"]
    opts = build(ProviderSettings(device_id=1, fp16=True, cache_dir=tmp_path / "cache", artefact_key="abc"))
    assert opts["device_id"] == 1 and opts["trt_fp16_enable"] is True and opts["trt_engine_cache_enable"] is True
    assert opts["trt_engine_cache_path"] == str(tmp_path / "cache" / "trt-ep" / "abc")
    assert PROVIDERS["cuda"][1](ProviderSettings(device_id=2)) == {"device_id": 2}


def test_serving_benchmark_script(trm_artefact, root, tmp_path):
    """benchmarks/serving.py on a tiny stream: three modes per B, identical answers for (b) and (c), fewer step
    calls with slot refill."""
    import json
    import subprocess
    import sys

    out = tmp_path / "s.json"
    r = subprocess.run(
        [
            sys.executable,
            str(root / "benchmarks" / "serving.py"),
            str(trm_artefact),
            "--n",
            "24",
            "--slots",
            "8",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    data = json.loads(out.read_text())
    assert data["identical_answers"] is True and len(data["results"]) == 3
    rows = {row["mode"][:3]: row for row in data["results"]}
    assert rows["(a)"]["mean_steps"] == 16 and rows["(b)"]["mean_steps"] == rows["(c)"]["mean_steps"] < 16
    assert rows["(c)"]["step_calls"] < rows["(b)"]["step_calls"] <= rows["(a)"]["step_calls"]
    bad = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "serving.py"), str(tmp_path), "--n", "4"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "manifest.json" in bad.stderr and "Traceback" not in bad.stderr
