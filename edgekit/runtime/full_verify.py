"""`edgekit verify --full`: the artefact's own gates, re-applied on this device with the runtime alone.

Every recorded validation example (references.npz) is re-run through the variant on whatever backend and provider
the device uses, exactly as validation ran it (every step of the budget, in chunks of validation's batch size, the
halting step chosen from the halting logits at the artefact's validated threshold). The device's answers are then
scored against the recorded reference answers with the gate code validation uses (`gate_eval`): same gate names,
limits, 95 % intervals and exit codes (0 passed, 3 an accuracy gate failed, 4 only a budget failed). Compressed
variants' halting agreement is measured against the float32 export's recorded answers, as at export. Latency gates
are re-measured here (validation's protocol, runtime/latency.py: host loop at `validate.latency_batch`, float32 and
the variants timed in turn in each round, medians with their intervals): a budget is about the device that runs the
model. Nothing is written into the artefact.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import progress
from ..errors import first_line
from .gate_eval import evaluate_gates, exact_per_sample, exit_code, paired_drop_interval, wilson
from .references import REFERENCE, Answers, References

_GRAPHS = ("encode", "step", "readout")  # the graphs a size budget counts (as validation does)
LATENCY_GATES = ("max_latency_ms", "min_speedup_vs_float32")
# gates the device cannot evaluate, and why (the export's verdict on them stands, in results.json)
NOT_ON_DEVICE = {"max_residual": "a DEQ's residual under the original model needs PyTorch"}


class Gates(dict[str, Any]):
    """The recorded gate settings as the attributes evaluate_gates reads (an unset gate is None)."""

    def __getattr__(self, name: str) -> Any:
        return self.get(name)


@dataclass
class FullReport:
    """The device's gate records (each with the export's value next to it) and how its answers compare."""

    variants: list[str]
    examples: int
    validated: int
    kept: str
    gates: list[dict[str, Any]] = field(default_factory=list)
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)  # per variant: device vs the export's answers
    not_evaluated: list[str] = field(default_factory=list)
    seconds: float = 0.0
    names: dict[str, str] = field(default_factory=dict)  # results.json's entry name -> variant (as shown)

    def short(self, entry_name: str) -> str:
        """A gate record's variant as its precision name (results.json names the whole entry)."""
        return self.names.get(entry_name, entry_name)

    @property
    def exit_code(self) -> int:
        return exit_code(self.gates)

    def as_dict(self) -> dict[str, Any]:
        return {
            "variants": self.variants,
            "examples": self.examples,
            "examples_validated": self.validated,
            "kept": self.kept,
            "gates": self.gates,
            "answers_vs_export": self.answers,
            "not_evaluated": self.not_evaluated,
            "seconds": round(self.seconds, 3),
            "exit_code": self.exit_code,
        }


def device_answers(runner: Any, refs: References, label: str) -> Answers:
    """The runner's answers to every recorded example, computed as validation computed the export's."""
    x, bs = refs.inputs, int(refs.meta["batch_size"])
    thr = float(refs.meta.get("variant_thresholds", {}).get(runner.variant, refs.meta["threshold"]))
    ids = refs.puzzle_ids if runner.takes_puzzle_ids else None
    parts = []
    with progress.task(label, len(x)) as bar:
        for i in range(0, len(x), bs):
            r = runner.run(x[i : i + bs], puzzle_ids=None if ids is None else ids[i : i + bs])
            parts.append(Answers.of(r, thr))
            bar.advance(len(parts[-1].full))
    return Answers.concatenate(parts)


def metrics(name: str, a: Answers, labels: np.ndarray) -> dict[str, Any]:
    """An entry's `metrics` as results.json has them (the fields gates read)."""
    n = len(labels)
    exact = float(np.mean(exact_per_sample(a.full, labels)))
    m: dict[str, Any] = {"exact_full": exact, "exact_full_interval": wilson(round(exact * n), n)}
    if a.halted is not None:
        m["exact_halted"] = float(np.mean(exact_per_sample(a.halted, labels)))
    return {"name": name, "metrics": m}


def versus(cand: Answers, ref: Answers, labels: np.ndarray) -> dict[str, Any]:
    """validate.compare.agreement(cand, ref, threshold, labels), the fields gates read, from reduced answers."""
    out: dict[str, Any] = {"argmax_agreement_last": float(np.mean(cand.full == ref.full))}
    if cand.steps is not None and ref.steps is not None:
        same = cand.steps == ref.steps
        out["halting_step_agreement"] = float(np.mean(same))
        out["halting_step_agreement_interval"] = wilson(int(np.sum(same)), len(same))
    out["exact_drop_interval"] = paired_drop_interval(
        exact_per_sample(ref.full, labels), exact_per_sample(cand.full, labels)
    )
    if cand.halted is not None and ref.halted is not None:
        out["exact_halted_drop_interval"] = paired_drop_interval(
            exact_per_sample(ref.halted, labels), exact_per_sample(cand.halted, labels)
        )
    return out


