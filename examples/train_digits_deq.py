"""Train the demo DEQ (tanh cell, 64 hidden units) on scikit-learn's digits, in well under a minute on a CPU.

python examples/train_digits_deq.py --out examples/models/deq-digits
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from edgekit.models.checkpoint import save_deq
from edgekit.models.config import DEQConfig, SolverConfig
from edgekit.models.deq import build_deq
from edgekit.tasks import digits
from edgekit.training.deq import DEQTrainSettings, train_deq


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    config = DEQConfig(
        in_features=digits.NUM_FEATURES,
        hidden_size=args.hidden,
        num_classes=digits.NUM_CLASSES,
        solver=SolverConfig(name="anderson", max_iter=40, tol=1e-4, stop_mode="rel", anderson_m=5),
    )
    model = build_deq(config)
    xtr, ytr = digits.load("train")
    seconds = train_deq(model, xtr, ytr, DEQTrainSettings(epochs=args.epochs, seed=args.seed))
    xte, yte = digits.load("test")
    res = {}
    with torch.no_grad():
        x = torch.from_numpy(xte)
        r = model.rollout(x, steps=config.solver.max_iter)
        acc = [float((lg.argmax(-1).numpy() == yte).mean()) for lg in r.logits]
        for name in ("fixed_point", "anderson"):
            sol = model.solve(x, config.solver.model_copy(update={"name": name}))
            res[name] = {
                "accuracy": float((model.head(sol.z).argmax(-1).numpy() == yte).mean()),
                "mean_iterations": float(sol.iterations.float().mean()),
                "converged": float(sol.converged.float().mean()),
            }
    res["accuracy_after_1_step"] = acc[0]
    res["accuracy_after_40_steps"] = acc[-1]
    print(json.dumps(res, indent=1))
    meta = {
        "task": "digits",
        "training": {
            "command": "python examples/train_digits_deq.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "seconds": round(seconds, 1),
            "epochs": args.epochs,
        },
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    save_deq(model, config, args.out, meta)
    (args.out / "training.json").write_text(json.dumps({**meta, "eval": res}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
