"""Validation rollouts on the executors side by side, the resume measurement and a sizing extrapolation.

On N generated Sudoku puzzles (default 8,192) with the demo TRM: the ONNX float32 host-loop rollout (every step
recorded, what validation runs; --int8 adds a static INT8 variant) and the PyTorch float32 reference, each on
`serial` with 2 threads and on `ray` with 2 workers x 1 thread; the arrays must be identical. Per-worker
throughput (puzzle-steps/s, from each shard's own compute time) is what a user multiplies by machines. Then a
serial ONNX rollout is killed (SIGKILL) once half of its shards are stored, and resumed: the share of shards
redone and whether the answers equal the uninterrupted run. Last, Sudoku-Extreme's test split (423,000 puzzles)
per worker at the demo size and, for the PyTorch reference, at the official TRM-MLP size (5 M parameters,
random init: speed only), labelled as extrapolations from the measured throughput.

    .venv/bin/python benchmarks/scale.py [--n 8192] [--int8] [--skip-official] [--skip-reference] [--skip-resume]
        [--out scale.json]

On a machine with a CUDA GPU, `--gpu-check` instead runs the demo TRM's PyTorch reference with validate.device cpu
and cuda (float32, TF32 off) through the executors: halting-step and cell agreement CPU vs GPU, the cache keys
(never shared between devices), and whether serial and processes give identical GPU records.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SUDOKU_EXTREME_TEST = 423_000
BATCH = 64

CHILD = """
import sys, numpy as np
sys.path.insert(0, {bench!r})
from scale import onnx_rollout_of
onnx_rollout_of({art!r}, "float32", np.load({x!r}), "serial", 2, {key!r})
"""


def recipe_text(out: Path, int8: bool) -> str:
    quant = "quantize: {modes: [int8], calibration: {n: 32}, search: {n: 64}}\n" if int8 else ""
    return f"""schema_version: 1
name: scale-bench
model: {{path: {ROOT / "examples" / "models" / "trm-sudoku"}}}
task: {{name: sudoku, n: 64, givens: [28, 40], seed: 123}}
export: {{forms: [step], precisions: [float32]}}
{quant}gates: {{min_exact: null, max_exact_drop: null}}
output: {out}
"""


def _run(executor: str, workers: int | None):
    from edgekit.scale.rollouts import begin
    from edgekit.scale.settings import overriding

    with overriding(executor=executor, workers=workers):
        return begin()


def onnx_rollout_of(art: str, variant: str, x: np.ndarray, executor: str, workers: int | None, key: str | None = None):
    """(rollout, ScaleRun, per-shard (where, examples, steps, seconds)) of the variant's host loop on `x`."""
    from edgekit.runtime import Runner
    from edgekit.scale.rollouts import sharded
    from edgekit.scale.work import OnnxSpec, Worker, onnx_solver

    runner = Runner(art, variant=variant, threads=2)  # serial: the driver's own 2 threads
    run = _run(executor, workers)
    shards: list[tuple[str, int, int, float]] = []
    out = sharded(run, f"onnx {variant}", lambda ship: OnnxSpec.of(runner, ship),
                  lambda: Worker.around(onnx_solver(runner)), x, None, BATCH, key, None,
                  lambda s, r: shards.append((r.where, s.size, r.preds.shape[0], r.seconds)))  # fmt: skip
    return out, run, shards


def reference_rollout_of(model, x: np.ndarray, executor: str, workers: int | None):
    from edgekit.scale.rollouts import sharded
    from edgekit.scale.work import TorchSpec, Worker, torch_solver

    run = _run(executor, workers)
    shards: list[tuple[str, int, int, float]] = []
    out = sharded(run, "pytorch float32", lambda ship: TorchSpec(model), lambda: Worker.around(
        torch_solver(model, "cpu", 2)), x, None, BATCH, None, None,
        lambda s, r: shards.append((r.where, s.size, r.preds.shape[0], r.seconds)))  # fmt: skip
    return out, run, shards


def same(a, b) -> bool:
    return (
        all(np.array_equal(p, q) for p, q in zip(a[0], b[0]))
        and all(np.array_equal(p, q) for p, q in zip(a[1], b[1]))
        and np.array_equal(a[2], b[2])
    )


def per_worker(shards) -> dict[str, float]:
    """puzzle-steps per second of each worker, from the compute time of its own shards."""
    work: dict[str, list[float]] = {}
    for where, n, steps, sec in shards:
        w = work.setdefault(where, [0.0, 0.0])
        w[0] += n * steps
        w[1] += sec
    return {k: round(v[0] / v[1], 1) for k, v in work.items() if v[1] > 0}


