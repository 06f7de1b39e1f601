"""The validation stage: every variant of an artefact against the PyTorch reference on task data, forms parity,
DEQ fixed-point report and gates; writes results.json, golden.npz, junit.xml, plots, report.md and the manifest's
hashes. `edgekit export` runs it last; `edgekit validate` re-runs it on an existing artefact.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..artefact import write_json
from ..errors import RecipeError
from ..manifest import Manifest
from ..schema import Recipe, load_target
from ..tasks import TaskData
from .outputs import RESULTS_SCHEMA_VERSION

__all__ = ["RESULTS_SCHEMA_VERSION", "onnx_rollout", "validate_artefact"]

FIDELITY_SAMPLES = 128  # trajectory cosine / drift: full-budget rollouts of both variants on this many samples


def runner_ids(runner, data: TaskData) -> np.ndarray | None:
    """The examples' puzzle identifiers for a runner whose model takes them (None otherwise)."""
    return data.puzzle_ids if runner.takes_puzzle_ids else None


def _torch_variant(
    model, data: TaskData, dtype: str, batch: int, weights_sha256: str | None = None, log=None, scale=None
):
    """The PyTorch reference at `dtype` (float32, bfloat16, ...), named pytorch_<dtype> in results.json."""
    from ..scale import reference_rollout
    from .compare import Variant

    name = f"pytorch ({dtype})"
    t0 = time.time()  # sharded on the validation's executor and device (edgekit/scale), cached per shard
    preds, halts, last = reference_rollout(model, data, batch, f"validating {name}", weights_sha256, log, scale)
    return Variant(name, preds, halts, last, time.time() - t0, key=f"pytorch_{dtype}")


def _entry(v, data: TaskData, thr: float, ref, parity_with, task=None, ref_thr: float | None = None) -> dict:
    """A variant's results.json entry at its halting threshold `thr` (`ref_thr`: the reference's, where the
    variant has its own)."""
    from .compare import agreement, variant_metrics

    sm = variant_metrics(v, data.labels, thr)
    e = {"name": v.key or v.name, "display": v.name, "metrics": sm.summary(), "seconds": round(v.seconds or 0.0, 3)}
    extra = task.answer_metrics(data, v.preds, v.halt, thr) if task is not None else None
    if extra is not None:
        e["task_metrics"] = {task.name: extra}
    if sm.halting_histogram() is not None:
        e["halting_histogram"] = sm.halting_histogram()
        e["halting_exact"] = sm.halting_exact_histogram()  # of those, exactly right at their halting step
    if ref is not None:
        e["vs_reference"] = agreement(v, ref, thr, data.labels, b_threshold=ref_thr)
    if parity_with is not None:
        # export parity: the same precision on both sides, so differences are the exporter's alone
        e["vs_pytorch_float32"] = agreement(v, parity_with, thr)
    return e


def onnx_rollout(runner, data: TaskData, name: str, batch: int, log=None, scale=None, steps: int | None = None):
    """Every step of every example through the variant's step graphs, read from the cache when these exact graph
    bytes ran on these examples before (see validate/reference.py); computed shard by shard on the executor of
    `scale` (edgekit/scale: default the command line's, else serial), each shard cached so a stopped run resumes.
    `steps`: steps recorded per example (None: the step budget; tune's test-time depth records more)."""
    from .compare import Variant
    from .reference import cached_rollout, keyed, onnx_rollout_key

    ids = runner_ids(runner, data)

    def compute():
        from ..scale import onnx_rollout as sharded_onnx_rollout

        return sharded_onnx_rollout(runner, data, batch, f"validating {name}", key, scale, steps)

    keys = [runner.graphs[g] for g in ("encode", "step", "readout")]
    extra = [k for k in ("initial_state", "puzzle_ids") if k in runner.manifest.files]
    files = [runner.file(k) for k in keys + extra]
    settings = [list(runner.providers), runner.state_names, runner.graph.state.initial.to_json(),
                runner.manifest.model.config]  # fmt: skip  # a DEQ's solver settings change its answers
    key = onnx_rollout_key(files, keyed(data.inputs, ids), steps or int(runner.graph.step_budget), settings)
    t0 = time.time()
    (preds, halts, last), hit = cached_rollout("onnx", key, compute, f"validating {name}", log)
    return Variant(name, preds, halts, last, time.time() - t0, key=runner.variant), hit


