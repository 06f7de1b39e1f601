"""The validation stage: every variant of an artefact against the PyTorch reference on task data, forms parity,
DEQ fixed-point report and gates; writes results.json, golden.npz, junit.xml, plots, report.md and the manifest's
hashes. `edgekit export` runs it last; `edgekit validate` re-runs it on an existing artefact.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..artefact import sha256_file, write_json
from ..errors import RecipeError
from ..manifest import Manifest
from ..schema import Recipe, load_target
from ..tasks import TaskData

RESULTS_SCHEMA_VERSION = 2  # 2: entries and gates name variants by their `--variant` name, `display` beside it
FIDELITY_SAMPLES = 128  # trajectory cosine / drift: full-budget rollouts of both variants on this many samples


def takes_ids(model) -> bool:
    from ..export.graphs import takes_puzzle_ids

    return takes_puzzle_ids(model)


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


def _golden(tmp: Path, files: dict, inputs: np.ndarray, write_golden, ids: np.ndarray | None = None) -> None:
    """golden.npz (every variant and mode on a few inputs, what `edgekit verify` re-checks on a device), written
    from the cache when the same graph bytes answered the same inputs at the same settings before."""
    from ..cache import entry, read_arrays, write_arrays
    from ..runtime.manifest import load_manifest
    from ..runtime.verify import GOLDEN
    from .reference import keyed, onnx_rollout_key

    graphs = sorted(k for k in files if k != "golden")
    m = load_manifest(tmp, complete=False)  # the runner settings golden answers are computed at
    settings = ["golden", graphs, m.graph.to_json(), m.model.to_json(), {n: g.to_json() for n, g in m.variants.items()}]
    key = onnx_rollout_key([tmp / files[k] for k in graphs], keyed(inputs, ids), 0, settings)
    e = entry("onnx", f"golden-{key}")

    def decode(z: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not np.array_equal(z["inputs"], inputs):
            raise ValueError("answers to other inputs")
        return z

    cached = read_arrays(e, decode)  # a damaged or foreign entry is discarded and recomputed
    if cached is not None:
        np.savez(tmp / GOLDEN, **cached)  # type: ignore[arg-type]  # numpy's stub types **kwds as bool
        return
    write_arrays(e, write_golden(tmp, inputs, ids))


def validate_artefact(
    tmp: Path, recipe: Recipe, native, fp32, data: TaskData, manifest: Manifest, log: Callable[[str], None] = print
) -> dict:
    """The validation stage on an artefact folder: every variant against the PyTorch reference, forms parity,
    DEQ fixed-point report, gates; writes results.json, golden.npz, junit.xml, plots, report.md and the
    manifest's hashes. Used by `edgekit export` (last stage) and `edgekit validate` (an existing artefact)."""
    files, variants = dict(manifest.files), manifest.variants  # validation adds its files to `files`
    quant_info = manifest.quantization or {}
    thr = float(manifest.graph.threshold)
    native_dtype = native.forward_dtype
    halting = manifest.stopping.halting_head  # else a fixed-point rule: no halting threshold on the entries
    from ..models.deq import DEQModel

    solves = isinstance(native, DEQModel)  # a DEQ's own PyTorch solver and f: the solve entry, fixed-point report
    target = load_target(recipe.target)
    log(f"validating on {data.description}")
    from .compare import agreement
    from .drift import cosine_predicts_halting, trajectory_fidelity
    from .forms import loop_parity, unrolled_parity
    from .gates import evaluate_gates

    bs = recipe.validate_.batch_size
    which = recipe.validate_.reference
    sha = manifest.model.checkpoint_sha256
    from ..scale import begin

    scale = begin(recipe.validate_)  # executor, workers, device: checked before any rollout
    if fp32 is native or which == "float32":  # the ONNX graphs are float32: the like-for-like reference
        ref = fp32_v = _torch_variant(fp32, data, "float32", bs, sha, log, scale)
    elif which == "trained":
        ref = fp32_v = _torch_variant(native, data, native_dtype, bs, sha, log, scale)
    else:  # both: gates against the model as trained, export parity against float32 PyTorch
        ref = _torch_variant(native, data, native_dtype, bs, sha, log, scale)
        fp32_v = _torch_variant(fp32, data, "float32", bs, sha, log, scale)
    from ..tasks import get_task

    task = get_task(recipe.task.name)
    from ..runtime.references import REFERENCE, Recorder

    recorded = Recorder(data.inputs, data.labels, thr, data.puzzle_ids, data.names)  # for `edgekit verify --full`
    recorded.add(REFERENCE, ref.key, ref)
    entries = [_entry(ref, data, thr, None, None, task)]
    if fp32_v is not ref:
        entries.append(_entry(fp32_v, data, thr, ref, None, task))
    solver_its = None
    if solves:
        import torch

        sol = native.solve(torch.from_numpy(data.inputs))
        solver_its = sol.iterations.numpy()
        acc = float((native.head(sol.z).argmax(-1).numpy() == data.labels[:, 0]).mean())
        entries.append(
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
    onnx_entries = []
    from ..runtime import Runner

    onnx_fp32 = None
    compressed: list[tuple[dict, Any, Any]] = []  # (entry, runner, rollout) of each compressed variant
    for precision in variants:
        # hashes are written at the end; the providers are validate.device's (the CUDA provider for cuda / auto)
        runner = Runner(tmp, variant=precision, complete=False, providers=scale.onnx.providers, tf32=scale.onnx.tf32)
        v, from_cache = onnx_rollout(runner, data, f"onnx ({precision}, step graph, host loop)", bs, log, scale)
        own = manifest.graph.threshold_of(precision)  # a compressed variant's own calibrated threshold, else thr
        recorded.add(precision, v.key, v, own)
        # export parity against the same precision in PyTorch where there is one
        e = _entry(v, data, own, ref, fp32_v if precision == "float32" else None, task, thr)
        if halting:
            e["halt_threshold"] = own
        e["computed_on"] = scale.onnx.name  # rollout, forms parity, drift; latency and golden answers: the CPU
        if from_cache:
            e["rollout_from_cache"] = True
        if precision == "float32":
            onnx_fp32 = (runner, v)
            answers = task.answers_file(data, v.preds, v.halt)
            if answers is not None:  # e.g. ARC's submission.json: the float32 graphs' voted answers
                write_json(tmp / answers[0], answers[1])
                files[Path(answers[0]).stem] = answers[0]
        else:  # compression vs the float32 graphs it came from: same halting step, state drift per step
            assert onnx_fp32 is not None, "float32 is the first variant (export.precisions is sorted float32 first)"
            e["vs_onnx_float32"] = agreement(v, onnx_fp32[1], own, data.labels, transition=True, b_threshold=thr)
            compressed.append((e, runner, v))
        if precision in quant_info:
            e["quantization"] = {k: val for k, val in quant_info[precision].items() if k != "trials"}
        e["bytes"] = sum(
            (tmp / files[key]).stat().st_size
            for g, key in variants[precision].roles.items()
            if g in ("encode", "step", "readout")
        )
        if "loop" in variants[precision]:
            e["loop"] = loop_parity(
                runner,
                data.inputs,
                runner_ids(runner, data),
                data.labels,
                v,
                bs,
                manifest.stopping_of(precision).value,  # its halting threshold, or the solver's tolerance
                solver_its,
            )
        if solves:
            from .deq import fixed_point_report

            sol = runner.solve(data.inputs, mode="loop" if "loop" in variants[precision] else "host")
            if sol.state is None:  # the host-loop fixed-point solve returns no state, the Loop form does
                raise RecipeError(
                    f"the DEQ fixed-point report of the {precision} variant needs the solver's final state, "
                    "which only the Loop form returns for fixed-point iteration",
                    "add loop to export.forms",
                )
            e["fixed_point"] = fixed_point_report(fp32, data.inputs, sol.state, sol.steps, sol.done)
        if "unrolled" in variants[precision]:
            e["unrolled"] = unrolled_parity(runner, data.inputs, runner_ids(runner, data), data.labels, v, bs)
        entries.append(e)
        onnx_entries.append(e)
    if compressed:  # state drift and trajectory cosine: the float32 trajectory computed once for all variants
        assert onnx_fp32 is not None
        ids = runner_ids(onnx_fp32[0], data)
        fids = trajectory_fidelity(
            onnx_fp32[0],
            [r for _, r, _ in compressed],
            data.inputs[:FIDELITY_SAMPLES],
            puzzle_ids=None if ids is None else ids[:FIDELITY_SAMPLES],
        )
        for (e, r, v), fid in zip(compressed, fids):
            e["state_drift_vs_onnx_float32"] = fid["drift"]
            e["trajectory_cosine_vs_onnx_float32"] = {
                "samples": fid["samples"],
                "mean": fid["cosine_mean"],
                "p05": fid["cosine_p05"],
            }
            if v.halt and onnx_fp32[1].halt:
                from ..tasks.metrics import halting_steps

                e["trajectory_cosine_vs_onnx_float32"]["predicts_halting_change"] = cosine_predicts_halting(
                    fid["cosine"],
                    halting_steps(np.stack(onnx_fp32[1].halt), thr),
                    halting_steps(np.stack(v.halt), manifest.graph.threshold_of(r.variant)),
                )
    for e in entries:  # the PyTorch rows: on the references' device, at the artefact's halting threshold
        e.setdefault("computed_on", scale.device_name)
        if halting and "metrics" in e and e["metrics"].get("exact_halted") is not None:
            e.setdefault("halt_threshold", thr)
    gs = recipe.gates
    if gs.max_latency_ms is not None or gs.min_speedup_vs_float32 is not None:
        measure_latency(tmp, onnx_entries, list(variants), data, recipe.validate_, log)
    gates = [g for e in onnx_entries for g in evaluate_gates(recipe.gates, entries[0], e, native.family)]
    passed = all(x["passed"] for x in gates)
    from .gates import deployed_warnings

    warnings = deployed_warnings(recipe.gates, manifest.stopping.halting_head, manifest.runtime_defaults)
    for w in warnings:
        log(f"warning: {w}")
    results = {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "recipe": recipe.name,
        "target": target.name,
        "data": data.description,
        **({"data_source": data.source} if data.source else {}),
        "reference": ref.key,
        "variants": entries,
        "gates": gates,
        "passed": passed,
        **({"warnings": warnings} if warnings else {}),
        "environment": {"python": platform.python_version(), "machine": platform.machine(), "edgekit": __version__},
        "scale": scale.record(),  # where the rollouts ran: executor, workers, the references' device
    }
    write_json(tmp / "results.json", results)
    from ..runtime.verify import GOLDEN, write_golden
    from .junit import junit_xml
    from .plots import write_plots
    from .report import report_markdown

    k = min(8, len(data.inputs))
    gids = data.puzzle_ids[:k] if data.puzzle_ids is not None and takes_ids(fp32) else None
    _golden(tmp, files, data.inputs[:k], write_golden, gids)
    files["golden"] = GOLDEN
    files["references"] = recorded.write(
        tmp,
        {
            "batch_size": bs,
            "family": native.family,
            "task": recipe.task.name,
            "gates": recipe.gates.model_dump(),
            "latency": {
                "batch": recipe.validate_.latency_batch,
                "examples": recipe.validate_.latency_n,
                "rounds": recipe.validate_.latency_rounds,
            },
            "export_gates": gates,
        },
    )
    (tmp / "junit.xml").write_text(junit_xml(results))
    plots = write_plots(results, tmp)
    (tmp / "report.md").write_text(report_markdown(results, manifest.to_json(), plots))
    manifest = replace(
        manifest,
        files=files,
        sha256={name: sha256_file(tmp / rel) for name, rel in files.items()},
        bytes={name: (tmp / rel).stat().st_size for name, rel in files.items()},  # verify: size before hash
    )
    (tmp / "manifest.json").write_text(manifest.dumps())
    return results
