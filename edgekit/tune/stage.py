"""`edgekit tune`: the accuracy-latency front of an artefact's configurations (variant x halting threshold x step
cap) on this machine, the best configuration within a latency budget, and (with --apply) that configuration
written as the artefact's runtime default (manifest `runtime_defaults`, which Runner, solve, bench and serve use).

Accuracy is scored on the recipe's validation examples from one recorded rollout per variant (cached: after
`edgekit export` these are the rollouts validation already ran); the chosen configuration is then re-measured
end to end on held-out examples the choice never saw (the calibration split, or fresh generated puzzles), since
the best of many configurations on one set is optimistic on that set.
"""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..errors import RecipeError
from ..manifest import Manifest
from ..tasks.metrics import exact_per_sample, halting_steps
from .front import Config, answers, choose, fastest_meeting, grid, pareto_front, thresholds_for
from .latency import StepTimes, measure_ms, predict_ms, time_graphs

TUNE_SCHEMA_VERSION = 1
CHECK_SEED_OFFSET = 15_485_863  # held-out check set of generated tasks: a seed no other stage draws with


@dataclass
class TuneSettings:
    budget_ms: float
    batch: int = 64
    variants: list[str] | None = None  # default: every variant with step graphs
    latency_n: int = 64  # examples timed end to end per measured configuration
    check_n: int = 512  # held-out examples the chosen configuration is re-measured on
    latency_from: Path | None = None  # graph times measured on the target device (`edgekit bench --graph-times`)
    min_accuracy: float | None = None  # accuracy floor; None: the validated exact at halting minus the drop limit
    depth_factor: int = 1  # test-time depth: step caps up to this many times the trained budget (1 .. 8)
    depth_check_n: int = 32  # examples the deepest caps are answered again on through the host loop and Loop form
    openvino: list[str] = field(default_factory=list)  # also OpenVINO's CPU at these precisions (openvino_configs)


