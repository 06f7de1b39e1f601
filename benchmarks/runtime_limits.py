"""How close the runtime runs to this CPU's limit, side by side in one process.

For the float32 step graph of an artefact (default: the main job's, exported if missing):
- the step graph alone at batch 1 and 64: median ms per call and GFLOP/s (MatMul/Gemm FLOPs of the graph), as a
  share of the CPU's nominal fp32 peak (cores x clock x FLOP/cycle, see runtime_vs_pytorch.cpu_info);
- the host loop as deployed (Runner.solve: early halting at the artefact's threshold, batch compaction) on 64
  puzzles at batch 1 and 64: ms per puzzle, and the share of its time spent outside session.run (the host
  loop's own overhead: Python, numpy compaction, feeds);
- with onnxruntime's intra-op spin-waiting on (its default), off, and on within a run but stopped when the run
  ends (session.force_spinning_stop), each with step calls through `session.run` (plain: numpy feeds in, new
  arrays out); and the deployed runtime, spinning stopped and step calls through IO binding into preallocated
  ping-pong buffers (runtime/stepper.py); the configurations interleaved round by round so that load hits all
  alike.

    .venv/bin/python benchmarks/runtime_limits.py [--artefact PATH] [--rounds 5] [--out limits.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.runtime_vs_pytorch import cpu_info, matmul_flops  # noqa: E402

SPIN = {"session.intra_op.allow_spinning": "1", "session.force_spinning_stop": "1"}  # spin in a run only
SETTINGS = {  # per configuration compared: onnxruntime session config entries, step calls IO-bound
    "spin": ({"session.intra_op.allow_spinning": "1"}, False),  # onnxruntime's default
    "nospin": ({"session.intra_op.allow_spinning": "0"}, False),
    "stop": (SPIN, False),  # the runtime before IO binding
    "stop+bound": (SPIN, True),  # the runtime as deployed
}


def _runner(art: Path, entries: dict[str, str], bound: bool):
    import onnxruntime as ort

    from edgekit.runtime import Runner
    from edgekit.runtime.bench import SessionTimer

    ort.set_default_logger_severity(3)  # overriding edgekit's spin setting is what this benchmark is for
    r = Runner(art, variant="float32").validated_settings()
    r.bind_steps = bound
    for k, v in entries.items():
        r.opts.add_session_config_entry(k, v)
    return r, SessionTimer(r)  # time spent inside onnxruntime's run calls, to tell the host loop's own overhead


def _step_alone(r, x: np.ndarray):
    """One step call as the host loop makes it (plain feeds, or the bound stepper), on a state one step in."""
    stepper, key = r._stepper(x)
    stepper.step()
    r._release(stepper, key)  # back to the runner's cache, where the host loop's next solve of this size takes it
    if r.bind_steps:
        return stepper.step
    feeds = {**dict(zip(r.state_names, stepper.state)), "x": x}
    return partial(r.call, "step", feeds)


def _ms(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artefact", type=Path, default=ROOT / "artefacts" / "trm-sudoku")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args(argv)
    if not (a.artefact / "manifest.json").is_file():
        subprocess.run([sys.executable, "-m", "edgekit.cli", "export", str(ROOT / "recipes/trm-sudoku.yaml"), "--out",
                        str(a.artefact)], check=True)  # fmt: skip
    from edgekit.tasks.files import open_data

    x_all = np.asarray(open_data(ROOT / "examples/data/sudoku-demo", "test").inputs[0][:64]).astype(np.int64)
    cpu = cpu_info()
    flops = {b: matmul_flops(a.artefact / "step.onnx", b) for b in (1, 64)}
    runners = {name: _runner(a.artefact, entries, bound) for name, (entries, bound) in SETTINGS.items()}
    times: dict[str, list[float]] = {}
    for r, _ in runners.values():  # load sessions and warm up
        r.solve(x_all[:1])
        r.solve(x_all)
    for _ in range(a.rounds):
        for tag, (r, timer) in runners.items():
            for b in (1, 64):
                step = _step_alone(r, r.call("encode", {"inputs": r.check_inputs(x_all[:b])})[0])
                for _ in range(3 if b == 1 else 1):  # back-to-back step calls, as the host loop makes them
                    times.setdefault(f"{tag} b{b} step", []).append(_ms(step))
            for b in (1, 64):  # the host loop with early halting at the artefact's threshold, 64 puzzles
                timer.reset()
                t0 = time.perf_counter()
                for i in range(0, 64, b):
                    r.solve(x_all[i : i + b])
                total = time.perf_counter() - t0
                times.setdefault(f"{tag} b{b} solve", []).append(total * 1000 / 64)
                times.setdefault(f"{tag} b{b} overhead", []).append(1 - timer.total / total)
                times.setdefault(f"{tag} b{b} outside_us", []).append((total - timer.total) * 1e6 / 64)
    med = {k: float(np.median(v)) for k, v in times.items()}
    rows = []
    for spin in SETTINGS:
        for b in (1, 64):
            t = f"{spin} b{b}"
            gflops = flops[b] / (med[f"{t} step"] / 1000) / 1e9
            rows.append({
                "spin": spin, "batch": b, "step_ms": round(med[f"{t} step"], 3), "step_gflops": round(gflops, 1),
                "share_of_peak": round(gflops / cpu["peak_gflops"], 3) if cpu["peak_gflops"] else None,
                "solve_ms_per_puzzle": round(med[f"{t} solve"], 2), "host_overhead": round(med[f"{t} overhead"], 4),
                "outside_us_per_puzzle": round(med[f"{t} outside_us"], 1),
            })  # fmt: skip
    out = {"cpu": cpu, "step_gflop_per_call": {b: f / 1e9 for b, f in flops.items()}, "rounds": a.rounds, "rows": rows}
    print(f"CPU: {cpu['model']}, {cpu['cores']} cores at {cpu['ghz']} GHz; nominal fp32 peak {cpu['peak_gflops']} "
          f"GFLOP/s ({cpu['note']})")  # fmt: skip
    print(f"{'setting':>10} {'batch':>5} {'step ms':>9} {'GFLOP/s':>8} {'of peak':>8} {'solve ms/puzzle':>16} "
          f"{'outside onnxruntime':>20} {'us/puzzle':>10}")  # fmt: skip
    for r in rows:
        share = f"{100 * r['share_of_peak']:.0f} %" if r["share_of_peak"] is not None else "–"
        print(f"{r['spin']:>10} {r['batch']:>5} {r['step_ms']:>9.2f} {r['step_gflops']:>8.1f} {share:>8} "
              f"{r['solve_ms_per_puzzle']:>16.2f} {100 * r['host_overhead']:>19.2f} % "
              f"{r['outside_us_per_puzzle']:>10.0f}")  # fmt: skip
    if a.out:
        a.out.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
