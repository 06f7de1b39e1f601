"""The edgekit runtime vs reference-style PyTorch evaluation, on the bundled TRM Sudoku model, in one process.

Baseline (what the reference repositories do at evaluation): eager PyTorch in float32
(`load_model(path, forward_dtype="float32")`), always 16 ACT steps, readout only after the last step, under
`torch.inference_mode()`, torch's default thread count. The same baseline with 1 torch thread is measured too:
on a shared, oversubscribed CPU torch's default OpenMP pool can be pathologically slow, and a speedup measured
only against that would flatter edgekit. With `--trm-repo PATH` (a TinyRecursiveModels checkout, e.g.
`git clone https://github.com/SamsungSAILMontreal/TinyRecursiveModels /tmp/ref/trm`) the reference
implementation's own evaluation loop runs on the same weights as a third baseline (its model class, 16 calls of
`model(carry, batch)`, float32), which is what users run today.

`--reference-precision bfloat16` (or `both`) runs the baselines in bfloat16, the reference's own forward dtype: on a
CPU without AVX512-BF16 that is ~15x slower than float32 (so float32 is the default, lest it flatter edgekit), but
with AVX512-BF16 or AMX it may be the faster one. Each baseline's precision, time and exact accuracy are reported;
with several, speedups are against the FASTER reference baseline at each batch size (the repo's eval loop when
--trm-repo is given, else the eager model with torch's default threads). `--openvino` adds the runtime's OpenVINO
backend (host loop, f32 and bf16 where the CPU offers it, int8 where the artefact has the int8_weight_only variant)
to the edgekit configurations.

Configurations: every precision variant in the artefact x the runtime modes (host loop with batch compaction,
host loop without compaction, the ONNX Loop form, the unrolled 16-step graph), with the default halting
threshold (0) and, for the halting modes, the calibrated threshold given by --halt-threshold (default 4: chosen
on the recipe's validation puzzles, seed 123, where it recovers the full-budget accuracy; measured here on
puzzles from a different seed).

Measurement: all configurations are timed round-robin (call by call, interleaved) so that load from other
processes spreads over all of them rather than hitting one; batch-1 latency on the first puzzles one at a time,
batch-64 latency and exact accuracy on all puzzles in batches of 64. Speedup = baseline time per puzzle /
configuration time per puzzle. Also reported: achieved GFLOP/s vs an estimate of the CPU's peak (MatMul/Gemm
FLOPs of the ONNX step graph x steps executed), steps saved by early halting, onnxruntime's per-op-type time
on the step graph, and the host loop's own overhead (time outside `session.run`).

    .venv/bin/python benchmarks/runtime_vs_pytorch.py [--artefact PATH] [--trm-repo PATH] [--quick] [--out FILE]
        [--reference-precision float32|bfloat16|both] [--openvino]

The goal line: the best edgekit configuration whose exact accuracy is within 0.5 point of the reference's (every
reference precision measured: the stricter) against the faster reference, at batch 1 and the large batch, >= 10x.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MODEL = ROOT / "examples" / "models" / "trm-sudoku"
RECIPE = ROOT / "recipes" / "trm-sudoku.yaml"
EVAL_SEED = 2026  # disjoint from training (pool seed 1000), the training evals (99) and calibration (123)
GIVENS = (28, 40)  # the recipe's distribution

from benchmarks.export_forms import table  # noqa: E402

SHORT = {"float32": "fp32", "bfloat16": "bf16"}  # torch dtypes as the labels spell them
REFERENCE_PRECISIONS = {"float32": ["float32"], "bfloat16": ["bfloat16"], "both": ["float32", "bfloat16"]}
OV_PRECISIONS = ("f32", "bf16", "int8")
GOAL_SPEEDUP, GOAL_ACCURACY_PTS = 10.0, 0.5


# -- small helpers ----------------------------------------------------------------------------------------------------
def cpu_info() -> dict:
    """Cores, clock (from /proc/cpuinfo 'cpu MHz') and an estimated fp32 peak: cores x GHz x 64 FLOP/cycle
    (AVX-512 FMA: 2 FMA units x 16 lanes x 2). AMD Zen 4 runs AVX-512 on 256-bit units, so its real peak is half."""
    mhz, model, family, cpu_model, flags = [], "?", None, None, ""
    try:
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            k, _, v = ln.partition(":")
            k, v = k.strip(), v.strip()
            if k == "cpu MHz":
                mhz.append(float(v))
            elif k == "model name":
                model = v
            elif k == "cpu family" and family is None:
                family = int(v)
            elif k == "model" and cpu_model is None:
                cpu_model = int(v)
            elif k == "flags" and not flags:
                flags = v
    except OSError:
        pass
    cores = os.cpu_count() or 1
    ghz = (float(np.mean(mhz)) if mhz else 0.0) / 1000.0
    per_cycle = 64 if "avx512f" in flags.split() else 32
    zen4 = "AMD" in model.upper() and family == 25 and per_cycle == 64
    # AMD Zen / Zen+ (family 23, models below 0x30) execute AVX2 on two 128-bit FMA units: 16 fp32 FLOP/cycle
    zen1 = "AMD" in model.upper() and family == 23 and (cpu_model or 0) < 0x30
    if zen1:
        per_cycle = 16
    return {
        "model": model,
        "cores": cores,
        "ghz": round(ghz, 3),
        "flop_per_cycle": per_cycle,
        "peak_gflops": round(cores * ghz * per_cycle, 1),
        "note": f"estimate: cores x clock x {per_cycle} FLOP/cycle"
        + (" (Zen/Zen+: 2 FMA units x 4 fp32 lanes x 2)" if zen1 else " (2 FMA units x lanes x 2)")
        + (
            "; this is AMD Zen 4 (family 25), which executes AVX-512 on 256-bit units, so at this clock its realistic "
            "peak is half; the clock is the nominal one a VM reports, boost clocks are higher"
            if zen4
            else ""
        ),
    }


def matmul_flops(onnx_path: Path, batch: int = 1) -> int:
    """FLOPs of one call of a graph: 2 x M x N x K for every MatMul / Gemm (2 x output elements x K), shapes from
    `onnx.shape_inference` with the symbolic batch dimension fixed to `batch`; where the step graph's dynamic
    reshapes defeat it, onnxruntime's symbolic shape inference (same idea, with shape-data propagation) fills in."""
    import onnx

    m = onnx.load(str(onnx_path))
    for vi in list(m.graph.input) + list(m.graph.output):
        for d in vi.type.tensor_type.shape.dim:
            if d.dim_param:
                d.dim_value = batch

    def shapes_of(model) -> dict[str, list[int | None]]:
        sh = {
            vi.name: [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]
            for vi in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output)
        }
        sh.update({t.name: list(t.dims) for t in model.graph.initializer})
        return sh

    mm = [n for n in m.graph.node if n.op_type in ("MatMul", "Gemm")]
    known = lambda sh, n: all(sh.get(t) and None not in sh[t] for t in (n.input[0], n.output[0]))  # noqa: E731
    shapes = shapes_of(onnx.shape_inference.infer_shapes(m, data_prop=True))
    if not all(known(shapes, n) for n in mm):
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

        shapes = shapes_of(SymbolicShapeInference.infer_shapes(m, auto_merge=True))
    total = 0
    for n in mm:
        if not known(shapes, n):
            raise RuntimeError(f"no static shape for {n.op_type} {n.name} in {onnx_path.name}")
        a, out = shapes[n.input[0]], shapes[n.output[0]]
        trans_a = n.op_type == "Gemm" and any(at.name == "transA" and at.i for at in n.attribute)
        total += 2 * int(np.prod(out)) * int(a[-2] if trans_a else a[-1])
    return total