def _rollout(runner, data, name: str, batch: int, log, steps: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A variant's recorded rollout (validation's, cached), or an OpenVINO configuration's (validate.openvino's)."""
    if getattr(runner, "backend", "onnxruntime") == "openvino":
        from ..validate.openvino_configs import config_name, openvino_rollout

        key = config_name(runner.precision)
        v, _ = openvino_rollout(runner, data, batch, f"openvino ({runner.precision}, host loop)", key, log, steps)
    else:
        from ..validate.stage import onnx_rollout

        v, _ = onnx_rollout(runner, data, name, batch, log, steps=steps)
    return np.stack(v.preds), np.stack(v.halt)


def _openvino_runners(folder: Path, manifest: Manifest, s: TuneSettings) -> dict[str, Any]:
    """`--ov-precision`'s configurations: openvino-<precision> runs its graphs (float32's; int8: int8_weight_only's)
    on OpenVINO's CPU plugin (scored at float32's validated threshold, measured one at a time like a variant).
    OpenVINO missing, a precision this CPU lacks, or int8 on an artefact without its graphs, is one line."""
    from ..runtime.errors import ArtefactError, RuntimeInputError
    from ..validate.openvino_configs import DEVICE, config_name, graphs_of

    if s.openvino and s.latency_from is not None:
        raise RecipeError(
            "--ov-precision measures OpenVINO on this machine; --latency-from predicts another device's latency",
            "tune OpenVINO configurations without --latency-from (on the machine that runs them)",
        )
    from ..runtime.openvino_backend import OpenVINORunner

    out = {}
    for p in dict.fromkeys(s.openvino):
        try:
            graphs = graphs_of(manifest, p)
            out[config_name(p)] = OpenVINORunner(folder, variant=graphs, device=DEVICE, precision=p)
        except (ArtefactError, RuntimeInputError) as e:
            raise RecipeError(str(e), "drop that --ov-precision") from None
    return out


def _check_set(recipe, n: int):
    """Examples the tuning never saw: the calibration split of a dataset folder, or fresh generated puzzles."""
    from ..tasks import load_task

    task = recipe.task
    if task.data is not None and not task.data.endswith(".npz"):
        from ..tasks.files import open_data

        available = len(open_data(Path(task.data), task.calibration_split))
        return load_task(task, min(n, available), task.seed + CHECK_SEED_OFFSET, split=task.calibration_split)
    return load_task(task, n, task.seed + CHECK_SEED_OFFSET, split="train")


@dataclass(frozen=True)
class _Plan:
    """What one tuning run works on: the artefact, the variants tuned, the examples scored, the validated default
    (threshold and step budget) and where latency comes from (device graph times, else this machine)."""

    recipe: Any
    folder: Path
    manifest: Manifest
    names: list[str]
    data: Any  # TaskData: the recipe's validation examples
    budget: int
    default_thr: float
    batch_size: int  # validate.batch_size: the recorded rollouts' batch
    device: dict[str, StepTimes] | None  # graph times measured on the device (--latency-from)
    deepest: int  # the deepest step cap explored (the budget unless --depth-factor)


@dataclass(frozen=True)
class _Records:
    """One recorded rollout per variant, and the validated default scored on it: the accuracy floor."""

    rollouts: dict[str, tuple[np.ndarray, np.ndarray]]  # variant -> (per-step predictions, halting logits)
    ref: str  # the variant whose validated default sets the floor (float32 when tuned)
    default_answers: np.ndarray
    floor: dict[str, Any]


def run_tune(recipe_path: str | Path, artefact: str | Path | None, s: TuneSettings, log: Callable = print) -> dict:
    """The tune result (front, choice, re-measured accuracy) as a dict; writes tune.json and tune_front.png into
    the artefact. The artefact's manifest is changed only by `apply_defaults`."""
    from ..runtime import Runner

    _check_depth_factor(s.depth_factor)
    recipe, folder, manifest = _open_artefact(recipe_path, artefact, s)
    names = _tuned_variants(manifest, s, folder, log)
    ov = _openvino_runners(folder, manifest, s) if s.openvino else {}
    plan = _plan(recipe, folder, manifest, [*names, *ov], s, log)
    runners: dict[str, Any] = {v: Runner(folder, variant=v) for v in names} | ov
    rec = _record(plan, runners, s, log)
    timed = plan.data.inputs[: s.latency_n]
    configs, timings = _configurations(plan, rec, runners, timed, s)
    if plan.device is not None:
        chosen = choose(pareto_front(configs), s.budget_ms, rec.floor["value"])
    else:
        chosen = _choose_measured(configs, s, runners, timed, rec.floor["value"], log)
    front = pareto_front(configs)
    check = _recheck(recipe, runners, chosen, rec.ref, plan.default_thr, plan.budget, s, log) if chosen else None
    depth = _depth(plan, rec, timings, s, runners[rec.ref], log) if plan.deepest > plan.budget else None
    result = _result(plan, rec, s, configs, front, timings, chosen, check, depth)
    _write_outputs(folder, result, manifest, configs, front, chosen, log)
    return result


def _check_depth_factor(f: Any) -> None:
    from .depth import MAX_DEPTH_FACTOR

    if isinstance(f, bool) or not isinstance(f, int) or not 1 <= f <= MAX_DEPTH_FACTOR:
        raise RecipeError(
            f"the depth factor must be an integer in [1, {MAX_DEPTH_FACTOR}], got {f!r}",
            f"step caps are explored up to {MAX_DEPTH_FACTOR} x the trained budget at most",
        )


def _open_artefact(recipe_path: str | Path, artefact: str | Path | None, s: TuneSettings) -> tuple[Any, Path, Manifest]:
    """The recipe and the artefact's manifest, refused in one line where tune cannot measure or score it: a
    TensorRT target without device graph times, ARC's voted answers, a DEQ's solver."""
    from ..artefact import output_folder
    from ..runtime.errors import ArtefactError
    from ..runtime.manifest import load_manifest
    from ..schema import load_recipe, load_target
    from ..stopping import HaltLogit

    recipe, base = load_recipe(recipe_path)
    target = load_target(recipe.target)
    if target.backend != "onnxruntime" and s.latency_from is None:
        raise RecipeError(
            f"target {target.name} runs TensorRT engines, whose latency this machine cannot measure",
            f"on the device run `edgekit bench ARTEFACT --variant all --batch {s.batch} --graph-times times.json` "
            "(onnxruntime's TensorRT provider: --provider tensorrt), then tune here with --latency-from times.json",
        )
    folder = Path(artefact).expanduser() if artefact else output_folder(recipe.name, recipe.output, base)
    try:
        manifest = load_manifest(folder, complete=True)
    except ArtefactError as e:
        raise RecipeError(str(e), "run `edgekit export` on the recipe first, or pass --artefact") from None
    if manifest.graph.puzzle_ids is not None:
        raise RecipeError(
            "edgekit tune scores tasks answered per example; this artefact takes puzzle identifiers (ARC), whose "
            "answers are voted across augmented copies, and is not tuned yet",
            "choose the threshold and cap with `edgekit validate` gates, or Runner.solve_arc's max_steps / threshold",
        )
    if manifest.model.kind != HaltLogit.kind:
        raise RecipeError(
            "edgekit tune covers ACT models (HRM, TRM): a DEQ's solver tolerance is not tuned yet",
            "set validate.solver settings in the recipe instead",
        )
    return recipe, folder, manifest


