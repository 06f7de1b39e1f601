"""`edgekit export`: recipe -> checkpoint -> ONNX graphs -> validation -> artefact folder.

Every stage reads and writes plain files: the artefact holds encode/step/readout ONNX graphs, the initial
state, manifest.json (what is inside and its hashes), results.json (metrics and gates) and report.md.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from . import __version__
from .artefact import ARTEFACT_SCHEMA_VERSION, atomic_folder, sha256_file, write_json
from .errors import EXIT_ACCURACY_GATE, EXIT_OK, RecipeError
from .schema import Recipe, load_recipe, load_target

RESULTS_SCHEMA_VERSION = 1


@dataclass
class TaskData:
    inputs: np.ndarray
    labels: np.ndarray  # [N, L] (sequence tasks) or [N, 1] (classification)
    description: str


def load_task(recipe: Recipe, n: int | None = None, seed: int | None = None, split: str = "test") -> TaskData:
    """Task data: the recipe's validation set by default; calibration and search sets pass their own n and
    seed (Sudoku: freshly generated, disjoint by seed; digits: the training split)."""
    t = recipe.task
    n = t.n if n is None else n
    seed = t.seed if seed is None else seed
    if t.name == "sudoku":
        from .tasks import sudoku

        lo, hi = t.givens or (28, 40)
        pool = sudoku.SudokuPool.generate(n, seed=seed)
        x, y = pool.sample(n, (lo, hi), np.random.default_rng(seed), augment=False)
        return TaskData(x, y, f"{n} held-out Sudoku puzzles, {lo}-{hi} givens, seed {seed}")
    from .tasks import digits

    x, y = digits.load(split)
    if split != "test":
        pick = np.random.default_rng(seed).permutation(len(x))[:n]
        x, y = x[pick], y[pick]
    return TaskData(x[:n].astype(np.float32), y[:n, None], f"{min(n, len(x))} digits (scikit-learn {split} split)")


@dataclass
class ExportOutcome:
    folder: Path
    results: dict
    exit_code: int


def _torch_variant(model, data: TaskData, name: str, batch: int):
    from .tasks.evaluate import rollout_predictions
    from .validate.compare import Variant

    t0 = time.time()
    preds, halts, last = rollout_predictions(model, data.inputs, batch_size=batch)
    return Variant(name, preds, halts, last, time.time() - t0)


def _halt_threshold(recipe: Recipe, model, log: Callable[[str], None]) -> float:
    """The recipe's threshold, or with 'auto' the smallest one (from a grid) whose answers at the halting step
    are within `halt_tolerance` of the full-budget accuracy on held-out data (disjoint seed): the halting head
    of a model trained with ACT may fire too early for deployment (the TRM demo loses 7 points at 0)."""
    v = recipe.validate_
    if v.halt_threshold != "auto" or model.family == "deq":
        return 0.0 if v.halt_threshold == "auto" else float(v.halt_threshold)
    from .tasks.evaluate import rollout_predictions
    from .tasks.metrics import step_metrics

    cal = load_task(recipe, v.halt_calibration_n, recipe.task.seed + 7919, split="train")
    preds, halts, _ = rollout_predictions(model, cal.inputs, batch_size=v.batch_size)
    preds = [p.reshape(cal.labels.shape) for p in preds]
    for t in (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0):
        m = step_metrics(preds, cal.labels, halts, threshold=t)
        if m.exact_halted >= m.exact_per_step[-1] - v.halt_tolerance:
            log(f"halting threshold {t}: exact {m.exact_halted:.3f} at the halting step vs {m.exact_per_step[-1]:.3f} at the "
                f"full budget, mean {m.mean_steps:.2f} steps ({len(cal.inputs)} held-out samples)")
            return t
    log("no halting threshold up to 8 keeps accuracy; using 8")
    return 8.0


def _entry(v, data: TaskData, thr: float, ref, parity_with) -> dict:
    from .validate.compare import agreement, variant_metrics

    sm = variant_metrics(v, data.labels, thr)
    e = {"name": v.name, "metrics": sm.summary(), "seconds": round(v.seconds or 0.0, 3)}
    if sm.halting_histogram() is not None:
        e["halting_histogram"] = sm.halting_histogram()
    if ref is not None:
        e["vs_reference"] = agreement(v, ref)
    if parity_with is not None:
        # export parity: the same precision on both sides, so differences are the exporter's alone
        e["vs_pytorch_float32"] = agreement(v, parity_with)
    return e


def _onnx_variant(runner, data: TaskData, name: str, batch: int):
    from .validate.compare import Variant

    t0 = time.time()
    chunks = [runner.run(data.inputs[i:i + batch]) for i in range(0, len(data.inputs), batch)]
    steps = len(chunks[0].preds)
    return Variant(name, [np.concatenate([c.preds[s] for c in chunks]) for s in range(steps)],
                   [np.concatenate([c.halt[s] for c in chunks]) for s in range(steps)] if chunks[0].halt else [],
                   np.concatenate([c.logits for c in chunks]), time.time() - t0)


def _input_spec(model) -> dict:
    if model.family == "deq":
        return {"dtype": "float32", "shape": ["batch", model.encoder.in_features]}
    return {"dtype": "int64", "shape": ["batch", model.config.seq_len], "range": [0, model.config.vocab_size - 1]}


def quantize_fingerprint(weights_sha256: str, recipe: Recipe, halt_threshold: float) -> str:
    """Everything outside the quantize section that changes a calibration or search result: the weights, the
    task data, the opset, the graph rewrite and the halting threshold the search scores at. Part of every
    quantization cache key (the quantize section itself is added by the quantize stage)."""
    ex = recipe.export
    return f"{weights_sha256}|{recipe.task.model_dump()}|opset{ex.opset}|halt{halt_threshold}|opt{ex.optimize}"


def run_export(recipe_path: str | Path, out: str | Path | None = None, log: Callable[[str], None] = print) -> ExportOutcome:
    """The whole pipeline; returns the artefact folder, results and the exit code the gates decide."""
    recipe, base = load_recipe(recipe_path)
    target = load_target(recipe.target)
    model_path = (base / recipe.model.path).resolve()
    final = Path(out) if out else (base / (recipe.output or f"../artefacts/{recipe.name}")).resolve()
    from .models.checkpoint import find_files, load_model  # heavy imports only after the recipe is valid

    if not model_path.exists():
        raise RecipeError(f"model.path {recipe.model.path!r} does not exist (resolved to {model_path})", "paths in a recipe are relative to the recipe file")
    log(f"loading {model_path}")
    native = load_model(model_path, seq_len=recipe.model.seq_len)
    native_dtype = native.config.forward_dtype if native.family != "deq" else "float32"
    # The ONNX graphs are fp32; a bf16-trained model is also run in fp32 PyTorch to separate export error from precision.
    fp32 = native if native_dtype == "float32" else load_model(model_path, seq_len=recipe.model.seq_len, forward_dtype="float32")
    data = load_task(recipe)
    weights_file = find_files(model_path)[0]
    with atomic_folder(final) as tmp:
        from .export import ExportPlan, export_forms

        ex = recipe.export
        thr = _halt_threshold(recipe, fp32, log)
        log(f"exporting ONNX ({', '.join(ex.forms)}; {', '.join(ex.precisions)}; opset {ex.opset})")

        def load(precision: str):
            return fp32 if precision == "float32" else load_model(model_path, seq_len=recipe.model.seq_len, forward_dtype=precision)

        precisions = list(ex.precisions) + (["float16"] if "float16" in recipe.quantize.modes and "float16" not in ex.precisions else [])
        exported = export_forms(load, tmp, ExportPlan(list(ex.forms), precisions, ex.opset, thr, ex.optimize))
        files = dict(exported.files)
        variants = dict(exported.variants)
        if native.family == "deq":
            init = {"kind": "zeros", "shape": [native.hidden_size]}
        else:
            np.savez(tmp / "initial_state.npz", z_H=native.H_init.float().numpy(), z_L=native.L_init.float().numpy())
            files["initial_state"] = "initial_state.npz"
            init = {"kind": "broadcast", "file": "initial_state.npz"}
        recipe_bytes = Path(recipe_path).read_bytes()
        manifest = {
            "schema_version": ARTEFACT_SCHEMA_VERSION, "edgekit_version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "recipe": {"name": recipe.name, "sha256": hashlib.sha256(recipe_bytes).hexdigest()},
            "target": target.name,
            "model": {"family": native.family, "checkpoint": str(weights_file.name), "checkpoint_sha256": sha256_file(weights_file),
                      "config": native.config.model_dump() if hasattr(native, "config") else {"hidden_size": native.hidden_size, "solver": native.solver.model_dump()}},
            "graph": {"forms": list(ex.forms), "opset": ex.opset, "state_names": list(native.state_names),
                      "step_budget": native.step_budget, "unrolled_steps": native.step_budget, "halt_threshold": thr,
                      "initial_state": init, "input": _input_spec(native),
                      "halting": "halt > halt_threshold (TRM: q_halt; HRM: q_halt - q_continue)" if native.family != "deq"
                      else f"residual = |f(z) - z| / |f(z)| <= tol ({native.solver.name} solver)"},
            "files": files,
            "variants": variants,
            "sha256": {},
            "export_seconds": {k: round(g.seconds, 3) for k, g in zip(exported.files, exported.graphs)},
            "bytes": {k: (tmp / rel).stat().st_size for k, rel in files.items()},
            "quantization": {},
        }
        write_json(tmp / "manifest.json", manifest)   # the float variants: what the quantize stage reads
        quant_info: dict = {}
        if any(m != "float16" for m in recipe.quantize.modes):
            from .quantize import QuantizeJob, run_quantize

            q = recipe.quantize
            calib = load_task(recipe, q.calibration.n, q.calibration.seed, split="train")
            search_set = load_task(recipe, q.search.n, q.search.seed, split="train")
            fingerprint = quantize_fingerprint(sha256_file(weights_file), recipe, thr)
            qfiles, qvariants, quant_info = run_quantize(QuantizeJob(fp32, tmp, q, calib.inputs, search_set.inputs, search_set.labels,
                                                                     fingerprint, log))
            files.update(qfiles)
            variants.update(qvariants)
        manifest["quantization"] = quant_info
        manifest["bytes"] = {k: (tmp / rel).stat().st_size for k, rel in files.items()}
        write_json(tmp / "manifest.json", manifest)
        results = validate_artefact(tmp, recipe, native, fp32, data, manifest, log)
        passed = results["passed"]
        build = _target_stage(tmp, target, log)
        if build:
            results["target_build"] = build
            write_json(tmp / "results.json", results)
    code = EXIT_OK if passed else EXIT_ACCURACY_GATE
    if passed and build and build["exit_code"]:
        code = build["exit_code"]
    return ExportOutcome(final, results, code)


def validate_artefact(tmp: Path, recipe: Recipe, native, fp32, data: TaskData, manifest: dict,
                      log: Callable[[str], None] = print) -> dict:
    """The validation stage on an artefact folder: every variant against the PyTorch reference, forms parity,
    DEQ fixed-point report, gates; writes results.json, golden.npz, junit.xml, plots, report.md and the
    manifest's hashes. Used by `edgekit export` (last stage) and `edgekit validate` (an existing artefact)."""
    files, variants = manifest["files"], manifest["variants"]
    quant_info = manifest.get("quantization", {})
    thr = float(manifest["graph"].get("halt_threshold", 0.0))
    native_dtype = native.config.forward_dtype if native.family != "deq" else "float32"
    target = load_target(recipe.target)
    log(f"validating on {data.description}")
    from .validate.compare import agreement, variant_metrics
    from .validate.drift import state_drift
    from .validate.forms import loop_parity, unrolled_parity
    from .validate.gates import evaluate_gates

    bs = recipe.validate_.batch_size
    ref = _torch_variant(native, data, f"pytorch ({native_dtype})", bs)
    fp32_v = ref if fp32 is native else _torch_variant(fp32, data, "pytorch (float32)", bs)
    entries = [_entry(ref, data, thr, None, None)]
    if fp32_v is not ref:
        entries.append(_entry(fp32_v, data, thr, ref, None))
    solver_its = None
    if native.family == "deq":
        import torch

        sol = native.solve(torch.from_numpy(data.inputs))
        solver_its = sol.iterations.numpy()
        acc = float((native.head(sol.z).argmax(-1).numpy() == data.labels[:, 0]).mean())
        entries.append({"name": f"pytorch ({native.solver.name} solve)", "metrics": {
            "exact_full": acc, "cell_full": acc, "mean_iterations": float(sol.iterations.float().mean()),
            "converged": float(sol.converged.float().mean())}})
    onnx_entries = []
    from .runtime import Runner

    onnx_fp32 = None
    for precision in variants:
        runner = Runner(tmp, variant=precision)
        v = _onnx_variant(runner, data, f"onnx ({precision}, step graph, host loop)", bs)
        # export parity against the same precision in PyTorch where there is one
        e = _entry(v, data, thr, ref, fp32_v if precision == "float32" else None)
        if precision == "float32":
            onnx_fp32 = (runner, v)
        else:  # compression vs the float32 graphs it came from: same halting step, state drift per step
            e["vs_onnx_float32"] = agreement(v, onnx_fp32[1])
            e["state_drift_vs_onnx_float32"] = state_drift(onnx_fp32[0], runner, data.inputs[:16])
        if precision in quant_info:
            e["quantization"] = {k: val for k, val in quant_info[precision].items() if k != "trials"}
        e["bytes"] = sum((tmp / files[key]).stat().st_size for g, key in variants[precision].items() if g in ("encode", "step", "readout"))
        if "loop" in variants[precision]:
            e["loop"] = loop_parity(runner, data.inputs, data.labels, v, bs, thr if native.family != "deq" else native.solver.tol, solver_its)
        if native.family == "deq":
            from .validate.deq import fixed_point_report

            sol = runner.solve(data.inputs, mode="loop" if "loop" in variants[precision] else "host")
            e["fixed_point"] = fixed_point_report(fp32, data.inputs, sol.state, sol.steps, sol.done)
        if "unrolled" in variants[precision]:
            e["unrolled"] = unrolled_parity(runner, data.inputs, data.labels, v, bs)
        entries.append(e)
        onnx_entries.append(e)
    gates = [g for e in onnx_entries for g in evaluate_gates(recipe.gates, entries[0], e)]
    passed = all(x["passed"] for x in gates)
    results = {"schema_version": RESULTS_SCHEMA_VERSION, "recipe": recipe.name, "target": target.name,
               "data": data.description, "reference": ref.name, "variants": entries, "gates": gates, "passed": passed,
               "environment": {"python": platform.python_version(), "machine": platform.machine(), "edgekit": __version__}}
    write_json(tmp / "results.json", results)
    from .runtime.verify import GOLDEN, write_golden
    from .validate.junit import junit_xml
    from .validate.plots import write_plots

    write_golden(tmp, data.inputs[: min(8, len(data.inputs))])
    files["golden"] = GOLDEN
    (tmp / "junit.xml").write_text(junit_xml(results))
    plots = write_plots(results, tmp)
    (tmp / "report.md").write_text(_report(results, manifest, plots))
    manifest["sha256"] = {name: sha256_file(tmp / rel) for name, rel in files.items()}
    write_json(tmp / "manifest.json", manifest)
    return results


