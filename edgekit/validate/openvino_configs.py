"""OpenVINO configurations validated like any variant (`validate.openvino: [f32, bf16, f16, int8]`).

A device that runs the artefact with `--backend openvino --ov-precision bf16` runs the float32 graphs in another
precision than onnxruntime's, so the answers onnxruntime's validation recorded do not vouch for it. Here each listed
precision runs its graphs through the runtime's OpenVINO backend on this machine's CPU (the host loop a device runs,
runtime/openvino_backend.py), every step of every validation example recorded as for an ONNX variant, and gets an
entry `openvino-<precision>` with an ONNX variant's accuracy gates. f32, bf16 and f16 run the float32 graphs; int8
runs the int8_weight_only variant's graphs (NNCF INT8 weights) with OpenVINO quantizing each token's activations to
INT8 at run time, so it needs that quantize mode in the recipe. The gates:

- against float32 PyTorch (`against: pytorch_float32`), always: like-for-like with the graphs OpenVINO compiled;
- where validation also runs the model in its trained precision (`validate.reference: trained` or `both`), the
  reduced precisions (bf16, f16) also against that reference (`against: pytorch_bfloat16`, ...).

Beside the gates: agreement with onnxruntime's float32 rollout (`vs_onnxruntime_float32`, not gated; for int8 also
with onnxruntime's rollout of the same INT8-weight graphs, activations in float: `vs_onnxruntime_int8_weight_only`),
and the deployed host loop itself (`solve`: early halting and batch compaction) against the recorded rollout
(`host_loop`), so the entry speaks for what a device runs. Rollouts are cached like an ONNX variant's, keyed also by
the OpenVINO version, the CPU's name, the precision and the activation group.

OpenVINO missing, a precision this CPU lacks, or int8 without its quantize mode, is one line before any work
(`check_openvino`, exit 2).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError, RecipeError
from ..schema import Recipe
from .compare import Variant, agreement

if TYPE_CHECKING:
    from ..manifest import Manifest
    from .stage import _Onnx, _Run

PREFIX = "openvino-"
DEVICE = "CPU"  # validation runs here; an Intel GPU or NPU is judged with `edgekit verify --full` on the device
BASE_VARIANT = "float32"  # the graphs OpenVINO compiles: the artefact's float32 ONNX graphs
FLOAT32_REFERENCE = "pytorch_float32"


def config_name(precision: str) -> str:
    """The results.json entry (and gate variant) of an OpenVINO precision: openvino-bf16."""
    return PREFIX + precision


def check_openvino(recipe: Recipe) -> None:
    """Before any work: OpenVINO imports and this machine's CPU offers every precision `validate.openvino` lists;
    otherwise one line (exit 2) naming the extra or the precision."""
    precisions = recipe.validate_.openvino
    if not precisions:
        return
    from ..runtime.openvino_backend import INSTALL, PRECISIONS, import_openvino

    try:
        ov = import_openvino()
    except InputError:
        raise RecipeError(
            f"validate.openvino ({', '.join(precisions)}) runs the graphs with OpenVINO, which is not installed here",
            INSTALL,
        ) from None
    try:
        caps = list(ov.Core().get_property(DEVICE, "OPTIMIZATION_CAPABILITIES"))
    except RuntimeError:
        caps = []
    from ..quantize.modes import MODES

    for p in precisions:
        form = PRECISIONS[p].graphs_form
        if form is not None and not any(MODES[m].form == form for m in recipe.quantize.modes if m in MODES):
            makers = " or ".join(n for n, m in MODES.items() if m.form == form)
            raise RecipeError(
                f"validate.openvino lists {p}, which runs a variant of form {form}; quantize.modes makes none",
                f"add {makers} to quantize.modes, or remove {p} from validate.openvino",
            )
    lacking = [p for p in precisions if PRECISIONS[p].capability not in caps]
    if lacking:
        raise RecipeError(
            f"validate.openvino lists {', '.join(lacking)}, which OpenVINO has no inference for on this machine's CPU "
            f"(it lists {', '.join(caps) or 'none'})",
            "remove it from validate.openvino, or validate on a CPU that has it (bf16: AVX512-BF16 or AMX)",
        )


def graphs_of(manifest: Manifest, precision: str) -> str:
    """The artefact variant whose graphs an OpenVINO precision runs: float32, or the precision's own (int8: the
    variant with INT8 weights)."""
    from ..runtime.openvino_backend import precision_variant

    return precision_variant(manifest, precision) or BASE_VARIANT


def validate_openvino(run: _Run, onnx: list[_Onnx]) -> list[dict]:
    """An entry per precision of `validate.openvino` (appended to the run's entries), in the listed order; `onnx`:
    the ONNX variants validated (onnxruntime's rollouts the configurations are compared with)."""
    out = []
    for precision in run.recipe.validate_.openvino:
        out.append(_configuration(run, precision, onnx))
        run.entries.append(out[-1])
    return out


def float32_reference(run: _Run) -> Any:
    """Float32 PyTorch, the reference every OpenVINO configuration is gated against: the run's own where it has
    one, else (`validate.reference: trained` of a model trained in another precision) rolled out here, its row
    added to results.json."""
    from .stage import _entry, _torch_variant

    for v in (run.ref, run.fp32_v):
        if v.key == FLOAT32_REFERENCE:
            return v
    if run.float32_ref is None:
        bs, sha = run.bs, run.manifest.model.checkpoint_sha256
        run.float32_ref = _torch_variant(run.fp32, run.data, "float32", bs, sha, run.log, run.scale)
        run.entries.append(_entry(run.float32_ref, run.data, run.thr, run.ref, None, run.task))
    return run.float32_ref


def _configuration(run: _Run, precision: str, onnx: list[_Onnx]) -> dict:
    from ..runtime.openvino_backend import OpenVINORunner
    from .stage import _entry

    graphs = graphs_of(run.manifest, precision)
    # complete=False: the manifest's hashes are written at the end of validation; nothing is cached outside the
    # artefact for graphs that are still being validated
    runner = OpenVINORunner(run.tmp, variant=graphs, device=DEVICE, precision=precision, complete=False,
                            cache=False)  # fmt: skip
    name = config_name(precision)
    v, hit = _rollout(run, runner, name, precision, graphs)
    thr = run.thr
    fp32 = float32_reference(run)
    e = _entry(v, run.data, thr, run.ref, None, run.task)
    if run.ref is not fp32:
        e["vs_pytorch_float32"] = agreement(v, fp32, thr, run.data.labels)
    by_precision = {o.precision: o for o in onnx}
    e["vs_onnxruntime_float32"] = agreement(v, by_precision[BASE_VARIANT].rollout, thr, run.data.labels)
    if graphs != BASE_VARIANT and graphs in by_precision:
        e[f"vs_onnxruntime_{graphs}"] = agreement(v, by_precision[graphs].rollout, thr, run.data.labels)
    if run.halting:
        e["halt_threshold"] = thr
        e["host_loop"] = _host_loop(run, runner, v)
    cpu = runner.device_name
    group = runner.config.get("DYNAMIC_QUANTIZATION_GROUP_SIZE", 0)
    e["openvino"] = {"version": runner.version, "device": DEVICE, "device_name": cpu, "precision": precision,
                     "graphs": graphs, "activation_group": group}  # fmt: skip
    e["computed_on"] = f"OpenVINO {runner.version} {DEVICE} ({cpu})"
    if hit:
        e["rollout_from_cache"] = True
    run.recorded.add_configuration(name, graphs, "openvino", precision, v)
    return e


def _rollout(run: _Run, runner: Any, name: str, precision: str, graphs: str) -> tuple[Variant, bool]:
    display = f"openvino ({precision}, {DEVICE}, {graphs} graphs, host loop)"
    return openvino_rollout(runner, run.data, run.bs, display, name, run.log)


def openvino_rollout(
    runner: Any, data: Any, batch: int, display: str, key: str, log: Any = None, steps: int | None = None
) -> tuple[Variant, bool]:
    """Every step of every example through an OpenVINO runner (Runner.run, batch by batch as an ONNX variant's
    rollout), read from the cache when these graph bytes ran on these examples with this OpenVINO, device and
    precision before; (the rollout named `display` / `key`, whether it came from the cache). Serial: the executors
    of edgekit/scale ship onnxruntime workers. `steps`: recorded per example (None: the step budget)."""
    from .. import progress
    from ..scale.work import onnx_solver
    from .reference import cached_rollout, keyed, onnx_rollout_key
    from .stage import runner_ids

    ids = runner_ids(runner, data)
    label = f"validating {key}"

    def compute() -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
        solve = onnx_solver(runner, steps)
        parts = []
        with progress.task(label, len(data.inputs)) as bar:
            for i in range(0, len(data.inputs), batch):
                parts.append(solve(data.inputs[i : i + batch], None if ids is None else ids[i : i + batch], batch))
                bar.advance(len(parts[-1][2]))
        preds = np.concatenate([p[0] for p in parts], axis=1)
        halts = np.concatenate([p[1] for p in parts], axis=1)
        return list(preds), list(halts) if len(halts) else [], np.concatenate([p[2] for p in parts])

    keys = [runner.graphs[g] for g in ("encode", "step", "readout")]
    extra = [k for k in ("initial_state", "puzzle_ids") if k in runner.manifest.files]
    files = [runner.file(k) for k in keys + extra]
    settings = ["openvino", runner.version, runner.device, runner.device_name, runner.precision, runner.state_names,
                runner.graph.state.initial.to_json(), runner.manifest.model.config,
                runner.config.get("DYNAMIC_QUANTIZATION_GROUP_SIZE")]  # fmt: skip
    total = steps or int(runner.graph.step_budget)
    key_ = onnx_rollout_key(files, keyed(data.inputs, ids), total, settings)
    t0 = time.time()
    (preds, halts, last), hit = cached_rollout("onnx", key_, compute, label, log)
    return Variant(display, preds, halts, last, time.time() - t0, key=key), hit


def _host_loop(run: _Run, runner: Any, v: Variant) -> dict:
    """The deployed path (`solve`: early halting, batch compaction) on every example against the recorded rollout
    at the same threshold: the share halting at the same step and giving the same answer there."""
    from ..tasks.metrics import exact_and_cell, halting_steps
    from .forms import _batches, _chunks
    from .stage import runner_ids

    data, thr = run.data, run.thr
    t0 = time.time()
    ids = runner_ids(runner, data)
    logits, steps, _ = _batches(runner, data.inputs, _chunks(len(data.inputs), run.bs), ids, mode="host",
                                threshold=thr)  # fmt: skip
    preds = logits.argmax(-1).reshape(data.labels.shape)
    hs = halting_steps(np.stack(v.halt), thr)
    want = np.stack(v.preds)[hs - 1, np.arange(len(hs))].reshape(data.labels.shape)
    exact, cell = exact_and_cell(preds, data.labels)
    return {
        "exact": exact,
        "cell": cell,
        "mean_steps": float(steps.mean()),
        "same_halting_step_as_rollout": float(np.mean(steps == hs)),
        "same_answer_as_rollout": float(np.mean((preds == want).reshape(len(hs), -1).all(-1))),
        "seconds": round(time.time() - t0, 3),
    }


def openvino_gates(run: _Run, entries: list[dict]) -> list[dict]:
    """Each configuration's accuracy gates, as an ONNX variant's: against float32 PyTorch; a reduced precision also
    against the trained-precision reference where validation runs one. `against` names the reference."""
    from .gates import evaluate_gates

    gs, family = run.recipe.gates, run.native.family
    fp32_entry = next(e for e in run.entries if e["name"] == FLOAT32_REFERENCE)
    out = []
    for e in entries:
        as_fp32 = {**e, "vs_reference": e.get("vs_pytorch_float32", e["vs_reference"])}
        for g in evaluate_gates(gs, fp32_entry, as_fp32, family):
            out.append({**g, "against": FLOAT32_REFERENCE} if g["against"] == "reference" else g)
        trained = run.ref.key != FLOAT32_REFERENCE and e["openvino"]["precision"] != "f32"
        if trained:
            ref_entry = run.entries[0]
            out += [{**g, "against": ref_entry["name"]} for g in evaluate_gates(gs, ref_entry, e, family)
                    if g["against"] == "reference"]  # fmt: skip
    return out