def _tuned_variants(manifest: Manifest, s: TuneSettings, folder: Path, log: Callable) -> list[str]:
    """--variant's variants, else every variant with step graphs whose validation gates passed."""
    names = s.variants or [v for v, g in manifest.variants.items() if {"encode", "step", "readout"} <= set(g)]
    unknown = [v for v in names if v not in manifest.variants]
    if unknown:
        raise RecipeError(f"the artefact has no variant {unknown[0]!r}", f"use one of {', '.join(manifest.variants)}")
    failed = _failed_variants(folder, log)
    if not s.variants and failed:  # a variant that failed validation is never chosen unless asked for by name
        log(
            f"not tuning {', '.join(sorted(failed))}: validation gates failed (results.json); --variant tunes it anyway"
        )
        names = [v for v in names if v not in failed]
    if not names:
        raise RecipeError("every variant of the artefact failed its validation gates", "name one with --variant")
    return names


def _plan(recipe, folder: Path, manifest: Manifest, names: list[str], s: TuneSettings, log: Callable) -> _Plan:
    """The examples, the validated default, the deepest cap and the latency source, said in one line."""
    from ..tasks import load_task

    data = load_task(recipe.task)
    budget = int(manifest.graph.step_budget)
    device = _device_times(s.latency_from, manifest, names, s.batch) if s.latency_from else None
    where = f"from {s.latency_from} (measured there, predicted here)" if device else "on this machine"
    deepest = budget * s.depth_factor
    depth = f"; step caps up to {deepest} ({s.depth_factor} x the trained budget {budget})" if deepest > budget else ""
    log(f"tuning {', '.join(names)} on {data.description}; latency at batch {s.batch} {where}{depth}")
    default_thr = float(manifest.graph.threshold)
    return _Plan(
        recipe, folder, manifest, names, data, budget, default_thr, recipe.validate_.batch_size, device, deepest
    )


def _record(plan: _Plan, runners: dict[str, Any], s: TuneSettings, log: Callable) -> _Records:
    """Each variant's rollout (to the deepest cap; the budget's is the one validation cached) and the floor: the
    reference variant's validated default scored on it."""
    steps = plan.deepest if plan.deepest > plan.budget else None
    rollouts = {
        v: _rollout(runners[v], plan.data, f"onnx ({v}, step graph, host loop)", plan.batch_size, log, steps)
        for v in plan.names
    }
    ref = "float32" if "float32" in rollouts else plan.names[0]
    ref_preds, ref_halt = rollouts[ref]
    default_answers = answers(ref_preds, halting_steps(ref_halt[: plan.budget], plan.default_thr))
    floor = _floor(plan.recipe, s, float(exact_per_sample(default_answers, plan.data.labels).mean()), ref)
    log(f"accuracy floor {floor['value']:.4g}: {floor['source']}")
    return _Records(rollouts, ref, default_answers, floor)