def givens_distribution(x: np.ndarray) -> dict:
    g = (x > 1).sum(1)
    buckets = {
        f"{lo}-{hi}": int(((g >= lo) & (g <= hi)).sum())
        for lo, hi in ((17, 27), (28, 31), (32, 35), (36, 40), (41, 81))
    }
    return {
        "min": int(g.min()),
        "max": int(g.max()),
        "mean": round(float(g.mean()), 2),
        "buckets": {k: v for k, v in buckets.items() if v},
    }


# -- configurations ---------------------------------------------------------------------------------------------------
@dataclass
class Config:
    name: str
    solve: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # inputs -> (preds [B, 81], steps [B])
    executed: str  # how FLOPs are executed: "full" (B x 16), "sum" (sum of steps), "max" (B x max steps)
    kind: str = "ort"
    variant: str = "float32"
    precision: str = "float32"  # the torch dtype of a baseline, the OpenVINO precision, or the ONNX variant
    reference: bool = False  # a reference baseline: speedups are against the faster of these
    timer: object | None = None  # SessionTimer for host-mode configs
    lat: dict[int, list[float]] = field(default_factory=lambda: {})
    steps: dict[int, list[np.ndarray]] = field(default_factory=lambda: {})
    exec_steps: dict[int, float] = field(default_factory=lambda: {})  # sample-steps executed, summed over timed calls
    correct: list[np.ndarray] = field(default_factory=list)
    session_s: dict[int, float] = field(default_factory=lambda: {})

    def timed(self, x: np.ndarray, batch: int) -> np.ndarray:
        if self.timer is not None:
            self.timer.reset()
        t0 = time.perf_counter()
        preds, steps = self.solve(x)
        dt = time.perf_counter() - t0
        self.lat.setdefault(batch, []).append(dt * 1000.0)
        self.steps.setdefault(batch, []).append(steps)
        ex = {"full": len(x) * 16, "sum": float(steps.sum()), "max": len(x) * float(steps.max())}[self.executed]
        self.exec_steps[batch] = self.exec_steps.get(batch, 0.0) + ex
        if self.timer is not None:
            self.session_s[batch] = self.session_s.get(batch, 0.0) + self.timer.total
        return preds


