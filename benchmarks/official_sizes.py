"""Official-size HRM / TRM (random init, written in the reference layout) through every stage.

Per model (tests/reference_checkpoints.py OFFICIAL: HRM 27 M Sudoku, TRM-attention 7 M Maze seq 900, TRM-MLP 5 M
Sudoku): parameters; load time; per form (step graphs, Loop, unrolled) export time, peak RSS of a process that
loads and exports only that form, and MB on disk; then `edgekit export` of a recipe with int8 / int8 weight-only /
float16 variants on a random dataset folder in the reference layout (whole-pipeline peak RSS and wall time);
onnxruntime latency per step at batch 1 and 8, float32 vs each variant side by side; halting agreement of each
variant with float32; `edgekit check --target jetson-orin-nano`. Random weights: accuracy means nothing here,
only speed, size and memory do (the bundled demo models carry the accuracy results).

    .venv/bin/python benchmarks/official_sizes.py [--models hrm-sudoku,...] [--out official.json]
        [--openvino int8,bf16] [--openvino-batch 1,8]

--openvino also times the step graph on OpenVINO's CPU plugin at those precisions (int8: the int8_weight_only
variant's INT8 weights, activations quantized at run time; needs that mode in --modes) against onnxruntime float32,
interleaved round by round, at batch 1 and 8.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from reference_checkpoints import OFFICIAL, write_reference_checkpoint  # noqa: E402

FORM_CHILD = """
import json, resource, sys, time
from pathlib import Path
from edgekit.models.checkpoint import load_model
from edgekit.export.onnx_export import export_loop, export_step_graphs, export_unrolled
ck, out, form, seq = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
t = time.perf_counter(); m = load_model(ck, seq_len=seq, forward_dtype="float32"); load = time.perf_counter() - t
out.mkdir(parents=True, exist_ok=True)
t = time.perf_counter()
if form == "step" or not (out / "step.onnx").exists():
    export_step_graphs(m, out)
t_step = time.perf_counter() - t
t = time.perf_counter()
if form == "loop":
    export_loop(m, out, out / "loop.onnx")
if form == "unrolled":
    export_unrolled(m, out, out / "unrolled.onnx")
