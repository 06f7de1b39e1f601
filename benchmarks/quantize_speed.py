"""Speed and size of every precision variant of an artefact, side by side in one process.

For each variant in the artefact's manifest (float32, float16, int8, mixed, int8_weight_only, ...):
- step-graph latency at batch 1 and batch 64 on real recursion states (held-out puzzles, two float32 steps in):
  onnxruntime CPU, the variants' sessions interleaved round by round (so a busy CPU slows all of them alike),
  median per variant and the ratio to the float32 step;
- end-to-end host loop at batch 64 on held-out puzzles (encode + steps with early halting at the artefact's
  threshold + readout): ms per batch, mean steps, exact accuracy, ratio to float32;
- the full-budget rollout (every step, no early halting: encode + budget x step + readout) at batch 1 and 64;
- step-graph file size.

Every ratio is the median of per-round ratios (each round times float32 and the variant back to back, so a load
change between rounds cancels) with a distribution-free 95 % interval of that median; the load average is
recorded before and after.

    .venv/bin/python benchmarks/quantize_speed.py ARTEFACT [--rounds 15] [--threads 2] [--out speed.json]
        [--variants a,b] [--solve-n 64] [--rollout-rounds 5]
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

from benchmarks.export_forms import table  # noqa: E402
from edgekit.runtime.gate_eval import median_interval  # noqa: E402  # the latency gates' interval


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


def real_step_feeds(folder: Path, manifest: dict, batch: int, threads: int, steps: int = 2) -> dict | None:
    """The step graph's inputs in the middle of a real recursion: held-out puzzles encoded by the float32 graphs,
    `steps` float32 steps on from the initial state (every variant is timed on these same inputs), so the step
    graph is timed on what it sees when deployed, not on random normal states; None for models without a token
    task (DEQ)."""
    from edgekit.runtime import Runner
    from edgekit.tasks import sudoku

    if manifest["model"]["family"] == "deq":
        return None
    x, _ = sudoku.SudokuPool.generate(batch, seed=7).sample(batch, (28, 40), np.random.default_rng(7), augment=False)
    r = Runner(folder, "float32", threads=threads)
    xe = r.encode(r.check_inputs(x), None)
    state = [np.ascontiguousarray(np.broadcast_to(s, (batch, *s.shape[1:]))) for s in r.initial_state(xe)]
    for _ in range(steps):
        state = r._call("step", {**dict(zip(r.state_names, state)), "x": xe})[:-1]
    return {**dict(zip(r.state_names, state)), "x": xe}


def interleaved(fns: dict, rounds: int, per_round: dict | None = None) -> dict[str, float]:
    """Median seconds per call of every function, calling them in turn each round (ABAB...); the per-round times
    go into `per_round` when given."""
    for f in fns.values():
        f()  # warm-up
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    if per_round is not None:
        per_round.update(times)
    return {k: float(np.median(v)) for k, v in times.items()}


def ratios(per_round: dict[str, list[float]], base: str = "float32") -> dict[str, dict]:
    """Speed-up of every entry over `base`: median of the per-round ratios and its interval."""
    out = {}
    for k, ts in per_round.items():
        r = [b / t for b, t in zip(per_round[base], ts)]
        lo, hi = median_interval(r)
        out[k] = {"ms": float(np.median(ts)) * 1e3, "speedup": float(np.median(r)), "interval": [lo, hi]}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("artefact", type=Path)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--variants", help="comma-separated variants besides float32 (default: all)")
    ap.add_argument("--solve-n", type=int, default=64, help="held-out puzzles of the deployed host-loop timing")
    ap.add_argument("--rollout-rounds", type=int, default=5, help="rounds of the full-budget rollout timing")
    a = ap.parse_args()

    from edgekit.runtime import ArtefactError, Runner
    from edgekit.tasks import sudoku
    from edgekit.tasks.metrics import exact_and_cell

    if a.rounds <= 0 or a.threads <= 0 or a.solve_n <= 0 or a.rollout_rounds < 0:
        print("error: --rounds, --threads and --solve-n must be positive", file=sys.stderr)
        return 2
    try:
        manifest = Runner(a.artefact).manifest.to_json()  # the runtime's own checks: missing or corrupt manifest
    except ArtefactError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if a.variants:
        keep = {"float32", *a.variants.split(",")}
        unknown = sorted(keep - set(manifest["variants"]))
        if unknown:
            print(f"error: no variant {unknown[0]!r} in this artefact", file=sys.stderr)
            return 2
        manifest = {**manifest, "variants": {k: v for k, v in manifest["variants"].items() if k in keep}}
    sessions = step_sessions(a.artefact, manifest, a.threads)
    rng = np.random.default_rng(0)
    report: dict = {
        "artefact": str(a.artefact),
        "threads": a.threads,
        "rounds": a.rounds,
        "load_before": os.getloadavg(),
        "step": {},
        "solve": {},
        "rollout": {},
    }
    rows = []
    for batch in (1, 64):
        feeds = real_step_feeds(a.artefact, manifest, batch, a.threads)
        if feeds is None:  # no token task to draw inputs from (DEQ): random inputs of the declared shapes
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
        per_round: dict = {}
        interleaved(fns, a.rounds if batch == 64 else 4 * a.rounds, per_round)
        report["step"][batch] = ratios(per_round)
    for v, (_, size) in sessions.items():
        s1, s64 = report["step"][1][v], report["step"][64][v]
        rows.append(
            [
                v,
                f"{size / 1e6:.2f}",
                f"{s1['ms']:.3g}",
                f"{s1['speedup']:.2f}x",
                f"{s64['ms']:.3g}",
                f"{s64['speedup']:.2f}x [{s64['interval'][0]:.2f}, {s64['interval'][1]:.2f}]",
            ]
        )
    print(
        table(
            ["variant", "step MB", "b1 ms", "vs fp32", "b64 ms", "vs fp32 [95 % CI]"],
            rows,
            f"step graph, onnxruntime CPU, {a.threads} threads, median of interleaved rounds",
        )
    )

    if manifest["model"]["family"] != "deq":
        n = a.solve_n
        x, y = sudoku.SudokuPool.generate(n, seed=2026).sample(n, (28, 40), np.random.default_rng(2026), augment=False)
        runners = {v: Runner(a.artefact, v, threads=a.threads) for v in manifest["variants"]}
        sols: dict = {}

        def deployed(r, v: str) -> None:
            parts = [r.solve(x[i : i + 64], mode="host") for i in range(0, n, 64)]
            sols[v] = (np.concatenate([p.preds for p in parts]), np.concatenate([p.steps for p in parts]))

        per_round: dict = {}
        interleaved(
            {v: (lambda r=r, v=v: deployed(r, v)) for v, r in runners.items()}, max(3, a.rounds // 3), per_round
        )
        rows = []
        for v, rt in ratios(per_round).items():
            exact, _ = exact_and_cell(sols[v][0].reshape(y.shape), y)
            steps = float(np.mean(sols[v][1]))
            report["solve"][v] = {**rt, "mean_steps": steps, "exact": exact}
            rows.append(
                [
                    v,
                    f"{rt['ms']:.0f}",
                    f"{rt['speedup']:.2f}x [{rt['interval'][0]:.2f}, {rt['interval'][1]:.2f}]",
                    f"{steps:.2f}",
                    f"{exact:.3f}",
                ]
            )
        print()
        print(
            table(
                ["variant", "ms", "vs fp32 [95 % CI]", "mean steps", "exact"],
                rows,
                f"deployed: host loop with early halting (threshold {manifest['graph'].get('halt_threshold')}), "
                f"{n} held-out puzzles in batches of 64",
            )
        )
        if a.rollout_rounds:
            rows = []
            budget = int(manifest["graph"]["step_budget"])
            for batch in (1, 64):
                xb = x[:batch]
                per_round = {}
                fns = {v: (lambda r=r, xb=xb: r.solve(xb, mode="host", threshold=math.inf)) for v, r in runners.items()}
                interleaved(fns, a.rollout_rounds * (4 if batch == 1 else 1), per_round)
                report["rollout"][batch] = ratios(per_round)
            for v in runners:
                r1, r64 = report["rollout"][1][v], report["rollout"][64][v]
                rows.append(
                    [
                        v,
                        f"{r1['ms']:.1f}",
                        f"{r1['speedup']:.2f}x",
                        f"{r64['ms']:.0f}",
                        f"{r64['speedup']:.2f}x [{r64['interval'][0]:.2f}, {r64['interval'][1]:.2f}]",
                    ]
                )
            print()
            print(
                table(
                    ["variant", "b1 ms", "vs fp32", "b64 ms", "vs fp32 [95 % CI]"],
                    rows,
                    f"full-budget rollout ({budget} steps, no early halting), host loop",
                )
            )
    report["load_after"] = os.getloadavg()
    print(f"\nload average before / after: {report['load_before'][0]:.2f} / {report['load_after'][0]:.2f}")
    if a.out:
        a.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