def torch_config(model, threads: int, label: str, precision: str = "float32", reference: bool = False) -> Config:
    import torch

    @torch.inference_mode()
    def solve(x: np.ndarray):
        torch.set_num_threads(threads)
        xx = model.encode(torch.from_numpy(x))
        state = model.initial_state(xx)
        for _ in range(model.step_budget):  # the references' eval: always the full budget
            state = model.step(state, xx)
        logits = model.readout(state).logits
        return logits.argmax(-1).numpy(), np.full(len(x), model.step_budget)

    return Config(label, solve, "full", kind="torch", precision=precision, reference=reference)


def reference_repo_config(repo: Path, threads: int, precision: str = "float32") -> Config:
    """The reference implementation's own evaluation loop on the demo weights: the model class of the
    TinyRecursiveModels checkout at `repo` (imported as its training code does), `carry, out = model(carry, batch)`
    16 times (its eval: every sample runs the full budget), in `precision` (its config's `forward_dtype`; float32 by
    default: the checkpoint's bfloat16 is ~15x slower on CPUs without AVX512-BF16, which would flatter edgekit).
    The float32 weights are loaded in both precisions; the reference casts them to bfloat16 as it runs."""
    import torch
    import yaml

    sys.path.insert(0, str(ROOT / "examples"))
    from compare_reference import import_reference

    from edgekit.models import load_model

    raw = yaml.safe_load((MODEL / "all_config.yaml").read_text())
    plain = load_model(MODEL, forward_dtype="float32").state_dict()
    cfg = {k: v for k, v in raw["arch"].items() if k not in ("name", "loss")}
    cfg.update(batch_size=64, seq_len=81, vocab_size=plain["embed_tokens.embedding_weight"].shape[0],
               num_puzzle_identifiers=plain["puzzle_emb.weights"].shape[0], halt_exploration_prob=0.1,
               forward_dtype=precision)  # fmt: skip
    model = import_reference(repo, raw["arch"]["name"])(cfg)
    missing, unexpected = model.inner.load_state_dict(plain, strict=False)
    assert not unexpected and all("local_" in m or "cached" in m for m in missing), (missing, unexpected)
    model.eval()
    steps = int(raw["arch"]["halt_max_steps"])

    @torch.inference_mode()
    def solve(x: np.ndarray):
        torch.set_num_threads(threads)
        xt = torch.from_numpy(x).int()
        batch = {"inputs": xt, "labels": xt, "puzzle_identifiers": torch.zeros(len(x), dtype=torch.int32)}
        carry = model.initial_carry(batch)
        for _ in range(steps):
            carry, out = model(carry, batch)
        return out["logits"].argmax(-1).numpy(), np.full(len(x), steps)

    label = f"reference repo eval loop (TinyRecursiveModels, {SHORT[precision]}), {threads} threads"
    return Config(label, solve, "full", "torch", precision=precision, reference=True)