def _configurations(
    plan: _Plan, rec: _Records, runners: dict[str, Any], timed: np.ndarray, s: TuneSettings
) -> tuple[list[Config], dict[str, StepTimes]]:
    """Every configuration (variant x threshold x cap) scored on its recorded rollout, with its latency predicted
    from the variant's graph times (this machine's, scaled by one end-to-end run, or the device's)."""
    configs: list[Config] = []
    timings: dict[str, StepTimes] = {}
    for v in plan.names:
        preds, halt = rec.rollouts[v]
        own = float(plan.manifest.graph.threshold_of(v))  # the variant's validated threshold (its own, with auto)
        cs = grid(v, preds, halt, plan.data.labels, rec.default_answers, thresholds_for(halt, own))
        if plan.device is not None:  # the device's own graph times; no end-to-end run is possible here
            times = plan.device[v]
        else:
            times = time_graphs(runners[v], plan.data.inputs, s.batch)
            # one end-to-end run of the default configuration calibrates the model for the host loop's overhead
            measured = measure_ms(runners[v], timed, s.batch, own, plan.budget)
            predicted = predict_ms(times, halting_steps(halt[: plan.budget, : len(timed)], own), s.batch)
            times.scale = measured / predicted if predicted > 0 else 1.0
        timings[v] = times
        for c in cs:
            assert c.halting_steps is not None
            c.latency_ms = predict_ms(times, c.halting_steps, s.batch)
            if plan.device is not None:
                c.latency_source = "device graph times"
        configs += cs
    return configs, timings


def _result(
    plan: _Plan, rec: _Records, s: TuneSettings, configs: list[Config], front: list[Config],
    timings: dict[str, StepTimes], chosen: Config | None, check: dict | None, depth: dict | None,
) -> dict[str, Any]:  # fmt: skip
    """tune.json's document: the front, the choice, the fastest points, the held-out check and the latency model."""
    meeting = fastest_meeting(configs, rec.floor["value"])
    fastest = front[0] if front else None
    return {
        "schema_version": TUNE_SCHEMA_VERSION,
        "recipe": plan.recipe.name,
        "budget_ms": s.budget_ms,
        "batch": s.batch,
        "data": plan.data.description,
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
        "edgekit": __version__,
        "default": {"variant": rec.ref, "threshold": plan.default_thr, "cap": plan.budget},
        "configurations": len(configs),
        "floor": rec.floor,
        "front": [c.to_dict() for c in front],
        "chosen": chosen.to_dict() if chosen else None,
        "fastest": fastest.to_dict() if fastest else None,
        "fastest_meeting_floor": meeting.to_dict() if meeting else None,
        "check": check,
        "depth": depth,
        "latency_model": {
            v: {"batch_sizes": t.sizes, "step_ms": [round(x, 3) for x in t.step], "scale": round(t.scale, 3)}
            for v, t in timings.items()
        },
        "latency_source": (
            f"estimated: host loop replayed on graph times measured on the device ({s.latency_from}); not measured "
            "end to end"
            if plan.device
            else "this machine: predicted from graph times, the chosen point measured end to end"
        ),
    }


def _depth(plan: _Plan, rec: _Records, timings, s: TuneSettings, runner, log) -> dict:
    """The accuracy-vs-step-cap curve of every tuned variant past the trained budget, and the deepest cap answered
    again through the host loop and the Loop form on the first examples (tune/depth.py)."""
    from .depth import check_forms, depth_curve

    records, data, thr, budget, ref = rec.rollouts, plan.data, plan.default_thr, plan.budget, rec.ref

    curves = [depth_curve(v, p, h, data.labels, thr, budget, timings[v], s.batch) for v, (p, h) in records.items()]
    for c in curves:
        for r in c["rules"]:
            gain = r["past_budget"]
            log(
                f"depth {c['variant']}, {r['rule']}: exact {r['exact'][budget - 1]:.3f} at the budget {budget}, "
                f"{r['exact'][-1]:.3f} at cap {c['deepest']}, saturating at cap {r['saturates_at']}; past the "
                f"budget +{gain['extra_mean_steps']:.2f} mean steps, +{gain['extra_ms']:.2f} ms per puzzle"
            )
    preds, halt = records[ref]
    deepest = preds.shape[0]
    k = min(s.depth_check_n, len(data.inputs))
    forms = check_forms(runner, data.inputs[:k], preds, halt, [(deepest, thr), (deepest, math.inf)], plan.batch_size)
    for row in forms:
        log(
            f"cap {row['cap']}, {'never halt early' if row['threshold'] is None else 'halt threshold'}: host loop "
            f"answers as recorded on {row['host_loop_same_answer']:.3f} of {row['examples']}"
            + (f", Loop form on {row['loop_form_same_answer']:.3f}" if "loop_form_same_answer" in row else "")
        )
    return {
        "factor": s.depth_factor,
        "budget": budget,
        "deepest": deepest,
        "latency": "predicted: the latency model replayed on each cap's halting steps (see latency_source)",
        "curves": curves,
        "forms_check": {"variant": ref, "rows": forms},
    }