t_form = time.perf_counter() - t
params = sum(p.numel() for p in m.parameters())
print(json.dumps({"load_s": load, "step_s": t_step, "form_s": t_form, "params": params,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _child(args: list[str]) -> dict:
    r = subprocess.run([sys.executable, "-c", FORM_CHILD, *args], capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def _dataset(folder: Path, seq: int, vocab: int, n: int) -> None:
    from edgekit.tasks.files import write_reference_layout

    rng = np.random.default_rng(0)
    splits = {
        s: (rng.integers(1, vocab, (n, seq)), rng.integers(1, vocab, (n, seq)))
        for s, n in [("test", n), ("train", 2 * n)]
    }
    write_reference_layout(folder, splits, vocab_size=vocab)


def _step_feed(r: Any, batch: int, seq: int, vocab: int) -> dict[str, np.ndarray]:
    """The step graph's inputs at `batch`: states as the encode graph and the initial state give them."""
    x_in = np.random.default_rng(1).integers(1, vocab, (batch, seq))
    x = r._call("encode", {"inputs": x_in})[0]
    return {**dict(zip(r.state_names, r.initial_state(x))), "x": x}


def _step_ms(folder: Path, variant: str, batch: int, seq: int, vocab: int, repeats: int = 5) -> float:
    """Median ms of one step-graph call at `batch`."""
    from edgekit.runtime import Runner

    r = Runner(folder, variant=variant)
    feed = _step_feed(r, batch, seq, vocab)
    r._call("step", feed)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        r._call("step", feed)
        times.append((time.perf_counter() - t) * 1000)
    return float(np.median(times))


def _openvino_step(folder: Path, precisions: list[str], seq: int, vocab: int, batches: tuple, rounds: int = 7) -> dict:
    """Median ms of one step-graph call per configuration (onnxruntime float32 first, then OpenVINO at each
    precision), the configurations interleaved call by call in each round, and each one's median per-round speed-up
    over onnxruntime, at each batch size."""
    from edgekit.runtime import Runner, open_runner

    runners = {"onnxruntime f32": Runner(folder, threads=None)}
    runners |= {f"openvino {p}": open_runner(folder, backend="openvino", precision=p) for p in precisions}
    out: dict = {}
    for batch in batches:
        feed = _step_feed(runners["onnxruntime f32"], batch, seq, vocab)
        times: dict[str, list[float]] = {k: [] for k in runners}
        for r in runners.values():
            r._call("step", feed)  # compile, first-shape costs
        for _ in range(rounds):
            for k, r in runners.items():
                t = time.perf_counter()
                r._call("step", feed)
                times[k].append((time.perf_counter() - t) * 1000)
        ratios = {k: float(np.median(np.array(times["onnxruntime f32"]) / np.array(v))) for k, v in times.items()}
        out[f"b{batch}"] = {k: {"ms": round(float(np.median(v)), 2), "speedup": round(ratios[k], 2)}
                            for k, v in times.items()}  # fmt: skip
    return out


def measure(
    name: str, work: Path, modes: list[str], n: int = 8, openvino: list[str] | None = None, ov_batches: tuple = (1, 8)
) -> dict:
    cfg = OFFICIAL[name]
    ck = write_reference_checkpoint(work / name, cfg)
    row: dict = {"model": name, "checkpoint_mb": round((ck / "checkpoint").stat().st_size / 1e6, 1), "forms": {}}
    for form in ("step", "loop", "unrolled"):
        out = work / f"{name}-{form}"
        r = _child([str(ck), str(out), form, str(cfg["seq_len"])])
        f = {"step": ["encode.onnx", "step.onnx", "readout.onnx"], "loop": ["loop.onnx"], "unrolled": ["unrolled.onnx"]}
        mb = sum((out / n).stat().st_size for n in f[form]) / 1e6
        row.update(params=r["params"], load_s=round(r["load_s"], 2))
        secs = r["step_s"] if form == "step" else r["form_s"]
        row["forms"][form] = {"export_s": round(secs, 1), "peak_rss_mb": round(r["peak_rss_mb"]), "mb": round(mb, 1)}
        print(name, form, row["forms"][form], flush=True)
    data = work / f"{name}-data"
    _dataset(data, cfg["seq_len"], cfg["vocab_size"], n)
    recipe = work / f"{name}.yaml"
    art = work / f"{name}-artefact"
    recipe.write_text(
        f"name: {name}\nmodel: {{path: {ck}}}\ntask: {{name: sequence, data: {data}, n: {n}}}\ntarget: x86-cpu\n"
        "export: {forms: [step, loop], precisions: [float32]}\n"
        f"validate: {{halt_calibration_n: {n}, batch_size: {n}}}\n"
        "gates: {min_exact: null, max_exact_drop: null}\n"
        f"quantize: {{modes: [{', '.join(modes)}], calibration: {{n: {min(n, 2)}, batch: 2}}, search: {{n: {n}}}}}\n"
        f"output: {art}\n"
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "edgekit.cli", "export", str(recipe)], capture_output=True, text=True)
    row["pipeline"] = {
        "exit_code": p.returncode,
        "wall_s": round(time.perf_counter() - t, 1),
        "peak_rss_mb": round(max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024),
        "stderr_tail": p.stderr.strip().splitlines()[-1:] if p.returncode else [],
    }
    print(name, "pipeline", row["pipeline"], flush=True)
    if p.returncode not in (0, 3):
        return row
    res = json.loads((art / "results.json").read_text())
    manifest = json.loads((art / "manifest.json").read_text())
    row["variants"] = {}
    for v in manifest["variants"]:
        e = next((x for x in res["variants"] if x["name"] == v), {})
        agree = e.get("vs_onnx_float32", {}).get("halting_step_agreement")
        row["variants"][v] = {
            "mb": round(e.get("bytes", 0) / 1e6, 1),
            "step_ms_b1": round(_step_ms(art, v, 1, cfg["seq_len"], cfg["vocab_size"]), 2),
            "step_ms_b8": round(_step_ms(art, v, 8, cfg["seq_len"], cfg["vocab_size"]), 2),
            "halting_agreement_vs_float32": agree,
        }
        print(name, v, row["variants"][v], flush=True)
    if openvino:
        row["openvino_step"] = _openvino_step(art, openvino, cfg["seq_len"], cfg["vocab_size"], ov_batches)
        print(name, "openvino step", row["openvino_step"], flush=True)
    c = subprocess.run(
        [sys.executable, "-m", "edgekit.cli", "check", str(art), "--target", "jetson-orin-nano", "--json"],
        capture_output=True,
        text=True,
    )
    try:
        rep = json.loads(c.stdout)
        row["check_jetson_orin_nano"] = {
            "exit_code": c.returncode,
            "verdict": rep["verdict"],
            "errors": sorted(
                {f"{f['file']}: {f['message'][:160]}" for f in rep["findings"] if f["severity"] == "error"}
            )[:6],
            "memory": rep.get("memory"),
        }
    except json.JSONDecodeError:
        row["check_jetson_orin_nano"] = {"exit_code": c.returncode, "stderr": c.stderr[-300:]}
    print(name, "check", row["check_jetson_orin_nano"], flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(OFFICIAL))
    ap.add_argument("--modes", default="int8,int8_weight_only,float16")
    ap.add_argument("--n", type=int, default=8, help="validation examples (calibration: min(n, 2) trajectories)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--openvino", default="", help="OpenVINO precisions to time the step graph at (e.g. int8,bf16)")
    ap.add_argument("--openvino-batch", default="1,8", help="batch sizes of --openvino's timing")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            ov = [p for p in args.openvino.split(",") if p]
            batches = tuple(int(b) for b in args.openvino_batch.split(","))
            rows.append(measure(name, Path(tmp), args.modes.split(","), args.n, ov, batches))
    text = json.dumps(rows, indent=1)
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