def measure_latency(tmp: Path, entries: list[dict], names: list[str], data: TaskData, v, log) -> None:
    """Per-puzzle latency of each ONNX variant on this machine, as a device answers (host loop with early halting
    and batch compaction at `latency_batch` over the first `latency_n` examples), the variants timed in turn in
    each of `latency_rounds` rounds (edgekit/runtime/latency.py): medians with their 95 % intervals, and each
    compressed variant's speed-up over float32 as the median of per-round ratios."""
    import os

    from ..runtime import Runner
    from ..runtime.latency import interleaved_latency

    runners = {name: Runner(tmp, variant=name, complete=False) for name in names}
    ids = data.puzzle_ids[: v.latency_n] if data.puzzle_ids is not None else None
    lat = interleaved_latency(runners, data.inputs[: v.latency_n], ids, v.latency_batch, v.latency_rounds)
    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    load = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    for name, e in zip(names, entries):
        n = min(v.latency_n, len(data.inputs))
        e["latency"] = {**lat[name], "batch": v.latency_batch, "examples": n, "machine": machine, "load_1min": load}
    log(
        "latency per puzzle: "
        + ", ".join(f"{n} {lat[n]['ms_per_puzzle']:.2f} ms" for n in names)
        + f" (batch {v.latency_batch}, median of {v.latency_rounds} interleaved rounds)"
    )


@dataclass
class _Run:
    """One validation: its inputs, the settings every step reads, and the files and entries it adds to."""

    tmp: Path
    recipe: Recipe
    native: Any
    fp32: Any
    data: TaskData
    manifest: Manifest
    log: Callable[[str], None]
    scale: Any  # edgekit.scale's ScaleRun: executor, workers, the references' and the ONNX graphs' device
    task: Any
    ref: Any  # the PyTorch reference (compare.Variant) the gates compare against
    fp32_v: Any  # float32 PyTorch, for export parity (the reference itself unless validate.reference is both)
    recorded: Any  # runtime.references.Recorder: what `edgekit verify --full` re-checks
    files: dict[str, str] = field(default_factory=dict)  # the manifest's files, validation's own added
    entries: list[dict] = field(default_factory=list)  # results.json's variants, PyTorch rows first
    solver_its: np.ndarray | None = None  # a DEQ's PyTorch solver iterations per example
    float32_ref: Any = None  # float32 PyTorch rolled out for validate.openvino where no reference is float32

    @property
    def thr(self) -> float:
        return float(self.manifest.graph.threshold)

    @property
    def bs(self) -> int:
        return self.recipe.validate_.batch_size

    @property
    def halting(self) -> bool:  # else a fixed-point rule: no halting threshold on the entries
        return self.manifest.stopping.halting_head


@dataclass
class _Onnx:
    """One ONNX variant validated: its results.json entry, its runner and its recorded rollout."""

    precision: str
    entry: dict
    runner: Any
    rollout: Any


def validate_artefact(
    tmp: Path, recipe: Recipe, native, fp32, data: TaskData, manifest: Manifest, log: Callable[[str], None] = print
) -> dict:
    """The validation stage on an artefact folder: every variant against the PyTorch reference, forms parity,
    DEQ fixed-point report, gates; writes results.json, golden.npz, junit.xml, plots, report.md and the
    manifest's hashes. Used by `edgekit export` (last stage) and `edgekit validate` (an existing artefact)."""
    from ..scale import begin
    from .openvino_configs import check_openvino
    from .outputs import results_document, write_outputs

    target = load_target(recipe.target)
    check_openvino(recipe)  # OpenVINO configurations asked for: openvino and their precisions here, before any work
    log(f"validating on {data.description}")
    scale = begin(recipe.validate_)  # executor, workers, device: checked before any rollout
    run = _start(tmp, recipe, native, fp32, data, manifest, log, scale)
    _solver_entry(run)
    onnx: list[_Onnx] = []
    for precision in manifest.variants:
        onnx.append(_onnx_variant(run, precision, next((o for o in onnx if o.precision == "float32"), None)))
        run.entries.append(onnx[-1].entry)
    _trajectory_fidelity(run, onnx)
    ov = _openvino(run, onnx)
    _pytorch_rows(run)
    gates, warnings = _gates(run, [o.entry for o in onnx], ov)
    results = results_document(run.recipe, target.name, data, run.ref.key, run.entries, gates, warnings, scale)
    write_json(tmp / "results.json", results)
    write_outputs(run, results, gates)
    return results