def _target_stage(folder: Path, target, log: Callable[[str], None]) -> dict | None:
    """TensorRT targets: static compatibility check, then an on-device build script, then an engine build where
    TensorRT is installed. Returns what happened, with the exit code it implies (0, 5 no TensorRT, 6 incompatible)."""
    if target.backend != "tensorrt":
        return None
    from .build.check import check_artefact
    from .build.plan import write_plan
    from .errors import EXIT_INCOMPATIBLE, EXIT_TOOLCHAIN, EdgekitError

    report = check_artefact(folder, target)
    out = {"check": report.to_dict(), "compatible": report.compatible}
    if not report.compatible:
        log(f"not compatible with {target.name}: {report.errors()[0].message if report.errors() else report.verdict}")
        return {**out, "exit_code": EXIT_INCOMPATIBLE}
    script = write_plan(folder, target)
    out["plan"] = script.name
    log(f"wrote {script.name}: builds the engines on the device with trtexec")
    if target.device_model:  # Jetson: engines are built on the device itself, the script is the deliverable
        return {**out, "engine": "build on the device with " + script.name, "exit_code": 0}
    try:
        from .build.tensorrt_builder import build_engines

        engines = build_engines(folder, target, log=log)
        return {**out, "engine": str(engines.relative_to(folder)), "exit_code": 0}
    except EdgekitError as e:
        log(f"no engine built here: {e}")
        return {**out, "engine": None, "engine_error": str(e), "exit_code": e.exit_code if e.exit_code != 2 else EXIT_TOOLCHAIN}


