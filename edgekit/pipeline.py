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


def load_task(recipe: Recipe) -> TaskData:
    t = recipe.task
    if t.name == "sudoku":
        from .tasks import sudoku

        lo, hi = t.givens or (28, 40)
        pool = sudoku.SudokuPool.generate(t.n, seed=t.seed)
        x, y = pool.sample(t.n, (lo, hi), np.random.default_rng(t.seed), augment=False)
        return TaskData(x, y, f"{t.n} held-out Sudoku puzzles, {lo}-{hi} givens, seed {t.seed}")
    from .tasks import digits

    x, y = digits.load("test")
    return TaskData(x[: t.n], y[: t.n, None], f"{min(t.n, len(x))} held-out digits (scikit-learn test split)")


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


def _onnx_variant(folder: Path, data: TaskData, name: str, batch: int):
    from .runtime import Runner
    from .validate.compare import Variant

    runner = Runner(folder)
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


def run_export(recipe_path: str | Path, out: str | Path | None = None, log: Callable[[str], None] = print) -> ExportOutcome:
    """The whole pipeline; returns the artefact folder, results and the exit code the gates decide."""
    recipe, base = load_recipe(recipe_path)
    target = load_target(recipe.target)
    if target.backend != "onnxruntime":
        from .errors import ToolchainUnavailable

        raise ToolchainUnavailable(f"target {target.name!r} needs TensorRT engines, which this version cannot build yet",
                                   "use target: x86-cpu (engine builds for Jetson/RTX arrive with `edgekit build`/`plan`)")
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
        log(f"exporting ONNX graphs (opset {recipe.export.opset})")
        from .export.onnx_export import export_step_graphs

        graphs = export_step_graphs(fp32, tmp, recipe.export.opset)
        files = {g.name: g.path.name for g in graphs}
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
            "graph": {"form": "step", "opset": recipe.export.opset, "dtype": "float32", "state_names": list(native.state_names),
                      "step_budget": native.step_budget, "initial_state": init, "input": _input_spec(native),
                      "halting": "halt > 0 (TRM: q_halt; HRM: q_halt - q_continue)" if native.family != "deq" else "residual = |f(z) - z| / |f(z)|"},
            "files": files,
            "sha256": {},
            "export_seconds": {g.name: round(g.seconds, 3) for g in graphs},
        }
        write_json(tmp / "manifest.json", manifest)
        log(f"validating on {data.description}")
        from .validate.compare import agreement, variant_metrics
        from .validate.gates import evaluate_gates

        bs = recipe.validate_.batch_size
        ref = _torch_variant(native, data, f"pytorch ({native_dtype})", bs)
        variants = [ref]
        if fp32 is not native:
            variants.append(_torch_variant(fp32, data, "pytorch (float32)", bs))
        onnx_v = _onnx_variant(tmp, data, "onnx (float32, step graph)", bs)
        variants.append(onnx_v)
        thr = recipe.validate_.halt_threshold
        entries = []
        fp32_v = variants[1] if fp32 is not native else ref
        for v in variants:
            m = variant_metrics(v, data.labels, thr).summary()
            entry = {"name": v.name, "metrics": m, "seconds": round(v.seconds or 0.0, 3)}
            if v is not ref:
                entry["vs_reference"] = agreement(v, ref)
            if v is onnx_v:
                # export parity: the same precision on both sides, so differences are the exporter's alone
                entry["vs_pytorch_float32"] = agreement(v, fp32_v)
            entries.append(entry)
        if native.family == "deq":
            import torch

            sol = native.solve(torch.from_numpy(data.inputs))
            acc = float((native.head(sol.z).argmax(-1).numpy() == data.labels[:, 0]).mean())
            entries.append({"name": f"pytorch ({native.solver.name} solve)", "metrics": {
                "exact_full": acc, "cell_full": acc, "mean_iterations": float(sol.iterations.float().mean()),
                "converged": float(sol.converged.float().mean())}})
        onnx_entry = next(e for e in entries if e["name"] == onnx_v.name)
        gates = evaluate_gates(recipe.gates, entries[0], onnx_entry)
        passed = all(x["passed"] for x in gates)
        results = {"schema_version": RESULTS_SCHEMA_VERSION, "recipe": recipe.name, "target": target.name,
                   "data": data.description, "reference": ref.name, "variants": entries, "gates": gates, "passed": passed,
                   "environment": {"python": platform.python_version(), "machine": platform.machine(), "edgekit": __version__}}
        write_json(tmp / "results.json", results)
        (tmp / "report.md").write_text(_report(results, manifest))
        manifest["sha256"] = {name: sha256_file(tmp / rel) for name, rel in files.items()}
        write_json(tmp / "manifest.json", manifest)
    return ExportOutcome(final, results, EXIT_OK if passed else EXIT_ACCURACY_GATE)


def _report(results: dict, manifest: dict) -> str:
    lines = [f"# edgekit report: {results['recipe']}", "", f"Target: {results['target']}. Data: {results['data']}.", "",
             "| variant | exact@1 | exact@budget | cell@budget | exact (early halting) | halted before cap | argmax agreement vs reference |",
             "|---|---|---|---|---|---|---|"]
    for e in results["variants"]:
        m = e["metrics"]
        f = lambda k: f"{m[k]:.3f}" if isinstance(m.get(k), float) else "–"  # noqa: E731
        agr = e.get("vs_reference", {}).get("argmax_agreement_last")
        lines.append(f"| {e['name']} | {f('exact_1')} | {f('exact_full')} | {f('cell_full')} | {f('exact_halted')} | {f('halted_before_cap')} | {'–' if agr is None else f'{agr:.4f}'} |")
    lines += ["", "## Gates", ""] + [f"- {g['name']}: {g['value']} (limit {g['limit']}) → {'passed' if g['passed'] else 'FAILED'}" for g in results["gates"]]
    lines += ["", f"Overall: {'PASSED' if results['passed'] else 'FAILED'}", ""]
    return "\n".join(lines)
