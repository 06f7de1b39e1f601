"""The step graph and the deployed host loop on OpenVINO (float32 and bfloat16) against onnxruntime's CPU provider
(float32), interleaved round by round in one process so that load hits every configuration alike.

For the float32 artefact of the TRM Sudoku demo model (or --artefact):
- the step graph alone at batch 1 and 64 (median ms per call over the rounds, each round a few calls), through each
  backend's graph call (`_call`: what the host loop's plain stepper uses);
- the host loop as deployed (`solve`: early halting at the artefact's threshold, batch compaction) on --n puzzles
  at batch 1 and 64: ms per puzzle;
- the answers of OpenVINO f32 and bf16 against onnxruntime float32 on --agree-n generated puzzles: share with the
  same halting step, the same prediction, and each one's exact accuracy.
Where the artefact has an int8_weight_only variant, a fourth configuration is OpenVINO's int8 (`--ov-precision
int8`): that variant's INT8 weights (NNCF) with OpenVINO quantizing each token's activations to INT8 in groups of 32
at run time.
The machine (CPU model, the ISA extensions that decide bf16 — avx512_bf16, amx_bf16 —, cores, load average before
and after) and the versions are printed with the table.

    .venv/bin/python benchmarks/openvino_vs_onnxruntime.py --artefact PATH [--rounds 5] [--out ov.json]

Without --artefact the demo model's artefact is exported into a temporary folder first (needs the export extra).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

ISA = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8", "amx_fp16")


def machine() -> dict[str, Any]:
    """CPU model, the ISA flags that matter for OpenVINO's precisions, cores and load."""
    model, flags = "?", set()
    try:
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            k, _, v = ln.partition(":")
            if k.strip() == "model name" and model == "?":
                model = v.strip()
            elif k.strip() == "flags" and not flags:
                flags = set(v.split())
    except OSError:
        pass
    return {
        "cpu": model,
        "isa": [f for f in ISA if f in flags],
        "cores": os.cpu_count(),
        "load": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
    }


def export_demo(folder: Path) -> Path:
    from edgekit.pipeline import run_export

    recipe = folder / "trm.yaml"
    recipe.write_text(
        "schema_version: 1\nname: trm-sudoku\n"
        f"model: {{path: {ROOT / 'examples' / 'models' / 'trm-sudoku'}}}\n"
        "task: {name: sudoku, n: 32, givens: [28, 40], seed: 123}\ntarget: x86-cpu\n"
        "export: {opset: 17, forms: [step, loop], precisions: [float32]}\n"
        f"output: {folder / 'artefact'}\n"
    )
    out = run_export(recipe, log=lambda s: None)
    if out.exit_code != 0:
        raise SystemExit(f"export failed: {out.results}")
    return Path(out.folder)


def puzzles(n: int, seed: int, givens: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    from edgekit.tasks import sudoku

    pool = sudoku.SudokuPool.generate(n, seed=seed)
    return pool.sample(n, givens, np.random.default_rng(seed), augment=False)


def runners(art: Path, threads: int | None) -> dict[str, Any]:
    from edgekit.runtime import open_runner

    rs = {
        "onnxruntime f32": open_runner(art, backend="onnxruntime", threads=threads).validated_settings(),
        "openvino f32": open_runner(art, backend="openvino", precision="f32", threads=threads).validated_settings(),
        "openvino bf16": open_runner(art, backend="openvino", precision="bf16", threads=threads).validated_settings(),
    }
    if "int8_weight_only" in rs["onnxruntime f32"].manifest.variants:
        int8 = open_runner(art, backend="openvino", precision="int8", threads=threads)
        rs["openvino int8"] = int8.validated_settings()
    return rs


def step_feeds(r: Any, x: np.ndarray) -> dict[str, np.ndarray]:
    """The step graph's inputs one step into the recursion (a real state, not zeros)."""
    e = r.call("encode", {"inputs": x})[0]
    state = r.initial_state(e)
    out = r.call("step", {**dict(zip(r.state_names, state)), "x": e})
    return {**dict(zip(r.state_names, out[:-1])), "x": e}


def timed(fn: Any, calls: int) -> float:
    t = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t) / calls