def _report(results: dict, manifest: dict, plots: list[str] = ()) -> str:
    lines = [f"# edgekit report: {results['recipe']}", "", f"Target: {results['target']}. Data: {results['data']}.", "",
             "| variant | exact@1 | exact@budget | cell@budget | exact (early halting) | halted before cap | argmax agreement vs reference |",
             "|---|---|---|---|---|---|---|"]
    for e in results["variants"]:
        m = e["metrics"]
        f = lambda k: f"{m[k]:.3f}" if isinstance(m.get(k), float) else "–"  # noqa: E731
        agr = e.get("vs_reference", {}).get("argmax_agreement_last")
        lines.append(f"| {e['name']} | {f('exact_1')} | {f('exact_full')} | {f('cell_full')} | {f('exact_halted')} | {f('halted_before_cap')} | {'–' if agr is None else f'{agr:.4f}'} |")
    lines += ["", "## Gates", ""] + [f"- {g['name']} on {g['variant']}{' vs ' + g['against'] if g.get('against', 'reference') != 'reference' else ''}: "
                                     f"{g['value']} (limit {g['limit']}) → {'passed' if g['passed'] else 'FAILED'}" for g in results["gates"]]
    forms = [(e["name"], k, e[k]) for e in results["variants"] for k in ("loop", "unrolled") if k in e]
    if forms:
        lines += ["", "## Deployment forms (same graphs, other execution)", "",
                  "| variant | form | exact | mean steps | same halting step as host | same answer as host | seconds |", "|---|---|---|---|---|---|---|"]
        for name, k, f in forms:
            g = lambda key: "–" if f.get(key) is None else f"{f[key]:.3f}"  # noqa: E731
            same = f.get("same_answer_as_host", f.get("argmax_agreement_with_host_last"))
            lines.append(f"| {name} | {k} | {g('exact')} | {g('mean_steps')} | {g('same_halting_step_as_host')} | {'–' if same is None else f'{same:.4f}'} | {g('seconds')} |")
    quant = [(e["name"], e["quantization"]) for e in results["variants"] if e.get("quantization")]
    if quant:
        lines += ["", "## Quantization", ""]
        for name, q in quant:
            kept = q.get("keep_float")
            lines.append(f"- {name}: {q.get('method')}; {q.get('quantize_linear_nodes', 0)} QuantizeLinear nodes; step graph "
                         f"{q.get('step_bytes', 0) / 1e6:.2f} MB; kept float: {kept}")
    lines += ["", f"Overall: {'PASSED' if results['passed'] else 'FAILED'}", ""]
    lines += [f"![{p}]({p})" for p in plots]
    return "\n".join(lines)


