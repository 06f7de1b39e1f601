"""Train a TRM or HRM demo model on generated Sudoku with deep supervision, on a CPU.

    python examples/train_sudoku.py --family trm --out examples/models/trm-sudoku      # ~55 min on 2 CPU cores
    python examples/train_sudoku.py --family hrm --out examples/models/hrm-sudoku      # ~50 min

Training follows the references: one ACT step per optimizer step,
slots refilled when they halt, halting head trained on sequence correctness. The shipped files are the EMA
weights in model.safetensors plus a reference-style all_config.yaml; training.json holds the log and metrics.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from edgekit.models.act import build_act_model, reference_parameter_count
from edgekit.models.checkpoint import save_act
from edgekit.models.config import ACTConfig
from edgekit.tasks import sudoku
from edgekit.tasks.evaluate import evaluate
from edgekit.training.act import TrainSettings, train_act

PRESETS = {
    # TRM-MLP as in the reference Sudoku run, scaled to a CPU budget (0.7 M params).
    "trm": {
        "family": "trm",
        "H_cycles": 2,
        "L_cycles": 3,
        "L_layers": 2,
        "hidden_size": 128,
        "expansion": 4,
        "num_heads": 4,
        "pos_encodings": "none",
        "mlp_t": True,
        "puzzle_emb_len": 16,
    },
    # TRM with attention (RoPE) at the same size, for the attention-path demo.
    "trm-att": {
        "family": "trm",
        "H_cycles": 2,
        "L_cycles": 3,
        "L_layers": 2,
        "hidden_size": 128,
        "expansion": 4,
        "num_heads": 4,
        "pos_encodings": "rope",
        "mlp_t": False,
        "puzzle_emb_len": 16,
    },
    # HRM: two 2-layer stacks, 2x2 cycles, RoPE as the reference; and with learned positions (also reference).
    "hrm": {
        "family": "hrm",
        "H_cycles": 2,
        "L_cycles": 2,
        "H_layers": 2,
        "L_layers": 2,
        "hidden_size": 128,
        "expansion": 4,
        "num_heads": 4,
        "pos_encodings": "rope",
    },
    # HRM with the token-mixing MLP of the TRM repository's HRM copy: learns Sudoku within a CPU budget.
    "hrm-mlp": {
        "family": "hrm",
        "H_cycles": 2,
        "L_cycles": 2,
        "H_layers": 2,
        "L_layers": 2,
        "hidden_size": 128,
        "expansion": 4,
        "num_heads": 4,
        "pos_encodings": "none",
        "mlp_t": True,
    },
    "hrm-learned": {
        "family": "hrm",
        "H_cycles": 2,
        "L_cycles": 2,
        "H_layers": 2,
        "L_layers": 2,
        "hidden_size": 128,
        "expansion": 4,
        "num_heads": 4,
        "pos_encodings": "learned",
    },
}
# The CPU recipes: step counts sized to fit ~55 minutes on a 2-core AVX512-BF16 CPU in bf16.
RECIPES = {
    "trm": {"steps": 3400, "batch_size": 128, "lr": 1.5e-3, "givens": (28, 40)},
    "trm-att": {"steps": 3400, "batch_size": 128, "lr": 1.5e-3, "givens": (28, 40)},
    "hrm": {"steps": 3600, "batch_size": 128, "lr": 1e-3, "givens": (34, 40)},
    "hrm-mlp": {"steps": 4400, "batch_size": 128, "lr": 1.5e-3, "givens": (28, 40)},
    "hrm-learned": {"steps": 3600, "batch_size": 128, "lr": 1e-3, "givens": (34, 40)},
}
EVAL_GIVENS = {"40": 40, "34": 34, "28": 28, "minimal": 0}


def eval_sets(n: int, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Held-out puzzles: minimal puzzles from a seed disjoint from training, at several difficulties."""
    pool = sudoku.SudokuPool.generate(n, seed=seed)
    rng = np.random.default_rng(seed)
    return {k: pool.sample(n, g, rng, augment=False) for k, g in EVAL_GIVENS.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", choices=sorted(PRESETS), default="trm")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, help="optimizer steps (default: the family's CPU recipe)")
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--givens", type=int, nargs=2, help="range of givens of training puzzles")
    ap.add_argument("--pool", type=int, default=1000, help="minimal puzzles generated for training")
    ap.add_argument("--eval-n", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--max-minutes", type=float, default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument(
        "--dtype",
        default="bfloat16",
        choices=["bfloat16", "float32"],
        help="compute dtype (bf16 is the references' default and 2.7x faster on AVX512-BF16 CPUs)",
    )
    args = ap.parse_args(argv)
    for k, v in RECIPES[args.family].items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.time()
    torch.manual_seed(args.seed)
    cfg = ACTConfig(
        seq_len=sudoku.SEQ_LEN,
        vocab_size=sudoku.VOCAB_SIZE,
        num_puzzle_identifiers=1,
        puzzle_emb_ndim=PRESETS[args.family]["hidden_size"],
        halt_max_steps=16,
        forward_dtype=args.dtype,
        **PRESETS[args.family],
    )
    model = build_act_model(cfg)
    print(f"{args.family}: {reference_parameter_count(model):,} parameters", flush=True)
    pool = sudoku.SudokuPool.generate(args.pool, seed=1000 + args.seed)
    print(f"generated {args.pool} minimal training puzzles in {time.time() - t0:.0f}s", flush=True)
    lo, hi = args.givens

    def sampler(n: int, rng: np.random.Generator):
        return pool.sample(n, (lo, hi), rng)

    settings = TrainSettings(
        steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed, max_minutes=args.max_minutes
    )
    if args.device != "cpu":
        model.to(args.device)
    ema, log = train_act(model, sampler, settings, log=lambda s: print(s, flush=True))
    train_minutes = (time.time() - t0) / 60
    results = {}
    for name, (x, y) in eval_sets(args.eval_n, seed=99).items():
        m = evaluate(ema.eval(), x, y).summary()
        results[name] = m
        scalars = " ".join(f"{k}={v:.3f}" for k, v in m.items() if isinstance(v, float))
        print(f"eval {name:>7}: {scalars}", flush=True)
    meta = {
        "task": "sudoku",
        "preset": args.family,
        "training": {
            "command": "python examples/train_sudoku.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "steps": log.steps_done,
            "minutes": round(train_minutes, 1),
            "threads": torch.get_num_threads(),
            "device": args.device,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "givens": [lo, hi],
        },
        "parameters": reference_parameter_count(ema),
    }
    save_act(ema.to("cpu"), args.out, meta)
    (args.out / "training.json").write_text(json.dumps({**meta, "eval": results, "log": log.rows}, indent=1))
    print(f"saved {args.out} after {train_minutes:.1f} min", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