def ort_configs(artefact: Path, variants: list[str], threads: int | None, calibrated: float) -> list[Config]:
    from edgekit.runtime import Runner
    from edgekit.runtime.bench import SessionTimer, available_modes

    out = []
    for v in variants:

        def mk(mode: str, compact: bool = True, thr: float | None = None, v: str = v):
            r = Runner(artefact, variant=v, threads=threads)
            timer = SessionTimer(r) if mode == "host" else None

            def solve(x, r=r):
                s = r.solve(x, mode=mode, compact=compact, threshold=thr)
                return s.preds, np.asarray(s.steps)

            label = {"host": "host" if compact else "host, no compaction", "loop": "loop", "unrolled": "unrolled"}[mode]
            if thr not in (None, 0.0) and mode != "unrolled":
                label += f", halt>{thr:g}"
            executed = "full" if mode == "unrolled" else ("sum" if mode == "host" and compact else "max")
            return Config(f"edgekit {v} {label}", solve, executed, variant=v, timer=timer)

        have = available_modes(Runner(artefact, variant=v))
        if "host" in have:
            out += [mk("host"), mk("host", compact=False)]
        if "loop" in have:
            out.append(mk("loop"))
        if "unrolled" in have:
            out.append(mk("unrolled"))
        if calibrated:
            if "host" in have:
                out.append(mk("host", thr=calibrated))
            if "loop" in have:
                out.append(mk("loop", thr=calibrated))
    return out


def openvino_configs(
    artefact: Path, threads: int | None, calibrated: float, cache_dir: Path, log: Callable[[str], None]
) -> list[Config]:
    """The runtime's OpenVINO backend on the CPU, host loop with compaction, at each precision this CPU offers
    (f32; bf16 with AVX512-BF16 or AMX; int8 on an artefact with the int8_weight_only variant), at the default and
    the calibrated halting threshold. A precision the CPU or the artefact lacks is one log line, not an error."""
    from edgekit.runtime import ArtefactError, RuntimeInputError, open_runner

    out = []
    for p in OV_PRECISIONS:
        try:
            r = open_runner(
                artefact, backend="openvino", device="CPU", precision=p, threads=threads, cache_dir=cache_dir
            )
        except (ArtefactError, RuntimeInputError) as e:
            log(f"openvino {p} skipped: {e}")
            continue
        for thr in (None, calibrated) if calibrated else (None,):

            def solve(x, r=r, thr=thr):
                s = r.solve(x, mode="host", threshold=thr)
                return s.preds, np.asarray(s.steps)

            label = f"edgekit openvino {p} host" + (f", halt>{thr:g}" if thr else "")
            out.append(Config(label, solve, "sum", kind="openvino", precision=p))
    return out


def build_artefact(folder: Path, quick: bool, log: Callable[[str], None]) -> Path:
    """Export the demo recipe (all forms; float32 + float16, or float32 only with --quick) on few validation
    puzzles into `folder` (the benchmark measures its own puzzles)."""
    from edgekit.pipeline import run_export

    text = RECIPE.read_text()
    text = text.replace("path: ../examples/models/trm-sudoku", f"path: {MODEL}")
    text = text.replace("data: ../examples/data/sudoku-demo", f"data: {ROOT / 'examples/data/sudoku-demo'}")
    text = text.replace("n: 256", f"n: {8 if quick else 16}").replace(
        "output: ../artefacts/trm-sudoku", f"output: {folder / 'artefact'}"
    )
    if quick:
        text = text.replace("precisions: [float32, float16]", "precisions: [float32]")
    recipe = folder / "trm-bench.yaml"
    recipe.write_text(text)
    t0 = time.perf_counter()
    out = run_export(recipe, log=lambda s: None)
    log(f"built artefact {out.folder} in {time.perf_counter() - t0:.0f} s (exit {out.exit_code})")
    return out.folder


