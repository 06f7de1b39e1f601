"""MatMulNBits 8-bit block sweep: step speed and halting agreement of each block size against float32.

`int8_nbits` stores weights in blocks of `quantize.weights.block_size` input channels with onnxruntime's
`accuracy_level` 4 (int8 compute, activations quantized per block at run time where the CPU has the kernels).
Smaller blocks follow the weights more closely; larger ones cost fewer scales and, with accuracy level 4, fewer
activation blocks. This script quantizes the artefact's float32 step graph at each block size (32, 64, 128, 256
and K: one block over the whole reduction axis, the next power of two at or above the largest K), then in one
process:
- times each step graph against float32 at batch 1 and 64, interleaved round by round (median of per-round
  ratios with a distribution-free 95 % interval);
- runs the deployed host loop (early halting at the artefact's threshold) on fresh puzzles with each block
  size's step graph in place of float32's, and scores the share halting at float32's step (Wilson interval)
  and the exact accuracy.

    .venv/bin/python benchmarks/nbits_blocks.py ARTEFACT [--blocks 32,64,128,256,K] [--n 1024] [--rounds 9]
        [--threads 2] [--out blocks.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.export_forms import table  # noqa: E402
from benchmarks.halting_agreement import wilson  # noqa: E402
from benchmarks.quantize_speed import interleaved, ratios  # noqa: E402


def whole_axis_block(model) -> int:  # noqa: ANN001 - onnx.ModelProto, imported lazily
    """The power of two at or above the largest reduction length of a MatMul with a constant 2-D weight."""
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    k = max(
        (
            numpy_helper.to_array(inits[n.input[1]]).shape[0]
            for n in model.graph.node
            if n.op_type == "MatMul" and n.input[1] in inits and len(inits[n.input[1]].dims) == 2
        ),
        default=16,
    )
    return 1 << max(4, (k - 1).bit_length())


def parse_blocks(text: str) -> list[str]:
    out = []
    for b in text.split(","):
        b = b.strip()
        if b != "K" and not (b.isdigit() and 16 <= int(b) <= 4096 and int(b) & (int(b) - 1) == 0):
            raise ValueError(f"block {b!r} is not K or a power of two between 16 and 4096")
        out.append(b)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artefact", type=Path)
    ap.add_argument("--blocks", default="32,64,128,256,K")
    ap.add_argument("--n", type=int, default=1024, help="fresh puzzles for halting agreement (28-40 givens)")
    ap.add_argument("--seed", type=int, default=9100)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    try:
        blocks = parse_blocks(a.blocks)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if a.n <= 0 or a.rounds <= 0 or a.threads <= 0:
        print("error: --n, --rounds and --threads must be positive", file=sys.stderr)
        return 2

    import onnx
    import onnxruntime as ort

    from edgekit.quantize import QuantizeError
    from edgekit.quantize.ort_backend import quantize_matmul_nbits
    from edgekit.runtime import ArtefactError, Runner
    from edgekit.tasks import sudoku
    from edgekit.tasks.metrics import exact_and_cell

    try:
        base = Runner(a.artefact, "float32", threads=a.threads)
    except ArtefactError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    step = onnx.load(str(base.graph_path("step")))
    # the artefact's own int8_nbits exclusions (the halting head stays float), else the recipe default's
    kf = (base.manifest.quantization_of("int8_nbits") or {}).get("keep_float") or {"patterns": [".*q_head.*"]}
    patterns, types = list(kf.get("patterns") or []), list(kf.get("types") or [])
    graphs: dict[str, bytes] = {"float32": step.SerializeToString()}
    refused: dict[str, str] = {}
    for b in blocks:
        size = whole_axis_block(step) if b == "K" else int(b)
        name = f"block {b} ({size})" if b == "K" else f"block {b}"
        try:
            q = quantize_matmul_nbits(onnx.load(str(base.graph_path("step"))), 8, size, patterns, types)
        except QuantizeError as e:  # onnxruntime's blockwise quantizer takes 16..256 only: say so, go on
            refused[name] = str(e).split(";")[0][:300]
            print(f"{name}: {refused[name]}")
            continue
        graphs[name] = q.SerializeToString()

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.intra_op_num_threads = a.threads
    sessions = {k: ort.InferenceSession(g, so) for k, g in graphs.items()}
    report: dict = {
        "artefact": str(a.artefact),
        "threads": a.threads,
        "rounds": a.rounds,
        "n": a.n,
        "load_before": os.getloadavg(),
        "step": {},
        "agreement": {},
    }
    rng = np.random.default_rng(0)
    for batch in (1, 64):
        feeds = {}
        for i in sessions["float32"].get_inputs():
            shape = [batch if not isinstance(d, int) else d for d in i.shape]
            feeds[i.name] = rng.standard_normal(shape).astype(np.float32)
        fns = {k: (lambda s=s, f=feeds: s.run(None, f)) for k, s in sessions.items()}
        per_round: dict = {}
        interleaved(fns, a.rounds if batch == 64 else 4 * a.rounds, per_round)
        report["step"][batch] = ratios(per_round)

    x, y = sudoku.SudokuPool.generate(a.n, seed=a.seed).sample(
        a.n, (28, 40), np.random.default_rng(a.seed), augment=False
    )
    answers = {}
    for k, g in graphs.items():
        r = Runner(a.artefact, "float32", threads=a.threads)
        r._open("step", g, f"step ({k})")  # the block size's step graph in float32's place
        res = [r.solve(x[i : i + 64], mode="host") for i in range(0, a.n, 64)]
        answers[k] = (np.concatenate([p.preds for p in res]), np.concatenate([p.steps for p in res]))
    rows = []
    for k in graphs:
        preds, steps = answers[k]
        same = float(np.mean(steps == answers["float32"][1]))
        exact, _ = exact_and_cell(preds.reshape(y.shape), y)
        lo, hi = wilson(same, a.n)
        report["agreement"][k] = {
            "same_halt": same,
            "same_halt_ci": [lo, hi],
            "exact": exact,
            "mean_steps": float(np.mean(steps)),
            "mb": len(graphs[k]) / 1e6,
        }
        s1, s64 = report["step"][1][k], report["step"][64][k]
        rows.append(
            [
                k,
                f"{len(graphs[k]) / 1e6:.2f}",
                f"{s1['speedup']:.2f}x",
                f"{s64['speedup']:.2f}x [{s64['interval'][0]:.2f}, {s64['interval'][1]:.2f}]",
                f"{same:.3f} [{lo:.3f}, {hi:.3f}]",
                f"{exact:.3f}",
            ]
        )
    report["load_after"] = os.getloadavg()
    report["refused"] = refused
    print(
        table(
            ["step graph", "MB", "b1 vs fp32", "b64 vs fp32 [95 % CI]", "same halt [95 % CI]", "exact"],
            rows,
            f"MatMulNBits 8-bit, accuracy_level 4, onnxruntime CPU, {a.threads} threads, {a.n} fresh puzzles; "
            f"load {report['load_before'][0]:.1f} -> {report['load_after'][0]:.1f}",
        )
    )
    if a.out:
        a.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