def _start(tmp: Path, recipe: Recipe, native, fp32, data: TaskData, manifest: Manifest, log, scale) -> _Run:
    """The PyTorch reference rollouts (the model as trained and / or its float32 twin, per validate.reference),
    recorded for `edgekit verify --full`, and their results.json rows."""
    from ..runtime.references import REFERENCE, Recorder
    from ..tasks import get_task

    bs, which, sha = recipe.validate_.batch_size, recipe.validate_.reference, manifest.model.checkpoint_sha256
    if fp32 is native or which == "float32":  # the ONNX graphs are float32: the like-for-like reference
        ref = fp32_v = _torch_variant(fp32, data, "float32", bs, sha, log, scale)
    elif which == "trained":
        ref = fp32_v = _torch_variant(native, data, native.forward_dtype, bs, sha, log, scale)
    else:  # both: gates against the model as trained, export parity against float32 PyTorch
        ref = _torch_variant(native, data, native.forward_dtype, bs, sha, log, scale)
        fp32_v = _torch_variant(fp32, data, "float32", bs, sha, log, scale)
    task = get_task(recipe.task.name)
    thr = float(manifest.graph.threshold)
    recorded = Recorder(data.inputs, data.labels, thr, data.puzzle_ids, data.names)  # for `edgekit verify --full`
    recorded.add(REFERENCE, ref.key, ref)
    run = _Run(tmp, recipe, native, fp32, data, manifest, log, scale, task, ref, fp32_v, recorded)
    run.files = dict(manifest.files)  # validation adds its files
    run.entries = [_entry(ref, data, thr, None, None, task)]
    if fp32_v is not ref:
        run.entries.append(_entry(fp32_v, data, thr, ref, None, task))
    return run


def _solver_entry(run: _Run) -> None:
    """A DEQ's own PyTorch solver on the examples: its row (accuracy, iterations, converged share) and the
    iterations the Loop form's parity compares against."""
    from ..models.deq import DEQModel

    native, data = run.native, run.data
    if not isinstance(native, DEQModel):  # only a DEQ has its own PyTorch solver and f
        return
    import torch

    sol = native.solve(torch.from_numpy(data.inputs))
    run.solver_its = sol.iterations.numpy()
    acc = float((native.head(sol.z).argmax(-1).numpy() == data.labels[:, 0]).mean())
    run.entries.append(
        {
            "name": f"pytorch_{native.solver.name}_solve",
            "display": f"pytorch ({native.solver.name} solve)",
            "metrics": {
                "exact_full": acc,
                "cell_full": acc,
                "mean_iterations": float(sol.iterations.float().mean()),
                "converged": float(sol.converged.float().mean()),
            },
        }
    )


def _onnx_variant(run: _Run, precision: str, onnx_fp32: _Onnx | None) -> _Onnx:
    """One variant's step graphs rolled out on every example (recorded for `verify --full`) and compared with the
    references; compressed variants also with the float32 graphs `onnx_fp32`; then its size and forms parity."""
    from ..runtime import Runner
    from .compare import agreement

    tmp, data, scale, thr = run.tmp, run.data, run.scale, run.thr
    # hashes are written at the end; the providers are validate.device's (the CUDA provider for cuda / auto)
    runner = Runner(tmp, variant=precision, complete=False, providers=scale.onnx.providers, tf32=scale.onnx.tf32)
    v, from_cache = onnx_rollout(runner, data, f"onnx ({precision}, step graph, host loop)", run.bs, run.log, scale)
    own = run.manifest.graph.threshold_of(precision)  # a compressed variant's own calibrated threshold, else thr
    run.recorded.add(precision, v.key, v, own)
    # export parity against the same precision in PyTorch where there is one
    e = _entry(v, data, own, run.ref, run.fp32_v if precision == "float32" else None, run.task, thr)
    if run.halting:
        e["halt_threshold"] = own
    e["computed_on"] = scale.onnx.name  # rollout, forms parity, drift; latency and golden answers: the CPU
    if from_cache:
        e["rollout_from_cache"] = True
    if precision == "float32":
        answers = run.task.answers_file(data, v.preds, v.halt)
        if answers is not None:  # e.g. ARC's submission.json: the float32 graphs' voted answers
            write_json(tmp / answers[0], answers[1])
            run.files[Path(answers[0]).stem] = answers[0]
    else:  # compression vs the float32 graphs it came from: same halting step, state drift per step
        assert onnx_fp32 is not None, "float32 is the first variant (export.precisions is sorted float32 first)"
        e["vs_onnx_float32"] = agreement(v, onnx_fp32.rollout, own, data.labels, transition=True, b_threshold=thr)
    out = _Onnx(precision, e, runner, v)
    _size(run, out)
    _forms_parity(run, out)
    return out


def _size(run: _Run, o: _Onnx) -> None:
    """The variant's quantization record (without the search trials) and the bytes of its step graphs."""
    quant_info = run.manifest.quantization or {}
    if o.precision in quant_info:
        o.entry["quantization"] = {k: val for k, val in quant_info[o.precision].items() if k != "trials"}
    o.entry["bytes"] = sum(
        (run.tmp / run.files[key]).stat().st_size
        for g, key in run.manifest.variants[o.precision].roles.items()
        if g in ("encode", "step", "readout")
    )