def goal_summary(results: list[dict], big: int, ref_exact: float, acc_ref: str, faster: dict[int, str]) -> dict:
    """The goal: the best edgekit configuration whose exact accuracy is within GOAL_ACCURACY_PTS of the reference's,
    against the faster reference, at batch 1 and at `big`; met when one configuration is >= GOAL_SPEEDUP at both."""
    ok = [e for e in results if e["config"].startswith("edgekit") and e["delta_pp"] >= -GOAL_ACCURACY_PTS]
    per_batch = {}
    for b in (1, big):
        cand = [e for e in ok if f"b{b}" in e]
        if cand:
            w = max(cand, key=lambda e: e[f"b{b}"]["speedup"])
            per_batch[str(b)] = {"config": w["config"], "speedup": w[f"b{b}"]["speedup"], "delta_pp": w["delta_pp"]}
    both = [e for e in ok if "b1" in e and f"b{big}" in e]
    one = max(both, key=lambda e: min(e["b1"]["speedup"], e[f"b{big}"]["speedup"])) if both else None
    met = one is not None and min(one["b1"]["speedup"], one[f"b{big}"]["speedup"]) >= GOAL_SPEEDUP
    head = (
        f"goal: edgekit within {GOAL_ACCURACY_PTS:g} pt of the reference's exact {ref_exact:.3f} ({acc_ref}), "
        f">= {GOAL_SPEEDUP:g}x the faster reference (b1: {faster[1]}; b{big}: {faster[big]})"
    )
    if one is None:
        line = f"{head}: no edgekit configuration within {GOAL_ACCURACY_PTS:g} pt -> NOT met"
    else:
        bests = "; ".join(f"best at b{b}: {w['config']} {w['speedup']:.2f}x" for b, w in per_batch.items())
        line = (
            f"{head}: {bests}; one configuration at both: {one['config']} {one['b1']['speedup']:.2f}x at b1, "
            f"{one[f'b{big}']['speedup']:.2f}x at b{big}, {one['delta_pp']:+.1f} pts -> "
            f">= {GOAL_SPEEDUP:g}x: {'met' if met else 'NOT met'}"
        )
    return {
        "accuracy_within_pts": GOAL_ACCURACY_PTS,
        "speedup_target": GOAL_SPEEDUP,
        "reference_exact": ref_exact,
        "accuracy_reference": acc_ref,
        "faster_reference": {str(b): name for b, name in faster.items()},
        "best_per_batch": per_batch,
        "best_at_both": None
        if one is None
        else {
            "config": one["config"],
            "speedup_b1": one["b1"]["speedup"],
            f"speedup_b{big}": one[f"b{big}"]["speedup"],
            "delta_pp": one["delta_pp"],
        },
        "met": met,
        "line": line,
    }


