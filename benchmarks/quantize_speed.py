"""Speed and size of every precision variant of an artefact, side by side in one process.

For each variant in the artefact's manifest (float32, float16, int8, mixed, int8_weight_only, ...):
- step-graph latency at batch 1 and batch 64: onnxruntime CPU, the variants' sessions interleaved round by
  round (so a busy CPU slows all of them alike), median per variant and the ratio to the float32 step;
- end-to-end host loop at batch 64 on held-out puzzles (encode + steps with early halting at the artefact's
  threshold + readout): ms per batch, mean steps, exact accuracy, ratio to float32;
- step-graph file size.

    .venv/bin/python benchmarks/quantize_speed.py ARTEFACT [--rounds 15] [--threads 2] [--out speed.json]

Run it with the CPU otherwise idle; ratios are the numbers to quote.
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

from benchmarks.export_forms import table  # noqa: E402


def step_sessions(folder: Path, manifest: dict, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.intra_op_num_threads = threads
    out = {}
    for variant, graphs in manifest["variants"].items():
        path = folder / manifest["files"][graphs["step"]]
        out[variant] = (ort.InferenceSession(str(path), so), path.stat().st_size)
    return out


def interleaved(fns: dict, rounds: int) -> dict[str, float]:
    """Median seconds per call of every function, calling them in turn each round."""
    for f in fns.values():
        f()  # warm-up
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) for k, v in times.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("artefact", type=Path)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()

    from edgekit.runtime import ArtefactError, Runner
    from edgekit.tasks import sudoku
    from edgekit.tasks.metrics import exact_and_cell

    if a.rounds <= 0 or a.threads <= 0:
        print("error: --rounds and --threads must be positive", file=sys.stderr)
        return 2
    try:
        manifest = Runner(a.artefact).manifest  # the runtime's own checks: missing or corrupt manifest
    except ArtefactError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    sessions = step_sessions(a.artefact, manifest, a.threads)
    rng = np.random.default_rng(0)
    report: dict = {"artefact": str(a.artefact), "threads": a.threads, "rounds": a.rounds, "step": {}, "solve": {}}
    rows = []
    for batch in (1, 64):
        feeds = {}
        for i in sessions["float32"][0].get_inputs():
            shape = [batch if not isinstance(d, int) else d for d in i.shape]
            feeds[i.name] = rng.standard_normal(shape).astype(np.float32)
        fns = {}
        for v, (s, _) in sessions.items():
            f = {
                i.name: feeds[i.name].astype(np.float16 if "float16" in i.type else np.float32) for i in s.get_inputs()
            }
            fns[v] = lambda s=s, f=f: s.run(None, f)
        med = interleaved(fns, a.rounds if batch == 64 else 4 * a.rounds)
        report["step"][batch] = {v: {"ms": t * 1e3, "speedup": med["float32"] / t} for v, t in med.items()}
    for v, (_, size) in sessions.items():
        s1, s64 = report["step"][1][v], report["step"][64][v]
        rows.append(
            [
                v,
                f"{size / 1e6:.2f}",
                f"{s1['ms']:.3g}",
                f"{s1['speedup']:.2f}x",
                f"{s64['ms']:.3g}",
                f"{s64['speedup']:.2f}x",
            ]
        )
    print(
        table(
            ["variant", "step MB", "b1 ms", "vs fp32", "b64 ms", "vs fp32"],
            rows,
            f"step graph, onnxruntime CPU, {a.threads} threads, median of interleaved rounds",
        )
    )

    if manifest["model"]["family"] != "deq":
        x, y = sudoku.SudokuPool.generate(64, seed=2026).sample(
            64, (28, 40), np.random.default_rng(2026), augment=False
        )
        runners = {v: Runner(a.artefact, v, threads=a.threads) for v in manifest["variants"]}
        sols = {}
        med = interleaved(
            {v: (lambda r=r, v=v: sols.__setitem__(v, r.solve(x, mode="host"))) for v, r in runners.items()},
            max(3, a.rounds // 3),
        )
        rows = []
        for v, t in med.items():
            exact, _ = exact_and_cell(sols[v].preds.reshape(y.shape), y)
            steps = float(np.mean(sols[v].steps))
            report["solve"][v] = {"ms": t * 1e3, "speedup": med["float32"] / t, "mean_steps": steps, "exact": exact}
            rows.append([v, f"{t * 1e3:.0f}", f"{med['float32'] / t:.2f}x", f"{steps:.2f}", f"{exact:.3f}"])
        print()
        print(
            table(
                ["variant", "b64 ms", "vs fp32", "mean steps", "exact"],
                rows,
                f"host loop with early halting (threshold {manifest['graph'].get('halt_threshold')}), "
                "64 held-out puzzles in one batch",
            )
        )
    if a.out:
        a.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