def bench(rs: dict[str, Any], x: np.ndarray, rounds: int, batches: list[int]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    ref = next(iter(rs.values()))
    for b in batches:
        feeds = step_feeds(ref, x[:b])
        calls = max(2, 32 // b)
        step: dict[str, list[float]] = {k: [] for k in rs}
        host: dict[str, list[float]] = {k: [] for k in rs}
        for r in rs.values():  # warm-up: compile, first-shape costs
            r.call("step", feeds)
            r.solve(x[:b])
        for _ in range(rounds):
            for name, r in rs.items():
                step[name].append(timed(lambda r=r, f=feeds: r.call("step", f), calls))
                t = time.perf_counter()
                for i in range(0, len(x), b):
                    r.solve(x[i : i + b])
                host[name].append((time.perf_counter() - t) / len(x))
        base = float(np.median(step["onnxruntime f32"]))
        base_host = float(np.median(host["onnxruntime f32"]))
        for name in rs:
            s, h = float(np.median(step[name])), float(np.median(host[name]))
            rows.append(
                {
                    "config": name,
                    "batch": b,
                    "step_ms": round(s * 1e3, 3),
                    "step_ms_per_puzzle": round(s * 1e3 / b, 3),
                    "step_speedup": round(base / s, 2),
                    "host_ms_per_puzzle": round(h * 1e3, 3),
                    "host_speedup": round(base_host / h, 2),
                }
            )
    return rows


def agreement(rs: dict[str, Any], x: np.ndarray, y: np.ndarray) -> list[dict[str, Any]]:
    ref = rs["onnxruntime f32"].solve(x)
    out = []
    for name, r in rs.items():
        s = ref if r is rs["onnxruntime f32"] else r.solve(x)
        out.append(
            {
                "config": name,
                "n": len(x),
                "same_halting_step": round(float((s.steps == ref.steps).mean()), 4),
                "same_prediction": round(float((s.preds == ref.preds).all(axis=1).mean()), 4),
                "exact": round(float((s.preds == y).all(axis=1).mean()), 4),
                "mean_steps": round(float(s.steps.mean()), 3),
            }
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--artefact", type=Path, help="a TRM Sudoku artefact (default: export the demo model)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n", type=int, default=64, help="puzzles per host-loop pass")
    ap.add_argument("--agree-n", type=int, default=256, help="puzzles for the answer agreement")
    ap.add_argument("--batch", type=int, action="append", help="batch sizes (default 1 and 64)")
    ap.add_argument("--threads", type=int, help="threads for both runtimes (default: each one's own)")
    ap.add_argument("--out", type=Path, help="write the results as JSON here")
    a = ap.parse_args()
    before = machine()
    with tempfile.TemporaryDirectory() as tmp:
        art = a.artefact or export_demo(Path(tmp))
        import onnxruntime
        import openvino

        rs = runners(art, a.threads)
        x, _ = puzzles(a.n, 7, (28, 40))
        rows = bench(rs, x, a.rounds, a.batch or [1, 64])
        ax, ay = puzzles(a.agree_n, 2024, (28, 40))
        agree = agreement(rs, ax, ay)
    result = {
        "machine": before,
        "load_after": [round(v, 2) for v in os.getloadavg()],
        "onnxruntime": onnxruntime.__version__,
        "openvino": openvino.get_version(),
        "rounds": a.rounds,
        "threads": a.threads,
        "speed": rows,
        "agreement": agree,
    }
    m = before
    print(f"machine: {m['cpu']}, {m['cores']} cores, ISA {' '.join(m['isa'])}, load {m['load']} -> "
          f"{result['load_after']}; onnxruntime {result['onnxruntime']}, openvino {result['openvino']}")  # fmt: skip
    print("| config | batch | step ms/call | step ms/puzzle | step vs ort | host ms/puzzle | host vs ort |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['config']} | {r['batch']} | {r['step_ms']} | {r['step_ms_per_puzzle']} | {r['step_speedup']}x | "
              f"{r['host_ms_per_puzzle']} | {r['host_speedup']}x |")  # fmt: skip
    print("| config | puzzles | same halting step | same prediction | exact | mean steps |")
    print("|---|---|---|---|---|---|")
    for g in agree:
        print(f"| {g['config']} | {g['n']} | {g['same_halting_step']} | {g['same_prediction']} | {g['exact']} | "
              f"{g['mean_steps']} |")  # fmt: skip
    if a.out:
        a.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
