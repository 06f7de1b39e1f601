"""onnxruntime's memory pattern (`SessionOptions.enable_mem_pattern`) on and off, side by side.

The memory pattern plans one arena block per input shape a session has seen, next to the arena's own blocks, so
two chunks of the same size can hold about twice a call's activations. This compares, on the float32 graphs of an
artefact (default: the demo's):
- speed, the two settings interleaved round by round (ABAB) in one process: the step graph alone at batch 1 and
  64 (median ms per call) and the host loop as deployed (Runner.solve with early halting) on `--puzzles` puzzles
  one by one and 64 puzzles in one batch (ms per puzzle); each ratio off/on is the median of the per-round ratios;
- peak memory, each setting in a fresh process (alternating, `--mem-repeats` times each): resident set before
  solving and its peak (VmHWM) while solving `--chunks` chunks of `--chunk` puzzles each.
The load average is recorded before and after: on a busy machine only the interleaved ratios mean much.

    .venv/bin/python benchmarks/mem_pattern.py [--artefact PATH] [--rounds 5] [--out mem_pattern.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SETTINGS = {"on": True, "off": False}  # enable_mem_pattern

# one setting's memory in a fresh process: RSS after the sessions exist, then the peak while solving
MEMORY = """
import json, sys
import numpy as np
from edgekit.runtime import Runner
from edgekit.tasks.files import open_data

def kb(field):
    return int([ln.split()[1] for ln in open("/proc/self/status") if ln.startswith(field)][0])

art, data, on, chunk, chunks = sys.argv[1], sys.argv[2], sys.argv[3] == "1", int(sys.argv[4]), int(sys.argv[5])
x = np.asarray(open_data(data, "test").inputs[0][:chunk]).astype(np.int64)
x = np.concatenate([x] * (chunk * chunks // len(x) + 1))[: chunk * chunks]
r = Runner(art, variant="float32", chunk_size=chunk).validated_settings()
r.opts.enable_mem_pattern = on
r.solve(x[:1])  # sessions created
before = kb("VmRSS")
r.solve(x)
print(json.dumps({"rss_before_mb": before / 1024, "peak_mb": kb("VmHWM") / 1024}))
"""


def _runner(art: Path, on: bool):
    from edgekit.runtime import Runner

    r = Runner(art, variant="float32").validated_settings()
    r.opts.enable_mem_pattern = on  # before the first call: sessions are created on first use
    return r


def _ms(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def _speed(art: Path, x_all: np.ndarray, rounds: int, puzzles: int) -> dict[str, float]:
    runners = {tag: _runner(art, on) for tag, on in SETTINGS.items()}
    for r in runners.values():  # sessions and warm-up
        r.solve(x_all[:1])
        r.solve(x_all)
    per_round: dict[str, list[float]] = {}
    for _ in range(rounds):
        for tag, r in runners.items():
            for b in (1, 64):
                x = r.call("encode", {"inputs": r.check_inputs(x_all[:b])})[0]
                state = r.initial_state(x)
                feeds = {**dict(zip(r.state_names, state)), "x": x}
                calls = [_ms(partial(r.call, "step", feeds)) for _ in range(5 if b == 1 else 2)]
                per_round.setdefault(f"{tag} b{b} step_ms", []).append(float(np.median(calls)))
                n = puzzles if b == 1 else 64  # batch 1: `puzzles` solves one by one; batch 64: one solve
                t0 = time.perf_counter()
                for i in range(0, n, b):
                    r.solve(x_all[i : i + b])
                per_round.setdefault(f"{tag} b{b} solve_ms_per_puzzle", []).append(
                    (time.perf_counter() - t0) * 1000 / n
                )
    out = {k: round(float(np.median(v)), 3) for k, v in per_round.items()}
    for b in (1, 64):
        for what in ("step_ms", "solve_ms_per_puzzle"):
            ratios = np.array(per_round[f"off b{b} {what}"]) / np.array(per_round[f"on b{b} {what}"])
            out[f"b{b} {what} off/on"] = round(float(np.median(ratios)), 4)
    return out


def _memory(art: Path, data: Path, chunk: int, chunks: int, repeats: int) -> dict[str, dict[str, float]]:
    got: dict[str, list[dict[str, float]]] = {}
    for _ in range(repeats):
        for tag, on in SETTINGS.items():
            p = subprocess.run(
                [sys.executable, "-c", MEMORY, str(art), str(data), "1" if on else "0", str(chunk), str(chunks)],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            got.setdefault(tag, []).append(json.loads(p.stdout.strip().splitlines()[-1]))
    return {
        tag: {k: round(float(np.median([r[k] for r in rows])), 1) for k in rows[0]}
        | {"solve_mb": round(float(np.median([r["peak_mb"] - r["rss_before_mb"] for r in rows])), 1)}
        for tag, rows in got.items()
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artefact", type=Path, default=ROOT / "artefacts" / "trm-sudoku")
    ap.add_argument("--data", type=Path, default=ROOT / "examples" / "data" / "sudoku-demo")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--puzzles", type=int, default=64, help="puzzles solved one by one per round at batch 1")
    ap.add_argument("--chunk", type=int, default=256, help="puzzles per graph call in the memory runs")
    ap.add_argument("--chunks", type=int, default=2, help="chunks of that size solved in the memory runs")
    ap.add_argument("--mem-repeats", type=int, default=2)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args(argv)
    from edgekit.tasks.files import open_data

    load_before = os.getloadavg()
    x_all = np.asarray(open_data(a.data, "test").inputs[0][:64]).astype(np.int64)
    speed = _speed(a.artefact, x_all, a.rounds, a.puzzles)
    memory = _memory(a.artefact, a.data, a.chunk, a.chunks, a.mem_repeats)
    load_after = os.getloadavg()
    out = {
        "artefact": str(a.artefact),
        "rounds": a.rounds,
        "puzzles_at_batch_1": a.puzzles,
        "cpus": os.cpu_count(),
        "load_before": [round(v, 2) for v in load_before],
        "load_after": [round(v, 2) for v in load_after],
        "speed": speed,
        "memory": {"chunk": a.chunk, "chunks": a.chunks, "repeats": a.mem_repeats, **memory},
    }
    print(json.dumps(out, indent=1))
    if a.out:
        a.out.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