def run_validate(recipe_path: str | Path, artefact: str | Path, log: Callable[[str], None] = print) -> ExportOutcome:
    """`edgekit validate`: re-run the validation stage of an existing artefact against the recipe's model and
    data (e.g. after changing gates, or in a CI job that did not build the artefact). The artefact is updated
    atomically: validated in a copy, then swapped in."""
    import json
    import shutil

    from .runtime.runner import ArtefactError, Runner

    recipe, base = load_recipe(recipe_path)
    target = load_target(recipe.target)
    artefact = Path(artefact)
    try:
        Runner(artefact)
        manifest = json.loads((artefact / "manifest.json").read_text())
    except ArtefactError as e:
        raise RecipeError(str(e).split(":")[0], "pass an artefact folder written by `edgekit export`") from None
    from .models.checkpoint import load_model

    model_path = (base / recipe.model.path).resolve()
    if not model_path.exists():
        raise RecipeError(f"model.path {recipe.model.path!r} does not exist (resolved to {model_path})", "paths in a recipe are relative to the recipe file")
    if manifest["model"].get("checkpoint_sha256"):
        from .models.checkpoint import find_files

        if sha256_file(find_files(model_path)[0]) != manifest["model"]["checkpoint_sha256"]:
            raise RecipeError(f"the artefact in {artefact} was not exported from {model_path}",
                              "validate against the recipe and checkpoint it was exported from")
    native = load_model(model_path, seq_len=recipe.model.seq_len)
    native_dtype = native.config.forward_dtype if native.family != "deq" else "float32"
    fp32 = native if native_dtype == "float32" else load_model(model_path, seq_len=recipe.model.seq_len, forward_dtype="float32")
    data = load_task(recipe)
    with atomic_folder(artefact) as tmp:
        shutil.copytree(artefact, tmp, dirs_exist_ok=True)
        results = validate_artefact(tmp, recipe, native, fp32, data, manifest, log)
    return ExportOutcome(artefact, results, EXIT_OK if results["passed"] else EXIT_ACCURACY_GATE)
