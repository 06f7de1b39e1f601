"""Serving a stream of requests of mixed difficulty: fixed batches vs slot refill (continuous batching).

One artefact, one stream of Sudoku puzzles (40 / 34 / 28 givens and minimal puzzles, shuffled), run three ways
side by side in one process at each slot count B:

  (a) fixed batches of B, no early halting: every request runs the full step budget;
  (b) fixed batches of B with early halting and compaction (edgekit's host loop, `Runner.solve`): a batch is done
      when its slowest member is, and only then does the next batch start;
  (c) slot refill (`edgekit.runtime.server.SlotScheduler`): a halted sample's slot takes the next request at once.

Where a step costs about the same for any batch up to B (a GPU below saturation), (c) keeps every step full and
its throughput gain over (b) is the ratio of step calls, printed per B. On a CPU whose step cost is linear in the
batch (this project's 2-core machine: 14-16 ms per sample from batch 1 to 64), compaction already saves all the
compute early halting frees, so (b) and (c) run at about the same throughput and (c) mainly cuts service latency.

Throughput is requests per second of wall time; latency per request is its service time (from entering a batch or
slot to its answer); p50 / p99 over all requests. The script also checks that (b) and (c) give every request the
same answer and step count, and exits 1 if not.

    .venv/bin/python benchmarks/serving.py ARTEFACT [--n 2048] [--slots 16 64] [--seed 5150] [--out serving.json]
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

GIVENS = (40, 34, 28, 0)  # 0: the minimal puzzle itself (22-26 givens)


def stream(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n puzzles, a quarter at each difficulty, shuffled; (inputs, difficulty label per request)."""
    from edgekit.tasks import sudoku

    pool = sudoku.SudokuPool.generate(min(256, max(16, n // 8)), seed=seed)
    rng = np.random.default_rng(seed)
    parts, kinds = [], []
    for i, g in enumerate(GIVENS):
        k = n // len(GIVENS) + (1 if i < n % len(GIVENS) else 0)
        parts.append(pool.sample(k, g, rng)[0])
        kinds.append(np.full(k, g))
    order = rng.permutation(n)
    return np.concatenate(parts)[order], np.concatenate(kinds)[order]


class StepCounter:
    """Counts the step-graph calls a runner makes and the samples in them (wraps its graph call)."""

    def __init__(self, runner) -> None:
        self.calls = self.samples = 0
        real = runner._call

        def counted(graph, feeds):
            if graph == "step":
                self.calls += 1
                self.samples += len(feeds["x"])
            return real(graph, feeds)

        runner._call = counted
        bound = runner._run_bound

        def counted_bound(binding, n):  # the host loop's IO-bound step calls
            self.calls += 1
            self.samples += n
            return bound(binding, n)

        runner._run_bound = counted_bound

    def take(self) -> tuple[int, int]:
        out, self.calls, self.samples = (self.calls, self.samples), 0, 0
        return out


def fixed(runner, x: np.ndarray, b: int, threshold: float) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """(wall s, service latency per request, predictions, steps) for consecutive batches of b."""
    lat = np.empty(len(x))
    preds, steps = [], []
    t0 = time.perf_counter()
    for i in range(0, len(x), b):
        s = time.perf_counter()
        sol = runner.solve(x[i : i + b], mode="host", threshold=threshold)
        lat[i : i + b] = time.perf_counter() - s
        preds.append(sol.preds)
        steps.append(sol.steps)
    return time.perf_counter() - t0, lat, np.concatenate(preds), np.concatenate(steps)


def refill(runner, x: np.ndarray, b: int, threshold: float) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    from edgekit.runtime.server import SlotScheduler

    lat = np.empty(len(x))
    preds = np.empty((len(x), x.shape[1]), np.int64)
    steps = np.empty(len(x), np.int64)
    t0 = time.perf_counter()
    for a in SlotScheduler(runner, slots=b, threshold=threshold).run(enumerate(x)):
        lat[a.request_id], preds[a.request_id], steps[a.request_id] = a.service_s, a.prediction, a.steps
    return time.perf_counter() - t0, lat, preds, steps


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artefact", type=Path)
    ap.add_argument("--n", type=int, default=2048, help="requests in the stream")
    ap.add_argument("--slots", type=int, nargs="+", default=[16, 64], help="batch size / slots B")
    ap.add_argument("--seed", type=int, default=5150)
    ap.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads")
    ap.add_argument("--variant", default="float32")
    ap.add_argument("--out", type=Path, default=None, help="also write the results as JSON")
    a = ap.parse_args()
    from edgekit.runtime import ArtefactError, Runner, RuntimeInputError

    if a.n < 1 or any(b < 1 for b in a.slots):
        print("error: --n and --slots must be >= 1", file=sys.stderr)
        return 2
    try:
        runner = Runner(a.artefact, variant=a.variant, threads=a.threads)
        if list(runner.graph.input.sample_shape) != [81] or not runner.stopping.halting_head:
            raise ArtefactError(f"{a.artefact} is not a Sudoku artefact; this benchmark streams Sudoku puzzles")
    except (ArtefactError, RuntimeInputError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    thr = float(runner.graph.threshold)
    t = time.perf_counter()
    x, kinds = stream(a.n, a.seed)
    print(
        f"{a.artefact.name} ({a.variant}): {a.n} requests, givens {'/'.join(map(str, GIVENS))} (0 = minimal) "
        f"shuffled, seed {a.seed}; halting threshold {thr}; stream made in {time.perf_counter() - t:.1f} s"
    )
    runner.solve(x[:8])  # load the sessions before timing
    counter = StepCounter(runner)
    rows, ok = [], True
    print(
        f"{'B':>4} {'mode':<34} {'req/s':>8} {'vs (b)':>7} {'p50 ms':>8} {'p99 ms':>8} {'mean steps':>10} "
        f"{'step calls':>10} {'mean batch':>10}"
    )
    runs = (
        ("(a) fixed batches, no halting", fixed, float("inf")),
        ("(b) fixed batches + compaction", fixed, thr),
        ("(c) slot refill", refill, thr),
    )
    for b in a.slots:
        res, calls = {}, {}
        for mode, run, t in runs:
            counter.take()
            res[mode] = run(runner, x, b, t)
            calls[mode] = counter.take()
        fixed_b, slot_c = res["(b) fixed batches + compaction"], res["(c) slot refill"]
        base = a.n / fixed_b[0]
        same = bool((fixed_b[2] == slot_c[2]).all() and (fixed_b[3] == slot_c[3]).all())
        ok &= same
        for mode, (wall, lat, _, steps) in res.items():
            thr_s = a.n / wall
            p50, p99 = np.percentile(lat * 1e3, [50, 99])
            n_calls, n_samples = calls[mode]
            print(
                f"{b:>4} {mode:<34} {thr_s:>8.1f} {thr_s / base:>6.2f}x {p50:>8.1f} {p99:>8.1f} "
                f"{steps.mean():>10.2f} {n_calls:>10} {n_samples / max(n_calls, 1):>10.1f}"
            )
            rows.append(
                {
                    "slots": b,
                    "mode": mode,
                    "requests_per_s": thr_s,
                    "vs_fixed_compaction": thr_s / base,
                    "p50_ms": float(p50),
                    "p99_ms": float(p99),
                    "mean_steps": float(steps.mean()),
                    "wall_s": wall,
                    "step_calls": n_calls,
                    "mean_batch": n_samples / max(n_calls, 1),
                }
            )
        cb, cc = calls["(b) fixed batches + compaction"][0], calls["(c) slot refill"][0]
        print(
            f"{b:>4} (b) and (c) give every request the same answer and steps: {same}; step calls (b) / (c) = "
            f"{cb / max(cc, 1):.2f} (the throughput ratio where a step costs the same at any batch size <= B, "
            "as on a GPU below saturation; not measured here)"
        )
    if a.out:
        a.out.write_text(
            json.dumps(
                {
                    "artefact": str(a.artefact),
                    "n": a.n,
                    "seed": a.seed,
                    "threshold": thr,
                    "results": rows,
                    "identical_answers": ok,
                },
                indent=1,
            )
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
