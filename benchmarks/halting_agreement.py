"""How often each compressed variant halts at the same step as float32, with a 95 % confidence interval.

The validation stage measures halting agreement on the recipe's validation set (256-512 puzzles), where one
puzzle is 0.2-0.4 points and a 95 % interval is about ±2 points wide. This script scores every variant of a
Sudoku artefact against the artefact's own float32 step on a large fresh puzzle set (a seed no recipe uses),
through the deployed host loop with early halting at the artefact's threshold, and prints agreement and exact
accuracy with Wilson intervals, so a "94 % vs a 95 % target" reading can be told from noise.

    .venv/bin/python benchmarks/halting_agreement.py ARTEFACT [--n 2048] [--seed 7000] [--out agreement.json]
        [--variants a,b] [--openvino int8,bf16] [--full-budget N] [--invariance N] [--threads T]

--openvino P,... also scores OpenVINO configurations on this CPU (rows openvino-P: the deployed host loop with
`--backend openvino --ov-precision P`; int8 runs the int8_weight_only variant's graphs) against the same
onnxruntime float32.

--full-budget N also scores the first N puzzles at the full recursion budget (no early halting); --invariance N
checks on the first N puzzles that each variant's Loop form (no batch compaction) halts at the host loop's step
with the same answer, and that a shuffled batch answers each puzzle alike (a batch-invariant variant: 1.0).
The exact-accuracy drop against float32 gets a 95 % interval from the paired per-puzzle differences.
"""

from __future__ import annotations

