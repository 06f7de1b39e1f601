"""The three export forms of the demo models (TRM, HRM, DEQ) side by side.

For each model, exported in float32 into a temporary folder with `edgekit.export.onnx_export`:
- export time and file size per form: the step graphs (encode + step + readout, total), the ONNX Loop form,
  the unrolled fixed-budget graph;
- onnxruntime latency per form at batch 1 and batch 64 (ms per batch, through `edgekit.runtime.Runner`:
  step graphs = host loop with early halting and batch compaction, loop = the Loop form, unrolled = all steps);
- early exit of the Loop form: steps taken (mean and histogram) on easy (40 givens), medium (28-34) and hard
  (minimal, ~22-26 givens) Sudoku puzzles for TRM and HRM, with exact accuracy; for the DEQ, f-evaluations of
  the Loop form with Anderson acceleration vs plain fixed-point iteration on the digits test split.

    .venv/bin/python benchmarks/export_forms.py [--quick] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MODELS = ROOT / "examples" / "models"
SEED = 2026  # held-out puzzles: disjoint from the training pool (seed 1000) and the training evals (99)
SETS = {"easy (40 givens)": (40, 40), "medium (28-34)": (28, 34), "hard (minimal)": (0, 0)}


def table(headers: list[str], rows: list[list], title: str | None = None) -> str:
    cells = [[str(c) for c in r] for r in rows]
    w = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = lambda r: "  ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(r))  # noqa: E731
    return "\n".join(
        ([title] if title else []) + [line(headers), "  ".join("-" * x for x in w)] + [line(r) for r in cells]
    )


def export_all(model, folder: Path, solver=None, forms=("step", "loop", "unrolled")) -> dict:
    """Export the forms into `folder`, write the manifest the runtime reads, return time and bytes per form."""
    from edgekit.export.onnx_export import export_loop, export_step_graphs, export_unrolled, initial_vectors

    folder.mkdir(parents=True, exist_ok=True)
    stats, files = {}, {}
    t0 = time.perf_counter()
    graphs = export_step_graphs(model, folder)
    stats["step graphs"] = {"seconds": time.perf_counter() - t0, "bytes": sum(g.bytes for g in graphs)}
    files.update({g.name: g.path.name for g in graphs})
    if "loop" in forms:
        t0 = time.perf_counter()
        g = export_loop(model, folder, folder / "loop.onnx", solver=solver)
        stats["loop"] = {"seconds": time.perf_counter() - t0, "bytes": g.bytes}
        files["loop"] = g.path.name
    if "unrolled" in forms:
        t0 = time.perf_counter()
        g = export_unrolled(model, folder, folder / "unrolled.onnx")
        stats["unrolled"] = {"seconds": time.perf_counter() - t0, "bytes": g.bytes}
        files["unrolled"] = g.path.name
    if model.family == "deq":
        init = {"kind": "zeros", "shape": [model.hidden_size]}
        spec = {"dtype": "float32", "shape": ["batch", model.encoder.in_features]}
        solver = solver or model.solver
        config = {"hidden_size": model.hidden_size, "solver": solver.model_dump()}
    else:
        np.savez(folder / "initial_state.npz", **initial_vectors(model))
        files["initial_state"] = "initial_state.npz"
        init = {"kind": "broadcast", "file": "initial_state.npz"}
        spec = {"dtype": "int64", "shape": ["batch", model.config.seq_len], "range": [0, model.config.vocab_size - 1]}
        config = model.config.model_dump()
    manifest = {
        "model": {"family": model.family, "config": config},
        "files": files,
        "variants": {"float32": {k: k for k in files if k != "initial_state"}},
        "graph": {
            "forms": list(forms),
            "state_names": list(model.state_names),
            "step_budget": model.step_budget,
            "unrolled_steps": model.step_budget,
            "halt_threshold": 0.0,
            "initial_state": init,
            "input": spec,
        },
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return stats


def sudoku_sets(n: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from edgekit.tasks import sudoku

    pool = sudoku.SudokuPool.generate(n, seed=SEED)
    rng = np.random.default_rng(SEED)
    return {name: pool.sample(n, g, rng, augment=False) for name, g in SETS.items()}


def steps_summary(steps: np.ndarray) -> tuple[float, dict[str, int]]:
    k, c = np.unique(steps, return_counts=True)
    return float(steps.mean()), {str(int(a)): int(b) for a, b in zip(k, c)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--quick", action="store_true", help="smoke run: batch 8 instead of 64, 8 puzzles per set, 1 repeat"
    )
    ap.add_argument("--n", type=int, help="puzzles per difficulty (default 64; quick 8)")
    ap.add_argument("--batch", type=int, help="the large batch size (default 64; quick 8)")
    ap.add_argument("--repeats", type=int, help="timed passes per batch size (default 2; quick 1)")
    ap.add_argument("--threads", type=int, help="onnxruntime intra-op threads (default: its own)")
    ap.add_argument("--out", type=Path, help="also write the results as JSON here")
    a = ap.parse_args(argv)
    n = a.n or (8 if a.quick else 64)
    big = a.batch or (8 if a.quick else 64)
    repeats = a.repeats or (1 if a.quick else 2)
    n1 = 2 if a.quick else 8  # puzzles timed one at a time per form
    t_start = time.perf_counter()
    load_start = os.getloadavg()
    log = lambda s: print(f"• {s}", flush=True)  # noqa: E731

    from edgekit.models import load_model
    from edgekit.runtime import Runner
    from edgekit.runtime.bench import benchmark
    from edgekit.tasks import digits

    sets = sudoku_sets(n)
    givens = {k: (int((x > 1).sum(1).min()), int((x > 1).sum(1).max())) for k, (x, _) in sets.items()}
    log(f"{n} puzzles per difficulty (seed {SEED}); givens per set: {givens}")
    mix_x = np.concatenate([x for x, _ in sets.values()])[np.random.default_rng(0).permutation(3 * n)]
    dx, dy = digits.load("test")

    export_rows, latency_rows, exit_rows, results = [], [], [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("trm-sudoku", "hrm-sudoku", "deq-digits"):
            model = load_model(MODELS / name, forward_dtype=None if name == "deq-digits" else "float32")
            folder = Path(tmp) / name
            stats = export_all(model, folder)
            res = results.setdefault(name, {"export": stats})
            for form, s in stats.items():
                export_rows.append([name, form, f"{s['seconds']:.2f}", f"{s['bytes'] / 1e6:.2f}"])
            took = ", ".join(f"{k} {v['seconds']:.1f} s" for k, v in stats.items())
            log(f"{name}: exported ({took})")

            runner = Runner(folder, threads=a.threads)
            inputs = dx if model.family == "deq" else mix_x
            lat = res.setdefault("latency", {})
            for form, mode in (("step graphs", "host"), ("loop", "loop"), ("unrolled", "unrolled")):
                s1 = benchmark(runner, inputs[:n1], [1], mode, repeats=repeats, warmup=1)[0]
                sb = benchmark(runner, inputs[: max(big, 1)], [big], mode, repeats=repeats, warmup=1)[0]
                lat[form] = {"b1": s1.to_dict(), f"b{big}": sb.to_dict()}
                latency_rows.append(
                    [
                        name,
                        form,
                        f"{s1.p50_ms:.1f}",
                        f"{s1.mean_steps:.2f}",
                        f"{sb.p50_ms:.0f}",
                        f"{sb.per_sample_ms:.2f}",
                        f"{sb.mean_steps:.2f}",
                    ]
                )
            log(f"{name}: latency measured ({time.perf_counter() - t_start:.0f} s)")

            ee = res.setdefault("early_exit", {})
            if model.family != "deq":
                for set_name, (x, y) in sets.items():
                    steps, correct = [], []
                    for i in range(0, len(x), big):
                        sol = runner.solve(x[i : i + big], mode="loop")
                        steps.append(np.asarray(sol.steps))
                        correct.append((sol.preds == y[i : i + big]).all(-1))
                    st = np.concatenate(steps)
                    mean, hist = steps_summary(st)
                    exact = float(np.concatenate(correct).mean())
                    ee[set_name] = {
                        "mean_steps": mean,
                        "hist": hist,
                        "exact": exact,
                        "halted_before_cap": float((st < model.step_budget).mean()),
                        "givens": givens[set_name],
                    }
                    exit_rows.append(
                        [
                            name,
                            f"loop, {set_name}",
                            f"{givens[set_name][0]}-{givens[set_name][1]}",
                            f"{mean:.2f}",
                            f"{model.step_budget}",
                            f"{100 * ee[set_name]['halted_before_cap']:.0f} %",
                            f"{exact:.3f}",
                            " ".join(f"{k}:{v}" for k, v in hist.items()),
                        ]
                    )
            else:
                fp_folder = Path(tmp) / f"{name}-fixed-point"
                export_all(
                    model,
                    fp_folder,
                    solver=model.solver.model_copy(update={"name": "fixed_point"}),
                    forms=("step", "loop"),
                )
                for label, r in (
                    ("loop, Anderson", runner),
                    ("loop, fixed point", Runner(fp_folder, threads=a.threads)),
                ):
                    sol = r.solve(dx, mode="loop")
                    st = np.asarray(sol.steps)
                    mean, hist = steps_summary(st)
                    acc = float((sol.preds == dy).mean())
                    ee[label] = {
                        "mean_iterations": mean,
                        "hist": hist,
                        "accuracy": acc,
                        "converged": float(np.mean(sol.done)),
                    }
                    exit_rows.append(
                        [
                            name,
                            label,
                            "–",
                            f"{mean:.2f}",
                            f"{model.step_budget}",
                            f"{100 * ee[label]['converged']:.0f} % converged",
                            f"{acc:.3f}",
                            " ".join(f"{k}:{v}" for k, v in hist.items()),
                        ]
                    )
            log(f"{name}: early exit measured ({time.perf_counter() - t_start:.0f} s)")

    print()
    print(
        table(
            ["model", "form", "export s", "size MB"],
            export_rows,
            title="Export time and size per form (float32, opset 17)",
        )
    )
    print()
    print(
        table(
            ["model", "form", "b1 ms p50", "b1 steps", f"b{big} ms/batch p50", f"b{big} ms/sample", f"b{big} steps"],
            latency_rows,
            title=f"onnxruntime latency per form (step graphs = host loop with early halting + compaction); Sudoku: "
            f"{len(mix_x)} puzzles mixed from the sets below, digits: test split; {repeats} repeats",
        )
    )
    print()
    print(
        table(
            ["model", "form / data", "givens", "mean steps", "cap", "before cap", "exact", "steps histogram"],
            exit_rows,
            title=f"Early exit of the Loop form ({n} puzzles per set; DEQ: {len(dx)} digits, steps = f-evaluations)",
        )
    )
    load_end = os.getloadavg()
    print(
        f"\nload average {load_start[0]:.1f} at start, {load_end[0]:.1f} at end "
        "(shared 2-core machine: timings are noisy); "
        f"total {time.perf_counter() - t_start:.0f} s"
    )
    if a.out:
        a.out.write_text(
            json.dumps(
                {
                    "n_per_set": n,
                    "batch": big,
                    "repeats": repeats,
                    "seed": SEED,
                    "givens": givens,
                    "models": results,
                    "load_average": {"start": load_start, "end": load_end},
                },
                indent=1,
            )
        )
        print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