SERIAL: dict[str, tuple] = {}  # rollout name -> the serial answers (the resume compares with them)


def side_by_side(name: str, fn, x: np.ndarray, steps: int) -> dict:
    load_before = os.getloadavg()[0]
    t = time.perf_counter()
    serial, _, s_shards = fn(x, "serial", None)
    t_serial = time.perf_counter() - t
    SERIAL[name] = serial
    t = time.perf_counter()
    ray_out, run, r_shards = fn(x, "ray", 2)
    t_ray = time.perf_counter() - t
    row = {
        "rollout": name,
        "examples": len(x),
        "serial_2_threads_s": round(t_serial, 2),
        "ray_2x1_s": round(t_ray, 2),
        "ray_over_serial": round(t_ray / t_serial, 3),
        "identical": same(serial, ray_out),
        "serial_puzzle_steps_per_s": round(len(x) * steps / t_serial, 1),
        "ray_per_worker_puzzle_steps_per_s": per_worker(r_shards),
        "ray_nodes": run.rollouts[-1]["nodes"],
        "load_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    print(json.dumps(row), flush=True)
    return row


def resume(art: str, x: np.ndarray, tmp: Path, whole=None) -> dict:
    """SIGKILL a serial rollout once half its shards are stored, then resume it."""
    from edgekit.scale.plan import plan_shards

    env = {**os.environ, "EDGEKIT_CACHE": str(tmp / "cache")}
    os.environ["EDGEKIT_CACHE"] = env["EDGEKIT_CACHE"]
    np.save(tmp / "x.npy", x)
    key = "resume-" + "0" * 57
    total = len(plan_shards(len(x), BATCH))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(bench=str(ROOT / "benchmarks"), art=art, x=str(tmp / "x.npy"), key=key)],
        env=env,
    )
    shard_dir = tmp / "cache" / "shard"
    stored = 0
    while child.poll() is None:
        stored = len(list(shard_dir.glob("*.npz"))) if shard_dir.is_dir() else 0
        if stored >= total // 2:
            child.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    child.wait()
    stored = len(list(shard_dir.glob("*.npz")))
    redo, _, shards = onnx_rollout_of(art, "float32", x, "serial", None, key)
    if whole is None:  # the uninterrupted run
        whole, _, _ = onnx_rollout_of(art, "float32", x, "serial", None, None)
    row = {
        "shards": total,
        "stored_when_killed": stored,
        "killed_at": round(stored / total, 3),
        "redone": len(shards),
        "work_on_resume": round(len(shards) / total, 3),
        "identical": same(redo, whole),
    }
    print(json.dumps(row), flush=True)
    return row


def official_reference_throughput(tmp: Path, n: int = 16) -> dict:
    """The PyTorch reference of the official-size TRM-MLP (random init) on one worker with 1 thread."""
    sys.path.insert(0, str(ROOT / "tests"))
    from reference_checkpoints import OFFICIAL, write_reference_checkpoint

    from edgekit.models.checkpoint import load_model
    from edgekit.scale.work import torch_solver
    from edgekit.tasks import sudoku

    folder = write_reference_checkpoint(tmp / "trm-official", OFFICIAL["trm-mlp-sudoku"])
    print(f"official TRM-MLP reference: {n} puzzles, 1 thread", flush=True)
    model = load_model(folder, forward_dtype="float32")
    x, _ = sudoku.SudokuPool.generate(n, seed=11).sample(n, (28, 40), np.random.default_rng(11), augment=False)
    solve = torch_solver(model, "cpu", 1)
    solve(x[:2], None, 2)  # warm-up
    t = time.perf_counter()
    preds, _, _ = solve(x, None, n)
    sec = time.perf_counter() - t
    steps = preds.shape[0]
    return {"params": sum(p.numel() for p in model.parameters()), "puzzle_steps_per_s": round(n * steps / sec, 1),
            "steps": steps}  # fmt: skip


