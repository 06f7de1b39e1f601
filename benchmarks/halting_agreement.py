"""How often each compressed variant halts at the same step as float32, with a 95 % confidence interval.

The validation stage measures halting agreement on the recipe's validation set (256-512 puzzles), where one
puzzle is 0.2-0.4 points and a 95 % interval is about ±2 points wide. This script scores every variant of a
Sudoku artefact against the artefact's own float32 step on a large fresh puzzle set (a seed no recipe uses),
through the deployed host loop with early halting at the artefact's threshold, and prints agreement and exact
accuracy with Wilson intervals, so a "94 % vs a 95 % target" reading can be told from noise.

    .venv/bin/python benchmarks/halting_agreement.py ARTEFACT [--n 2048] [--seed 7000] [--out agreement.json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def wilson(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion (sound near 0 and 1, unlike the normal approximation)."""
    c = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, c - h), min(1.0, c + h)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artefact", type=Path)
    ap.add_argument("--n", type=int, default=2048, help="fresh puzzles (28-40 givens)")
    ap.add_argument("--seed", type=int, default=7000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    if a.n <= 0 or a.batch <= 0:
        print("error: --n and --batch must be positive", file=sys.stderr)
        return 2

    from edgekit.runtime import ArtefactError, Runner
    from edgekit.tasks import sudoku
    from edgekit.tasks.metrics import exact_and_cell

    try:
        runners = {"float32": Runner(a.artefact)}  # the runtime's own checks: missing or corrupt manifest
    except ArtefactError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    manifest = runners["float32"].manifest
    if manifest["model"]["family"] == "deq" or manifest["model"].get("config", {}).get("seq_len") != 81:
        print("error: this benchmark scores Sudoku ACT models (TRM/HRM); the artefact is not one", file=sys.stderr)
        return 2
    runners.update({v: Runner(a.artefact, variant=v) for v in manifest["variants"] if v != "float32"})

    x, y = sudoku.SudokuPool.generate(a.n, seed=a.seed).sample(
        a.n, (28, 40), np.random.default_rng(a.seed), augment=False
    )

    def run(variant: str) -> tuple[float, np.ndarray, float]:
        """Deployed answers of one variant: the host loop with early halting, halted samples leaving the batch."""
        t0 = time.time()
        runner = runners[variant]
        sols = [runner.solve(x[i : i + a.batch], mode="host") for i in range(0, a.n, a.batch)]
        exact, _ = exact_and_cell(np.concatenate([s.preds for s in sols]).reshape(y.shape), y)
        return exact, np.concatenate([s.steps for s in sols]), time.time() - t0

    ref_exact, ref_steps, sec = run("float32")
    rows = [
        {
            "variant": "float32",
            "exact": ref_exact,
            "exact_ci": wilson(ref_exact, a.n),
            "halting_agreement": 1.0,
            "mean_steps": float(ref_steps.mean()),
            "seconds": round(sec, 1),
        }
    ]
    for name in manifest["variants"]:
        if name == "float32":
            continue
        exact, steps, sec = run(name)
        agree = float(np.mean(steps == ref_steps))
        rows.append(
            {
                "variant": name,
                "exact": exact,
                "exact_ci": wilson(exact, a.n),
                "exact_drop": ref_exact - exact,
                "halting_agreement": agree,
                "halting_agreement_ci": wilson(agree, a.n),
                "mean_steps": float(steps.mean()),
                "seconds": round(sec, 1),
            }
        )
    print(
        f"{a.artefact.name}: {a.n} fresh puzzles (seed {a.seed}), threshold "
        f"{manifest['graph'].get('halt_threshold', 0.0)}; intervals are 95 % Wilson"
    )
    print(f"{'variant':<18}{'exact':>8}{'  95 % CI':<18}{'same halt':>10}{'  95 % CI':<18}{'mean steps':>11}")
    for r in rows:
        ci = r.get("halting_agreement_ci", (1.0, 1.0))
        print(
            f"{r['variant']:<18}{r['exact']:>8.4f}  [{r['exact_ci'][0]:.4f}, {r['exact_ci'][1]:.4f}]"
            f"{r['halting_agreement']:>10.4f}  [{ci[0]:.4f}, {ci[1]:.4f}]{r['mean_steps']:>11.2f}"
        )
    if a.out:
        a.out.write_text(json.dumps({"artefact": str(a.artefact), "n": a.n, "seed": a.seed, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