def _forms_parity(run: _Run, o: _Onnx) -> None:
    """The Loop form against the host loop (and a DEQ's PyTorch solver), a DEQ's fixed-point report, and the
    unrolled form against the host loop."""
    from ..models.deq import DEQModel
    from .forms import loop_parity, unrolled_parity

    data, runner, forms = run.data, o.runner, run.manifest.variants[o.precision]
    ids = runner_ids(runner, data)
    if forms.loop is not None:
        limit = run.manifest.stopping_of(o.precision).value  # its halting threshold, or the solver's tolerance
        o.entry["loop"] = loop_parity(runner, data.inputs, ids, data.labels, o.rollout, run.bs, limit, run.solver_its)
    if isinstance(run.native, DEQModel):
        from .deq import fixed_point_report

        sol = runner.solve(data.inputs, mode="loop" if forms.loop is not None else "host")
        if sol.state is None:  # the host-loop fixed-point solve returns no state, the Loop form does
            raise RecipeError(
                f"the DEQ fixed-point report of the {o.precision} variant needs the solver's final state, "
                "which only the Loop form returns for fixed-point iteration",
                "add loop to export.forms",
            )
        o.entry["fixed_point"] = fixed_point_report(run.fp32, data.inputs, sol.state, sol.steps, sol.done)
    if forms.unrolled is not None:
        o.entry["unrolled"] = unrolled_parity(runner, data.inputs, ids, data.labels, o.rollout, run.bs)


def _trajectory_fidelity(run: _Run, onnx: list[_Onnx]) -> None:
    """State drift and trajectory cosine of each compressed variant against the float32 graphs (the float32
    trajectory computed once for all), and whether the cosine predicts a changed halting step."""
    from ..tasks.metrics import halting_steps
    from .drift import cosine_predicts_halting, trajectory_fidelity

    compressed = [o for o in onnx if o.precision != "float32"]
    if not compressed:
        return
    base = next(o for o in onnx if o.precision == "float32")
    ids = runner_ids(base.runner, run.data)
    fids = trajectory_fidelity(
        base.runner,
        [o.runner for o in compressed],
        run.data.inputs[:FIDELITY_SAMPLES],
        puzzle_ids=None if ids is None else ids[:FIDELITY_SAMPLES],
    )
    for o, fid in zip(compressed, fids):
        e = o.entry
        e["state_drift_vs_onnx_float32"] = fid["drift"]
        e["trajectory_cosine_vs_onnx_float32"] = {
            "samples": fid["samples"],
            "mean": fid["cosine_mean"],
            "p05": fid["cosine_p05"],
        }
        if o.rollout.halt and base.rollout.halt:
            e["trajectory_cosine_vs_onnx_float32"]["predicts_halting_change"] = cosine_predicts_halting(
                fid["cosine"],
                halting_steps(np.stack(base.rollout.halt), run.thr),
                halting_steps(np.stack(o.rollout.halt), run.manifest.graph.threshold_of(o.runner.variant)),
            )


def _openvino(run: _Run, onnx: list[_Onnx]) -> list[dict]:
    """validate.openvino's configurations (validate/openvino_configs.py): the float32 graphs on OpenVINO."""
    if not run.recipe.validate_.openvino:
        return []
    from .openvino_configs import validate_openvino

    return validate_openvino(run, onnx)


def _pytorch_rows(run: _Run) -> None:
    """The PyTorch rows: computed on the references' device, at the artefact's halting threshold."""
    for e in run.entries:
        e.setdefault("computed_on", run.scale.device_name)
        if run.halting and "metrics" in e and e["metrics"].get("exact_halted") is not None:
            e.setdefault("halt_threshold", run.thr)


def _gates(run: _Run, onnx_entries: list[dict], ov_entries: list[dict]) -> tuple[list[dict], list[str]]:
    """Latency where a gate needs it, every gate of every ONNX variant and OpenVINO configuration, and the
    warnings about how the artefact will be deployed (logged)."""
    from .gates import deployed_warnings, evaluate_gates

    recipe, manifest = run.recipe, run.manifest
    gs = recipe.gates
    if gs.max_latency_ms is not None or gs.min_speedup_vs_float32 is not None:
        measure_latency(run.tmp, onnx_entries, list(manifest.variants), run.data, recipe.validate_, run.log)
    gates = [g for e in onnx_entries for g in evaluate_gates(gs, run.entries[0], e, run.native.family)]
    if ov_entries:
        from .openvino_configs import openvino_gates

        gates += openvino_gates(run, ov_entries)
    warnings = deployed_warnings(gs, manifest.stopping.halting_head, manifest.runtime_defaults)
    for w in warnings:
        run.log(f"warning: {w}")
    return gates, warnings
