"""PyTorch reference rollouts on a CUDA GPU against the same rollouts on the CPU, for the bundled demo models.

What a user who runs validation references on a GPU needs to know: do the GPU's float32 rollouts give the answers
and halting steps the CPU gives? Measured with TF32 off (true float32 matmuls: what validation should use) and with
TF32 on (PyTorch's and onnxruntime-CUDA's default on Ampere and later), on generated Sudoku puzzles (a seed no
recipe uses): per-step prediction agreement, exact accuracy at the budget and at the halting step, the share of
puzzles that halt at the same step, and the wall time per puzzle-step of each device.

    python benchmarks/gpu_reference_check.py [--n 1024] [--json out.json]

Needs torch with CUDA; without a GPU it says so and exits 0 (nothing to measure).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MODELS = ("trm-sudoku", "hrm-sudoku")


def rollout(model, x: np.ndarray, device: str, batch: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Per-step argmax predictions [steps, n, seq] and halting logits [steps, n], and seconds taken."""
    import torch

    from edgekit.tasks.evaluate import rollout_predictions

    model = model.to(device)
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    preds, halts, _ = rollout_predictions(model, x, batch_size=batch)
    if device == "cuda":
        torch.cuda.synchronize()
    return np.stack(preds), np.stack(halts), time.perf_counter() - t0


def compare(name: str, n: int, batch: int) -> list[dict]:
    import torch

    from edgekit.models.checkpoint import load_model
    from edgekit.tasks import sudoku
    from edgekit.tasks.metrics import exact_and_cell, halting_steps

    pool = sudoku.SudokuPool.generate(n, seed=9100)
    x, y = pool.sample(n, (28, 40), np.random.default_rng(9100), augment=False)
    model = load_model(ROOT / "examples" / "models" / name).eval()
    threshold = 0.0  # the model's own halting rule (halt logit > 0), as the reference evaluation uses
    cpu_p, cpu_h, cpu_s = rollout(model, x, "cpu", batch)
    rows = []
    for tf32 in (False, True):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        rollout(model, x[:batch], "cuda", batch)  # warm-up: kernels and allocator
        gpu_p, gpu_h, gpu_s = rollout(model, x, "cuda", batch)
        steps = cpu_p.shape[0]
        hs_cpu, hs_gpu = halting_steps(cpu_h, threshold), halting_steps(gpu_h, threshold)
        at = np.arange(n)
        rows.append(
            {
                "model": name,
                "tf32": tf32,
                "n": n,
                "steps": steps,
                "same_predictions_per_step": [float((a == b).mean()) for a, b in zip(cpu_p, gpu_p)],
                "exact_budget_cpu": exact_and_cell(cpu_p[-1], y)[0],
                "exact_budget_gpu": exact_and_cell(gpu_p[-1], y)[0],
                "exact_halt_cpu": exact_and_cell(cpu_p[hs_cpu - 1, at], y)[0],
                "exact_halt_gpu": exact_and_cell(gpu_p[hs_gpu - 1, at], y)[0],
                "same_halting_step": float((hs_cpu == hs_gpu).mean()),
                "max_abs_halt_logit_diff": float(np.abs(cpu_h - gpu_h).max()),
                "cpu_us_per_puzzle_step": 1e6 * cpu_s / (n * steps),
                "gpu_us_per_puzzle_step": 1e6 * gpu_s / (n * steps),
            }
        )
    torch.backends.cuda.matmul.allow_tf32 = False
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("no CUDA GPU visible to torch: nothing to compare (not run)")
        return 0
    print(f"GPU: {torch.cuda.get_device_name(0)}; torch {torch.__version__}; {args.n} generated puzzles")
    rows = [r for name in MODELS for r in compare(name, args.n, args.batch)]
    for r in rows:
        worst = min(r["same_predictions_per_step"])
        print(
            f"{r['model']:<11} TF32 {'on ' if r['tf32'] else 'off'}: same predictions (worst step) {worst:.5f}, "
            f"same halting step {r['same_halting_step']:.4f}, exact at budget CPU {r['exact_budget_cpu']:.4f} / "
            f"GPU {r['exact_budget_gpu']:.4f}, at halt CPU {r['exact_halt_cpu']:.4f} / GPU {r['exact_halt_gpu']:.4f}, "
            f"max |Δ halt logit| {r['max_abs_halt_logit_diff']:.2e}, us/puzzle-step CPU "
            f"{r['cpu_us_per_puzzle_step']:.1f} / GPU {r['gpu_us_per_puzzle_step']:.2f}"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