def _device_times(path: Path, manifest: Manifest, names: list[str], batch: int) -> dict[str, StepTimes]:
    """Graph times a device measured (`edgekit bench --graph-times`), for exactly this artefact's step graphs and
    a batch within what was timed; anything else is one RecipeError line."""
    from ..runtime.errors import RuntimeInputError
    from ..runtime.graph_times import read_graph_times, step_times

    try:
        doc = read_graph_times(path)
    except RuntimeInputError as e:
        raise RecipeError(str(e), "write it on the device with `edgekit bench ARTEFACT --graph-times FILE`") from None
    out = {}
    for v in names:
        entry = doc["variants"].get(v)
        key = manifest.variants[v].step
        if entry is None or entry["step_sha256"] != manifest.hashes.get(key or ""):
            raise RecipeError(
                f"{path} has no graph times for this artefact's {v} step graph (missing, or other graph bytes)",
                "time this artefact on the device: `edgekit bench ARTEFACT --variant all --graph-times FILE`",
            )
        if entry["sizes"][-1] < batch:
            raise RecipeError(
                f"{path} timed the {v} graphs up to batch {entry['sizes'][-1]}, not {batch}",
                f"tune with --batch {entry['sizes'][-1]} or bench on the device with --batch {batch}",
            )
        out[v] = step_times(entry)
    return out


def _failed_variants(folder: Path, log) -> set[str]:
    """Variants with a failed gate in the artefact's results.json (untrusted: read with a size bound; anything
    unexpected means no gate information, said in one line)."""
    import json
    import re

    path = folder / "results.json"
    if not path.is_file() or path.is_symlink():
        return set()
    try:
        if path.stat().st_size > 64 << 20:
            raise ValueError("over 64 MiB")
        gates = json.loads(path.read_text())["gates"]
        names = {g["variant"] for g in gates if isinstance(g, dict) and g.get("passed") is False}
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        log("results.json is unreadable: every variant is tuned, whatever its validation said")
        return set()
    out = set()
    for n in names:  # the `--variant` name; results.json before schema 2 wrote "onnx (int8, step graph, host loop)"
        m = re.match(r"^(?:onnx \()?([A-Za-z0-9_.-]+)(?:,|$)", n) if isinstance(n, str) else None
        if m:
            out.add(m.group(1))
    return out


def _floor(recipe, s: TuneSettings, validated: float, ref: str) -> dict[str, Any]:
    """The accuracy floor a chosen configuration must keep: --min-accuracy, or the validated configuration's exact
    accuracy at halting on the tuning set minus the recipe's drop limit (the halted-answer gate, else the
    full-budget one), so tune never buys speed with more accuracy than the recipe's gates allow."""
    if s.min_accuracy is not None:
        return {"value": s.min_accuracy, "source": "--min-accuracy", "validated": validated}
    g = recipe.gates
    limits = {"max_exact_halted_drop": g.max_exact_halted_drop, "max_exact_drop": g.max_exact_drop}
    key, drop = next(((k, v) for k, v in limits.items() if v is not None), (None, 0.0))
    why = f"gates.{key} {drop:g}" if key else "nothing (the recipe sets no drop gate)"
    return {
        "value": max(validated - drop, 0.0),
        "source": f"the validated exact at halting {validated:.4g} ({ref} at its validated threshold, full cap, on the "
        f"tuning set) minus {why}",
        "validated": validated,
    }


def _choose_measured(
    configs: list[Config], s: TuneSettings, runners, timed: np.ndarray, floor: float, log
) -> Config | None:
    """Choose on predicted latency among configurations at or above the floor, then measure the choice end to end;
    if the measurement breaks the budget, the next faster front point is measured, and so on (at most 6)."""
    excluded: set[int] = set()
    for _ in range(6):
        front = pareto_front([c for c in configs if id(c) not in excluded])
        pick = choose(front, s.budget_ms, floor)
        if pick is None:
            return None
        if pick.latency_source != "measured":
            pick.latency_ms = measure_ms(runners[pick.variant], timed, s.batch, pick.threshold, pick.cap)
            pick.latency_source = "measured"
            log(f"measured {_label(pick)}: {pick.latency_ms:.2f} ms per puzzle")
        if pick.latency_ms <= s.budget_ms:
            return pick
        excluded.add(id(pick))
    return None


