"""GPU execution providers through the device commands. Here (no GPU, onnxruntime without CUDA): a requested
provider that onnxruntime does not have is one line and exit 2, and --allow-fallback turns a provider that does not
start into a warning line. Where onnxruntime-gpu runs on a GPU (benchmarks/gpu_check.sh sets
EDGEKIT_GPU_PROVIDERS=1): the CUDA provider's device-resident host loop against the CPU's answers, TF32 off and on,
and slot refill against compaction."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import onnxruntime as ort
import pytest

from edgekit.runtime import Runner

HAVE_CUDA_EP = "CUDAExecutionProvider" in ort.get_available_providers()
GPU = pytest.mark.skipif(
    not (HAVE_CUDA_EP and os.environ.get("EDGEKIT_GPU_PROVIDERS") == "1"),
    reason="needs onnxruntime-gpu on a GPU (benchmarks/gpu_check.sh sets EDGEKIT_GPU_PROVIDERS=1); not run here",
)


def _puzzles(n: int, seed: int = 21) -> np.ndarray:
    from edgekit.tasks import sudoku

    pool = sudoku.SudokuPool.generate(n, seed=seed)
    x, _ = pool.sample(n, (28, 40), np.random.default_rng(seed), augment=False)
    return x


def _solve(artefact, tmp_path, *extra):
    inputs = tmp_path / "x.npy"
    np.save(inputs, _puzzles(3))
    cmd = [sys.executable, "-m", "edgekit.cli", "solve", str(artefact), "--inputs", str(inputs), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(HAVE_CUDA_EP, reason="onnxruntime here has the CUDA provider")
def test_a_missing_provider_fails_loudly_and_fallback_is_one_warning_line(trm_artefact, tmp_path):
    r = _solve(trm_artefact, tmp_path, "--provider", "cuda")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "cuda" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = _solve(trm_artefact, tmp_path, "--provider", "cuda", "--allow-fallback")
    assert r.returncode == 0, r.stderr
    warnings = [ln for ln in r.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1 and "cuda" in warnings[0].lower(), r.stderr
    assert len(r.stdout.strip().splitlines()) == 3  # answered, on the CPU, and said so


@GPU
@pytest.mark.parametrize("tf32", [False, True])
def test_cuda_device_resident_host_loop_matches_cpu_answers(trm_artefact, tf32):
    from edgekit.runtime.device_step import DeviceBoundStep

    x = _puzzles(256)
    cpu = Runner(trm_artefact).solve(x)
    gpu = Runner(trm_artefact, providers=["cuda"], tf32=tf32)
    stepper, _ = gpu._stepper(gpu.encode(gpu.check_inputs(x[:4])))
    assert isinstance(stepper, DeviceBoundStep)
    sol = gpu.solve(x)
    same_steps, same_preds = float((sol.steps == cpu.steps).mean()), float((sol.preds == cpu.preds).mean())
    print(f"CUDA provider, TF32 {'on' if tf32 else 'off'}: same steps {same_steps:.4f}, same cells {same_preds:.5f}")
    assert same_steps >= (0.99 if not tf32 else 0.95) and same_preds >= 0.99


@GPU
def test_cuda_slot_refill_and_compaction_answer_alike(trm_artefact):
    from edgekit.runtime.server import SlotScheduler

    x = _puzzles(512)
    gpu = Runner(trm_artefact, providers=["cuda"], tf32=False)
    t0 = time.perf_counter()
    sol = gpu.solve(x)
    t1 = time.perf_counter()
    answers = {a.request_id: a for a in SlotScheduler(gpu, slots=64).run(enumerate(x))}
    t2 = time.perf_counter()
    ms = 1e3 * (t1 - t0), 1e3 * (t2 - t1)
    print(f"CUDA provider, 512 puzzles: compaction {ms[0]:.1f} ms, slot refill (64 slots) {ms[1]:.1f} ms")
    assert [answers[i].steps for i in range(len(x))] == sol.steps.tolist()


def test_tf32_switch_reaches_the_onnxruntime_runner_and_is_refused_where_it_means_nothing(trm_artefact, tmp_path):
    from edgekit.runtime import open_runner

    assert open_runner(trm_artefact, tf32=False).settings.tf32 is False  # False is a value, not "not given"
    assert open_runner(trm_artefact).settings.tf32 is None
    r = _solve(trm_artefact, tmp_path, "--no-tf32", "--backend", "openvino")
    assert r.returncode == 2 and "--tf32/--no-tf32 is not used by the openvino backend" in r.stderr, r.stderr