def gpu_check(n: int) -> dict:
    from types import SimpleNamespace

    import torch

    from edgekit.models.checkpoint import load_model
    from edgekit.scale.rollouts import begin, reference_key, reference_rollout
    from edgekit.scale.settings import overriding
    from edgekit.tasks import sudoku
    from edgekit.tasks.metrics import halting_steps

    model = load_model(ROOT / "examples" / "models" / "trm-sudoku", forward_dtype="float32")
    x, _ = sudoku.SudokuPool.generate(n, seed=2026).sample(n, (28, 40), np.random.default_rng(2026), augment=False)
    data = SimpleNamespace(inputs=x, puzzle_ids=None, augmentations=None)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    out: dict = {"torch": torch.__version__, "gpu": gpu}
    got = {}
    for label, executor, device in (("cpu", "serial", "cpu"), ("cuda", "serial", "cuda"),
                                    ("cuda processes", "processes", "cuda")):  # fmt: skip
        with overriding(executor=executor, workers=2 if executor == "processes" else None, device=device):
            run = begin()
        t = time.perf_counter()
        got[label] = reference_rollout(model, data, BATCH, f"reference {label}", None, None, run)
        out[f"{label}_s"] = round(time.perf_counter() - t, 2)
        out[f"{label}_record"] = run.record()
        out[f"{label}_key"] = reference_key(model, data, None, "weights-sha", run)
    hc, hg = (halting_steps(np.stack(got[k][1]), 0.0) for k in ("cpu", "cuda"))
    out["same_halting_step_cpu_vs_cuda"] = float(np.mean(hc == hg))
    out["same_cells_at_budget_cpu_vs_cuda"] = float(np.mean(got["cpu"][0][-1] == got["cuda"][0][-1]))
    out["cuda_serial_equals_cuda_processes"] = same(got["cuda"], got["cuda processes"])
    out["keys_differ_cpu_vs_cuda"] = out["cpu_key"] != out["cuda_key"]
    print(json.dumps(out, indent=1), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=8192)
    ap.add_argument("--int8", action="store_true", help="also a static INT8 variant (an export with quantization)")
    ap.add_argument("--skip-official", action="store_true")
    ap.add_argument("--skip-reference", action="store_true", help="no PyTorch reference row (the ONNX rows only)")
    ap.add_argument("--skip-resume", action="store_true", help="no kill-and-resume measurement")
    ap.add_argument("--artefact", type=Path, help="an artefact this script exported before (skips the export)")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--gpu-check", action="store_true", help="PyTorch references on cpu and cuda (needs a GPU)")
    a = ap.parse_args()
    os.environ.setdefault("EDGEKIT_CACHE", tempfile.mkdtemp(prefix="edgekit-scale-cache-"))
    if a.gpu_check:
        res = gpu_check(min(a.n, 512))
        if a.out:
            a.out.write_text(json.dumps(res, indent=1) + "\n")
        return
    from edgekit.models.checkpoint import load_model
    from edgekit.pipeline import run_export
    from edgekit.tasks import sudoku

    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; load before: {load}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="edgekit-scale-"))
    if a.artefact:
        art = a.artefact
    else:
        (tmp / "r.yaml").write_text(recipe_text(tmp / "art", a.int8))
        t = time.perf_counter()
        art = run_export(tmp / "r.yaml", log=lambda s: None).folder
        print(f"export: {time.perf_counter() - t:.0f} s", flush=True)
    x, _ = sudoku.SudokuPool.generate(a.n, seed=2026).sample(a.n, (28, 40), np.random.default_rng(2026), augment=False)
    model = load_model(ROOT / "examples" / "models" / "trm-sudoku", forward_dtype="float32")
    steps = int(model.step_budget)
    rows = []
    for variant in ["float32"] + (["int8"] if a.int8 else []):
        rows.append(side_by_side(f"onnx {variant}", lambda x, e, w, v=variant: onnx_rollout_of(str(art), v, x, e, w),
                                 x, steps))  # fmt: skip
    if not a.skip_reference:
        rows.append(side_by_side("pytorch float32", lambda x, e, w: reference_rollout_of(model, x, e, w), x, steps))
    res = None if a.skip_resume else resume(str(art), x, tmp, SERIAL["onnx float32"])
    extrapolation = {}
    for row in rows:
        rates = list(row["ray_per_worker_puzzle_steps_per_s"].values())
        rate = min(rates) if rates else row["serial_puzzle_steps_per_s"]
        extrapolation[row["rollout"] + " (demo size)"] = round(SUDOKU_EXTREME_TEST * steps / rate / 3600, 2)
    official = None if a.skip_official else official_reference_throughput(tmp, 8)
    if official:
        extrapolation["pytorch float32 (official TRM-MLP 5 M)"] = round(
            SUDOKU_EXTREME_TEST * official["steps"] / official["puzzle_steps_per_s"] / 3600, 2
        )
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    out = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_after": load,
        "rows": rows,
        "resume": res,
        "official_reference": official,
        "extrapolation_hours_per_worker_sudoku_extreme_test": extrapolation,
        "extrapolation_note": "EXTRAPOLATION: 423,000 puzzles x the step budget / the slowest worker's measured "
        "puzzle-steps/s (1 thread), one worker; divide by the number of workers",
    }
    print(json.dumps(out, indent=1))
    if a.out:
        a.out.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