class _ARC:
    """ARC pass@2 after voting, as validation scores it (runtime/arc.py), for the max_pass2_drop gate."""

    def __init__(self, refs: References) -> None:
        from .arc import parse_name, prepare

        names = refs.meta.get("arc_names") or {}
        ids = refs.puzzle_ids
        if ids is None or not names:
            self.augs = None
            return
        try:
            self.augs = [parse_name(names[str(int(i))]) for i in ids]
        except (KeyError, ValueError) as e:
            from .errors import ArtefactError

            raise ArtefactError(
                f"references.npz names no augmentation for an example ({first_line(e, 80)}); re-run `edgekit export`"
            ) from None
        self.inputs = refs.inputs
        self.prepared = prepare(refs.inputs, self.augs, refs.labels)

    def task_metrics(self, a: Answers) -> dict[str, Any] | None:
        from .arc import pass_at, vote

        if self.augs is None or a.q_full is None:
            return None
        preds = a.full.astype(np.int64).reshape(len(a.full), -1)
        tasks = vote(self.inputs, preds, a.q_full, self.augs, prepared=self.prepared)
        return {"arc": {"budget": {"pass@2": pass_at(tasks, 2)}}}


def _timing(
    folder: Path, refs: References, variants: list[str], make_runner: Callable[[Path, str], Any]
) -> dict[str, dict[str, Any]]:
    """Latency of every variant and float32 as validation measured it: interleaved rounds at validation's batch,
    examples and rounds (older artefacts without a round count: 3, what their single timings were medians of)."""
    from .latency import interleaved_latency

    lat = refs.meta["latency"]
    names = ["float32", *(v for v in variants if v != "float32")]
    runners = {v: make_runner(folder, v).validated_settings() for v in names}
    x = refs.inputs[: int(lat["examples"])]
    ids = None if refs.puzzle_ids is None else refs.puzzle_ids[: len(x)]
    return interleaved_latency(runners, x, ids, int(lat["batch"]), int(lat.get("rounds") or 3))


def _same(a: Answers, b: Answers) -> dict[str, Any]:
    """How the device's answers compare with the export's, example by example."""
    out: dict[str, Any] = {
        "same_predictions": round(float(np.mean(a.full == b.full)), 6),
        "same_answers": round(float(np.mean((a.full == b.full).all(-1))), 6),
    }
    if a.steps is not None and b.steps is not None:
        out["same_halting_steps"] = round(float(np.mean(a.steps == b.steps)), 6)
    return out


def verify_full(
    folder: Path,
    refs: References,
    variants: list[str],
    make_runner: Callable[[Path, str], Any],
    log: Callable[[str], None] = lambda s: None,
) -> FullReport:
    """Re-run `variants` of the artefact in `folder` on the recorded examples and apply its gates."""
    t0 = time.time()
    meta, labels = refs.meta, refs.labels
    gates = Gates(meta["gates"])
    family = str(meta.get("family", "trm"))
    rep = FullReport(list(variants), refs.n, int(meta["examples_validated"]), str(meta["kept"]))
    rep.not_evaluated = [f"{g}: {why}" for g, why in NOT_ON_DEVICE.items() if gates.get(g) is not None]
    arc = _ARC(refs) if gates.max_pass2_drop is not None else None
    ref_answers = refs.answers[REFERENCE]
    ref_entry = metrics(str(meta["reference"]), ref_answers, labels)
    tm = arc.task_metrics(ref_answers) if arc else None
    if tm:
        ref_entry["task_metrics"] = tm
    timed = any(gates.get(g) is not None for g in LATENCY_GATES)
    timing = _timing(folder, refs, variants, make_runner) if timed else {}
    export_gates = {(g.get("name"), g.get("variant")): g for g in meta["export_gates"] if isinstance(g, dict)}
    for variant in variants:
        runner = make_runner(folder, variant).validated_settings()
        # a configuration the export validated on this backend and precision (validate.openvino: openvino-bf16) is
        # what the device's answers are compared with; else the variant as onnxruntime ran it at export
        config = refs.configuration(
            variant, getattr(runner, "backend", "onnxruntime"), getattr(runner, "precision", None)
        )
        name = config or str(meta["variants"][variant])
        rep.names[name] = variant if config is None else f"{config} ({variant})"  # export values: its
        log(f"verify --full: {variant} on {len(refs.inputs)} recorded examples")
        device = device_answers(runner, refs, f"verify --full {variant}")
        exported = refs.answers[config or variant]
        entries = []
        for a in (device, exported):
            e = metrics(name, a, labels)
            e["vs_reference"] = versus(a, ref_answers, labels)
            parent = refs.answers.get("float32")
            if variant != "float32" and parent is not None:
                e["vs_onnx_float32"] = versus(a, parent, labels)
            tm = arc.task_metrics(a) if arc else None
            if tm:
                e["task_metrics"] = tm
            e["bytes"] = sum(runner.file(k).stat().st_size for g, k in runner.graphs.items() if g in _GRAPHS)
            entries.append(e)
        if timed:
            entries[0]["latency"] = timing[variant]
        before = {(g["name"], g["variant"]): g for g in evaluate_gates(gates, ref_entry, entries[1], family)}
        for g in evaluate_gates(gates, ref_entry, entries[0], family):
            was = before.get((g["name"], g["variant"])) or export_gates.get((g["name"], g["variant"]))
            g["export_value"] = was["value"] if was else None
            g["export_passed"] = was["passed"] if was else None
            rep.gates.append(g)
        rep.answers[variant] = _same(device, exported)
    rep.seconds = time.time() - t0
    return rep