def _label(c: Config) -> str:
    thr = "never" if math.isinf(c.threshold) else f"{c.threshold:g}"
    return f"{c.variant}, halt threshold {thr}, cap {c.cap}"


def _recheck(recipe, runners, chosen: Config, ref: str, default_thr: float, budget: int, s: TuneSettings, log) -> dict:
    """The chosen configuration and the validated default, end to end on held-out examples the choice never saw."""
    from ..tasks.metrics import exact_per_sample, wilson

    data = _check_set(recipe, s.check_n)
    out: dict[str, Any] = {"data": data.description, "n": len(data.inputs)}
    t0 = time.time()
    for key, runner, thr, cap in (
        ("chosen", runners[chosen.variant], chosen.threshold, chosen.cap),
        ("default", runners[ref], default_thr, budget),
    ):
        sol = runner.solve(data.inputs, max_steps=cap, threshold=thr)
        ok = exact_per_sample(sol.preds, data.labels)
        out[key] = {"exact": float(ok.mean()), "exact_interval": wilson(int(ok.sum()), len(ok)),
                    "mean_steps": float(sol.steps.mean())}  # fmt: skip
    log(
        f"held-out check ({out['n']} examples, {time.time() - t0:.0f} s): chosen exact {out['chosen']['exact']:.3f}, "
        f"validated default {out['default']['exact']:.3f}"
    )
    return out


def _write_outputs(folder: Path, result: dict, manifest: Manifest, configs, front, chosen, log) -> None:
    """tune.json, tune_front.png and report.md's tuning section, each replaced atomically."""
    import json

    from ..artefact import replace_file
    from .plot import plot_front

    replace_file(folder / "tune.json", (json.dumps(result, indent=1) + "\n").encode())
    plot_front(folder / "tune_front.png", configs, front, chosen, result)
    if result.get("depth"):
        from .plot import plot_depth

        plot_depth(folder / "tune_depth.png", result)
    results_path = folder / "results.json"
    if results_path.is_file() and not results_path.is_symlink():
        from ..validate.plots import existing_plots
        from ..validate.report import report_markdown

        plots = existing_plots(folder)
        try:  # untrusted like the rest of the folder: a damaged results.json means no report section, not a crash
            results = json.loads(results_path.read_text())
            text = report_markdown(results, manifest, plots, tune=result)
        except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError):
            log("results.json is unreadable: report.md is left as it was (tune.json and tune_front.png are written)")
            return
        replace_file(folder / "report.md", text.encode())


def apply_defaults(folder: str | Path, result: dict) -> dict:
    """Write the chosen configuration as the artefact's runtime default (manifest `runtime_defaults`)."""
    from ..artefact import replace_file
    from ..manifest import RuntimeDefaults
    from ..runtime.manifest import load_manifest

    chosen = result.get("chosen")
    if not chosen:
        raise RecipeError("no configuration meets the latency budget, so there is nothing to apply")
    if str(chosen["variant"]).startswith("openvino-"):
        precision = str(chosen["variant"]).removeprefix("openvino-")
        thr = "never" if chosen["threshold"] is None else f"{chosen['threshold']:g}"
        raise RecipeError(
            f"the chosen configuration runs on OpenVINO ({chosen['variant']}), which an artefact's runtime defaults "
            "cannot name (they choose a variant, not a backend)",
            f"run it with --backend openvino --ov-precision {precision} --max-steps {chosen['cap']}"
            + (" (it never halts before the cap)" if chosen["threshold"] is None else f" --threshold {thr}"),
        )
    folder = Path(folder)
    defaults = RuntimeDefaults(
        variant=chosen["variant"],
        halt_threshold=chosen["threshold"],  # null: never halt before the cap
        max_steps=chosen["cap"],
        chosen_by=f"edgekit tune, {result['budget_ms']:g} ms per puzzle at batch {result['batch']}",
    )
    # the manifest reader refuses defaults that do not match their digest (edited after tuning)
    manifest = load_manifest(folder, complete=True).with_defaults(defaults)
    replace_file(folder / "manifest.json", manifest.dumps().encode())
    load_manifest(folder, complete=True)  # what was written is what the runtime accepts
    return defaults.to_json()