import argparse
import json
import math
import os
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
    ap.add_argument("--threads", type=int, help="onnxruntime threads per session (default: onnxruntime's own)")
    ap.add_argument("--variants", help="comma-separated variants to score (default: all)")
    ap.add_argument("--openvino", help="comma-separated OpenVINO precisions also scored (f32, bf16, f16, int8)")
    ap.add_argument("--full-budget", type=int, default=0, help="puzzles also scored at the full budget")
    ap.add_argument("--invariance", type=int, default=0, help="puzzles checked for Loop = host loop and shuffling")
    a = ap.parse_args()
    if a.n <= 0 or a.batch <= 0:
        print("error: --n and --batch must be positive", file=sys.stderr)
        return 2
    if not 0 <= a.full_budget <= a.n or not 0 <= a.invariance <= a.n:
        print("error: --full-budget and --invariance must be between 0 and --n", file=sys.stderr)
        return 2

    from edgekit.runtime import ArtefactError, Runner, RuntimeInputError, open_runner
    from edgekit.tasks import sudoku

    try:
        # the runtime's own checks: missing or corrupt manifest
        runners = {"float32": Runner(a.artefact, threads=a.threads)}
    except ArtefactError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    manifest = runners["float32"].manifest.to_json()  # the checked manifest, as the plain JSON document
    if manifest["model"]["family"] == "deq" or manifest["model"].get("config", {}).get("seq_len") != 81:
        print("error: this benchmark scores Sudoku ACT models (TRM/HRM); the artefact is not one", file=sys.stderr)
        return 2
    names = [v for v in manifest["variants"] if v != "float32"]
    if a.variants:
        unknown = sorted(set(a.variants.split(",")) - set(names) - {"float32"})  # float32: always scored
        if unknown:
            print(f"error: no variant {unknown[0]!r} in this artefact (it has: {', '.join(names)})", file=sys.stderr)
            return 2
        names = [v for v in names if v in a.variants.split(",")]
    runners.update({v: Runner(a.artefact, variant=v, threads=a.threads) for v in names})
    for p in a.openvino.split(",") if a.openvino else []:
        try:
            runners[f"openvino-{p}"] = open_runner(a.artefact, backend="openvino", precision=p, threads=a.threads)
        except (ArtefactError, RuntimeInputError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        names.append(f"openvino-{p}")

    x, y = sudoku.SudokuPool.generate(a.n, seed=a.seed).sample(
        a.n, (28, 40), np.random.default_rng(a.seed), augment=False
    )

    def solve(variant: str, xs: np.ndarray, **kw: object) -> tuple[np.ndarray, np.ndarray]:
        """Answers and steps of one variant, batch by batch (host loop: halted samples leave the batch)."""
        sols = [runners[variant].solve(xs[i : i + a.batch], **kw) for i in range(0, len(xs), a.batch)]  # type: ignore[arg-type]
        return np.concatenate([s.preds for s in sols]).reshape(len(xs), -1), np.concatenate([s.steps for s in sols])

    def solved(preds: np.ndarray, labels: np.ndarray) -> np.ndarray:
        return np.all((preds == labels) | (labels < 0), axis=-1)

    def run(variant: str) -> dict:
        """Deployed answers of one variant (host loop, early halting at the artefact's threshold) and the extras."""
        t0 = time.time()

        def said(what: str) -> None:  # a line per phase on stderr: an 8,192-puzzle run takes many minutes
            print(f"{variant}: {what} ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)

        preds, steps = solve(variant, x, mode="host")
        out: dict = {"ok": solved(preds, y), "steps": steps, "preds": preds}
        said(f"host loop on {a.n} puzzles done")
        if a.full_budget:
            full, _ = solve(variant, x[: a.full_budget], mode="host", threshold=math.inf)
            out["ok_full"] = solved(full, y[: a.full_budget])
            said(f"full budget on {a.full_budget} puzzles done")
        if a.invariance and "loop" in runners[variant].graphs:
            m = a.invariance
            lp, ls = solve(variant, x[:m], mode="loop")
            perm = np.random.default_rng(a.seed + 1).permutation(m)
            sp, ss = solve(variant, x[:m][perm], mode="host")
            out["loop_same"] = float(np.mean((ls == steps[:m]) & np.all(lp == preds[:m], axis=-1)))
            out["shuffle_same"] = float(np.mean((ss == steps[:m][perm]) & np.all(sp == preds[:m][perm], axis=-1)))
            said(f"Loop form and shuffled batch on {m} puzzles done")
        out["seconds"] = round(time.time() - t0, 1)
        return out

    def paired(ref_ok: np.ndarray, ok: np.ndarray) -> tuple[float, tuple[float, float]]:
        """Exact drop (float32 minus variant) with a 95 % normal interval over the paired per-puzzle differences."""
        d = ref_ok.astype(float) - ok.astype(float)
        half = 1.96 * float(d.std(ddof=1)) / math.sqrt(len(d)) if len(d) > 1 else 0.0
        return float(d.mean()), (float(d.mean()) - half, float(d.mean()) + half)

    ref = run("float32")
    rows = []
    for name in ["float32", *names]:
        r = ref if name == "float32" else run(name)
        exact = float(r["ok"].mean())
        agree = float(np.mean(r["steps"] == ref["steps"]))
        row: dict = {
            "variant": name,
            "exact": exact,
            "exact_ci": wilson(exact, a.n),
            "halting_agreement": agree,
            "mean_steps": float(r["steps"].mean()),
            "seconds": r["seconds"],
        }
        if name != "float32":
            row["exact_drop"], row["exact_drop_ci"] = paired(ref["ok"], r["ok"])
            row["halting_agreement_ci"] = wilson(agree, a.n)
        if a.full_budget:
            row["exact_full"] = float(r["ok_full"].mean())
            row["full_budget_n"] = a.full_budget
            if name != "float32":
                row["exact_full_drop"], row["exact_full_drop_ci"] = paired(ref["ok_full"], r["ok_full"])
        for k in ("loop_same", "shuffle_same"):
            if k in r:
                row[k] = r[k]
        rows.append(row)
    print(
        f"{a.artefact.name}: {a.n} fresh puzzles (seed {a.seed}), threshold "
        f"{manifest['graph'].get('halt_threshold', 0.0)}; intervals are 95 % Wilson"
    )
    print(
        f"{'variant':<18}{'exact':>8}{'  95 % CI':<18}{'drop':>8}{'  95 % CI':<20}{'same halt':>10}{'  95 % CI':<18}"
        f"{'mean steps':>11}{'exact@full':>11}{'loop=host':>10}{'shuffled':>9}"
    )
    for r in rows:
        ci = r.get("halting_agreement_ci", (1.0, 1.0))
        dci = r.get("exact_drop_ci", (0.0, 0.0))
        full = f"{r['exact_full']:>11.4f}" if "exact_full" in r else f"{'-':>11}"
        inv = "".join(
            f"{r[k]:>{w}.4f}" if k in r else f"{'-':>{w}}" for k, w in (("loop_same", 10), ("shuffle_same", 9))
        )
        print(
            f"{r['variant']:<18}{r['exact']:>8.4f}  [{r['exact_ci'][0]:.4f}, {r['exact_ci'][1]:.4f}]"
            f"{r.get('exact_drop', 0.0):>8.4f}  [{dci[0]:+.4f}, {dci[1]:+.4f}]"
            f"{r['halting_agreement']:>10.4f}  [{ci[0]:.4f}, {ci[1]:.4f}]{r['mean_steps']:>11.2f}{full}{inv}"
        )
    if a.out:
        report = {"artefact": str(a.artefact), "n": a.n, "seed": a.seed, "load": os.getloadavg(), "rows": rows}
        a.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