# -- the run ----------------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--artefact", type=Path, help="an exported trm-sudoku artefact (default: export one into a temp folder)"
    )
    ap.add_argument("--quick", action="store_true", help="smoke run: few puzzles, batch 8 instead of 64, float32 only")
    ap.add_argument("--n", type=int, help="puzzles for the batch-64 runs and accuracy (default 128; quick 8)")
    ap.add_argument("--n1", type=int, help="puzzles run one at a time per edgekit config (default 12; quick 2)")
    ap.add_argument(
        "--n1-torch",
        type=int,
        help="puzzles run one at a time by the baselines, whose cost does not "
        "depend on the puzzle (always 16 steps) (default 4; quick 1)",
    )
    ap.add_argument("--batch", type=int, help="the large batch size (default 64; quick 8)")
    ap.add_argument(
        "--halt-threshold", type=float, default=4.0, help="calibrated halting threshold also measured (0 = skip)"
    )
    ap.add_argument("--threads", type=int, help="onnxruntime intra-op threads (default: onnxruntime's own)")
    ap.add_argument("--variants", nargs="*", help="variants to measure (default: all the artefact has)")
    ap.add_argument("--out", type=Path, help="also write the results as JSON here")
    ap.add_argument("--trm-repo", type=Path, help="a TinyRecursiveModels checkout: its eval loop is a baseline too")
    ap.add_argument(
        "--reference-precision",
        choices=sorted(REFERENCE_PRECISIONS),
        default="float32",
        help="the PyTorch baselines' forward dtype; 'both': each, speedups against the faster (default float32)",
    )
    ap.add_argument(
        "--torch-threads",
        type=int,
        help="torch threads for the baselines (default: torch's own; on an oversubscribed CPU 1 can be far faster)",
    )
    ap.add_argument(
        "--openvino", action="store_true", help="also the runtime's OpenVINO backend (host loop, f32, bf16, int8)"
    )
    a = ap.parse_args(argv)
    if a.openvino:
        try:
            import openvino  # noqa: F401
        except ImportError:
            print('--openvino needs OpenVINO: pip install "edgekit[openvino]"', file=sys.stderr)
            return 2
    n = a.n or (8 if a.quick else 128)
    n1 = a.n1 if a.n1 is not None else (2 if a.quick else 12)
    n1_torch = a.n1_torch if a.n1_torch is not None else (1 if a.quick else 4)
    big = a.batch or (8 if a.quick else 64)
    log = lambda s: print(f"• {s}", flush=True)  # noqa: E731
    t_start = time.perf_counter()
    load_start = os.getloadavg()

    import torch

    if a.torch_threads:
        torch.set_num_threads(a.torch_threads)
    default_threads = torch.get_num_threads()
    dflt = "" if a.torch_threads else " (default)"
    from edgekit.models import load_model
    from edgekit.runtime import Runner
    from edgekit.runtime.bench import profile_ops
    from edgekit.tasks import sudoku

    with tempfile.TemporaryDirectory() as tmp:
        artefact = a.artefact or build_artefact(Path(tmp), a.quick, log)
        manifest = json.loads((artefact / "manifest.json").read_text())
        variants = a.variants or list(manifest.get("variants") or {"float32": {}})

        t0 = time.perf_counter()
        pool = sudoku.SudokuPool.generate(min(n, 64), seed=EVAL_SEED)
        x, y = pool.sample(n, GIVENS, np.random.default_rng(EVAL_SEED), augment=False)
        dist = givens_distribution(x)
        log(
            f"{n} held-out puzzles (seed {EVAL_SEED}, {GIVENS[0]}-{GIVENS[1]} givens: {dist}) "
            f"in {time.perf_counter() - t0:.0f} s"
        )

        precisions = REFERENCE_PRECISIONS[a.reference_precision]
        models = {p: load_model(MODEL, forward_dtype=p) for p in precisions}
        # the reference baselines: the repo's eval loop, what users run today, where given; else the eager model
        configs = [reference_repo_config(a.trm_repo, default_threads, p) for p in precisions] if a.trm_repo else []
        configs += [
            torch_config(
                m,
                default_threads,
                f"pytorch {SHORT[p]} eager, 16 steps, {default_threads} threads{dflt}",
                p,
                reference=not a.trm_repo,
            )
            for p, m in models.items()
        ]
        if default_threads != 1:
            p = precisions[0]
            configs.append(torch_config(models[p], 1, f"pytorch {SHORT[p]} eager, 16 steps, 1 thread", p))
        configs += ort_configs(artefact, variants, a.threads, a.halt_threshold)
        if a.openvino:
            configs += openvino_configs(artefact, a.threads, a.halt_threshold, Path(tmp) / "openvino-cache", log)
        log(
            f"{len(configs)} configurations; torch default threads {default_threads}, "
            f"onnxruntime threads {a.threads or 'default'}"
        )

        for c in configs:  # warm-up: sessions, allocators, torch's thread pool; compiled shapes (not eager torch)
            c.solve(x[:1])
            if c.kind != "torch":
                c.solve(x[:big])
        # batch 1, round-robin over configurations
        for i in range(max(n1, n1_torch)):
            for c in configs:
                if i < (n1_torch if c.kind == "torch" else n1):
                    c.timed(x[i : i + 1], 1)
        log(f"batch 1 done ({time.perf_counter() - t_start:.0f} s)")
        # the large batch, round-robin; accuracy on every puzzle
        chunks = (
            [(x[i : i + big], y[i : i + big]) for i in range(0, n - big + 1, big)]
            if n >= big
            else [(np.resize(x, (big, x.shape[1])), np.resize(y, (big, y.shape[1])))]
        )
        for xb, yb in chunks:
            for c in configs:
                preds = c.timed(xb, big)
                c.correct.append((preds == yb).all(-1))
        log(f"batch {big} done ({time.perf_counter() - t_start:.0f} s)")

        # where the time goes: onnxruntime's profiler on the float32 step graph, at the large batch
        r = Runner(artefact, variant=variants[0], threads=a.threads)
        xb = chunks[0][0]
        xe = r._call("encode", {"inputs": xb})[0]
        feeds = {**dict(zip(r.state_names, r.initial_state(xe))), "x": xe}
        step_path = artefact / manifest["files"][r.graphs["step"]]
        prof = profile_ops(step_path, feeds, runs=2, threads=a.threads)
        flops_step = matmul_flops(
            artefact / manifest["files"][manifest["variants"]["float32"]["step"]]
            if "float32" in manifest.get("variants", {})
            else step_path
        )

    cpu = cpu_info()
    load_end = os.getloadavg()
    refs = [c for c in configs if c.reference]
    per_puzzle = lambda c, b: float(np.sum(c.lat[b]) / (len(c.lat[b]) * b)) if c.lat.get(b) else float("inf")  # noqa: E731
    exact_of = {c.name: float(np.concatenate(c.correct).mean()) for c in configs}
    faster = {b: min(refs, key=lambda c: per_puzzle(c, b)) for b in (1, big)}  # speedups are against these
    acc_ref = max(refs, key=lambda c: exact_of[c.name])  # accuracy: the stricter reference (first on a tie)
    base = faster[big]
    base_exact = exact_of[acc_ref.name]
    torch1 = next((c for c in configs if c.kind == "torch" and c.name.endswith("1 thread")), None)
    rows, results = [], []
    for c in configs:
        exact = exact_of[c.name]
        e = {
            "config": c.name,
            "kind": c.kind,
            "precision": c.precision,
            "reference": c.reference,
            "exact": exact,
            "delta_pp": 100.0 * (exact - base_exact),
        }
        for b in (1, big):
            if b not in c.lat:
                continue
            lat = np.array(c.lat[b])
            per = lat.sum() / (len(lat) * b)
            ref = per_puzzle(faster[b], b)
            steps = np.concatenate(c.steps[b])
            e[f"b{b}"] = {
                "calls": len(lat),
                "p50_ms": float(np.median(lat)),
                "p90_ms": float(np.percentile(lat, 90)),
                "per_puzzle_ms": float(per),
                "speedup": float(ref / per),
                "speedup_vs_torch_1_thread": float(np.array(torch1.lat[b]).sum() / (len(torch1.lat[b]) * b) / per)
                if torch1
                else None,
                "mean_steps": float(steps.mean()),
                "gflops": float(c.exec_steps[b] * flops_step / (lat.sum() / 1000.0) / 1e9),
            }
            if c.timer is not None and c.session_s.get(b):
                e[f"b{b}"]["host_overhead_share"] = float(1.0 - c.session_s[b] / (lat.sum() / 1000.0))
        st = np.concatenate(c.steps[big])
        e["steps_hist"] = {str(k): int(v) for k, v in zip(*np.unique(st, return_counts=True))}
        results.append(e)
        b1, bb = e.get("b1", {}), e.get(f"b{big}", {})
        f = lambda d, k, fmt: format(d[k], fmt) if d.get(k) is not None else "–"  # noqa: E731
        rows.append(
            [
                c.name,
                f(b1, "per_puzzle_ms", ".1f"),
                f(b1, "speedup", ".2f") + "x",
                f(b1, "speedup_vs_torch_1_thread", ".2f") + "x",
                f(bb, "p50_ms", ".0f"),
                f(bb, "per_puzzle_ms", ".2f"),
                f(bb, "speedup", ".2f") + "x",
                f(bb, "speedup_vs_torch_1_thread", ".2f") + "x",
                f"{exact:.3f}",
                f"{e['delta_pp']:+.1f}",
                f"{bb.get('mean_steps', 0):.2f}",
                f(b1, "gflops", ".1f"),
                f(bb, "gflops", ".1f"),
            ]
        )
    print()
    print(
        table(
            [
                "config",
                "b1 ms/puzzle",
                "b1 speedup",
                "vs torch 1t",
                f"b{big} ms/batch p50",
                f"b{big} ms/puzzle",
                f"b{big} speedup",
                "vs torch 1t",
                "exact",
                "Δ pts",
                "mean steps",
                "b1 GFLOP/s",
                f"b{big} GFLOP/s",
            ],
            rows,
            title=f"TRM Sudoku, {n} puzzles (seed {EVAL_SEED}; givens {dist}); "
            "speedup = baseline ms/puzzle / config ms/puzzle; "
            + (
                f"baseline: {base.name}, exact {base_exact:.3f}"
                if len(refs) == 1
                else f"baseline: the faster reference at each batch size (b1: {faster[1].name}; "
                f"b{big}: {faster[big].name}); Δ pts against {acc_ref.name}, exact {base_exact:.3f}"
            ),
        )
    )
    print()
    for c in refs:
        b1, bb = per_puzzle(c, 1), per_puzzle(c, big)
        at = [f"b{b}" for b in (1, big) if faster[b] is c] if len(refs) > 1 else []
        print(
            f"reference baseline {c.name}: {c.precision}, b1 {b1:.1f} ms/puzzle, b{big} {bb:.2f} ms/puzzle, "
            f"exact {exact_of[c.name]:.3f}" + (f"  <- the faster at {' and '.join(at)}" if at else "")
        )

    ok = [e for e in results if e["config"].startswith("edgekit") and e["delta_pp"] >= -1.0]
    best = {}
    for b in (1, big):
        cand = [e for e in ok if f"b{b}" in e]
        if cand:
            w = max(cand, key=lambda e: e[f"b{b}"]["speedup"])
            best[b] = {
                "config": w["config"],
                "speedup": w[f"b{b}"]["speedup"],
                "speedup_vs_torch_1_thread": w[f"b{b}"]["speedup_vs_torch_1_thread"],
                "delta_pp": w["delta_pp"],
            }
    print()
    for b, w in best.items():
        met = "met" if w["speedup"] >= 5.0 else "NOT met"
        vs1 = (
            f", {w['speedup_vs_torch_1_thread']:.2f}x vs torch with 1 thread" if w["speedup_vs_torch_1_thread"] else ""
        )
        print(
            f"best at batch {b} (accuracy loss <= 1 pt): {w['config']}: {w['speedup']:.2f}x vs baseline{vs1}, "
            f"{w['delta_pp']:+.1f} pts  -> target >= 5x: {met}"
        )
    if not best:
        print("no edgekit configuration kept accuracy within 1 point of the baseline")
    goal = goal_summary(results, big, base_exact, acc_ref.name, {b: c.name for b, c in faster.items()})
    print(goal["line"])

    host0 = next((e for e in results if e["config"].endswith(f"{variants[0]} host")), None)
    print()
    print(
        f"CPU: {cpu['model']}, {cpu['cores']} cores at {cpu['ghz']} GHz; "
        f"peak {cpu['peak_gflops']} GFLOP/s fp32 ({cpu['note']})"
    )
    print(
        f"step graph: {flops_step / 1e9:.3f} GFLOP per puzzle per step (MatMul/Gemm, from ONNX shape inference); "
        "GFLOP/s above = FLOPs executed (incl. frozen samples in loop / no-compaction modes) / wall time"
    )
    for e in results:
        if e["reference"] or e is host0:
            for b in (1, big):
                if f"b{b}" in e:
                    print(
                        f"  {e['config']} b{b}: {e[f'b{b}']['gflops']:.1f} GFLOP/s = "
                        f"{100 * e[f'b{b}']['gflops'] / cpu['peak_gflops']:.1f} % of peak"
                    )
    if host0:
        print(
            f"early halting: {host0['config']} mean {host0[f'b{big}']['mean_steps']:.2f} steps vs 16 "
            f"({100 * (1 - host0[f'b{big}']['mean_steps'] / 16):.0f} % of steps saved); "
            f"steps histogram {host0['steps_hist']}"
        )
        cal = next((e for e in results if e["config"].endswith(f"{variants[0]} host, halt>{a.halt_threshold:g}")), None)
        if cal:
            print(
                f"  with halt>{a.halt_threshold:g}: mean {cal[f'b{big}']['mean_steps']:.2f} steps, "
                f"exact {cal['exact']:.3f}; histogram {cal['steps_hist']}"
            )
        for b in (1, big):
            if host0.get(f"b{b}", {}).get("host_overhead_share") is not None:
                print(
                    f"  host-loop overhead (time outside session.run) at batch {b}: "
                    f"{100 * host0[f'b{b}']['host_overhead_share']:.1f} % of solve time"
                )
    top = list(prof["by_op"].items())[:8]
    print(
        f"onnxruntime profile of {step_path.name} ({variants[0]}) at batch {big}, 2 runs, "
        f"{prof['total_us'] / 1000:.0f} ms of kernel time: "
        + ", ".join(f"{op} {100 * v['share']:.1f} %" for op, v in top)
    )
    print(
        f"load average {load_start[0]:.1f} at start, {load_end[0]:.1f} at end (2-core machine shared with other jobs: "
        "absolute times are noisy; all configs were interleaved call by call); "
        f"total {time.perf_counter() - t_start:.0f} s"
    )

    if a.out:
        a.out.write_text(
            json.dumps(
                {
                    "puzzles": {"n": n, "seed": EVAL_SEED, "givens": list(GIVENS), "distribution": dist},
                    "batch_sizes": [1, big],
                    "n1": n1,
                    "n1_torch": n1_torch,
                    "torch_default_threads": default_threads,
                    "onnxruntime_threads": a.threads,
                    "halt_threshold_calibrated": a.halt_threshold,
                    "baseline": base.name,
                    "reference_precision": precisions,
                    "references": [
                        {
                            "config": c.name,
                            "precision": c.precision,
                            "exact": exact_of[c.name],
                            **{f"b{b}_per_puzzle_ms": per_puzzle(c, b) for b in (1, big)},
                        }
                        for c in refs
                    ],
                    "faster_reference": {str(b): c.name for b, c in faster.items()},
                    "accuracy_reference": {"config": acc_ref.name, "exact": base_exact},
                    "goal": {k: v for k, v in goal.items() if k != "line"},
                    "configs": results,
                    "best": {str(k): v for k, v in best.items()},
                    "flops_per_step": flops_step,
                    "cpu": cpu,
                    "profile_step": prof,
                    "load_average": {"start": load_start, "end": load_end},
                    "machine": {"python": platform.python_version(), "machine": platform.machine()},
                },
                indent=1,
            )
        )
        print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
