"""Halting-threshold calibration: the threshold baked into the Loop form and the manifest, chosen on held-out
data before export (never on the validation examples)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..manifest import Manifest
from ..models.families import stopping_rule
from ..schema import Recipe
from ..stopping import HaltLogit
from ..tasks import TaskData, load_task

Log = Callable[[str], None]


def calibration_set(recipe: Recipe, log: Callable[[str], None]) -> TaskData:
    """The held-out examples thresholds are calibrated on (disjoint seed, calibration split). `auto` is the default
    threshold, so a small dataset of a user's own must not fail on the default count: unless the recipe sets
    `validate.halt_calibration_n`, it is capped at what the calibration split holds (and said)."""
    v = recipe.validate_
    n = v.halt_calibration_n
    if "halt_calibration_n" not in v.model_fields_set:
        from ..tasks.loading import calibration_size

        size = calibration_size(recipe.task)
        if size is not None and 0 < size < n:
            log(f"halting threshold: calibrating on the {size} examples the calibration split holds ({n} by default)")
            n = size
    return load_task(recipe.task, n, recipe.task.seed + 7919, split="train")


def calibrate_halt_threshold(
    recipe: Recipe, model, log: Callable[[str], None], weights_sha256: str | None = None
) -> float:
    """The recipe's threshold, or with 'auto' the smallest one (from a grid) whose answers at the halting step
    are within `halt_tolerance` of the full-budget accuracy on held-out data (disjoint seed): the halting head
    of a model trained with ACT may fire too early for deployment (the TRM demo loses 7 points at 0)."""
    v = recipe.validate_
    if v.halt_threshold != "auto" or stopping_rule(model.family) is not HaltLogit:  # only a halting head calibrates
        return 0.0 if v.halt_threshold == "auto" else float(v.halt_threshold)
    from ..tasks.metrics import step_metrics
    from .reference import reference_rollout

    cal = calibration_set(recipe, log)
    from ..export.graphs import takes_puzzle_ids

    ids = cal.puzzle_ids if takes_puzzle_ids(model) else None
    preds, halts, _ = reference_rollout(model, cal.inputs, v.batch_size, "halting threshold", weights_sha256, log, ids)
    preds = [p.reshape(cal.labels.shape) for p in preds]
    for t in (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0):
        m = step_metrics(preds, cal.labels, halts, threshold=t)
        assert m.exact_halted is not None, "ACT rollouts record halting logits at every step"
        if m.exact_halted >= m.exact_per_step[-1] - v.halt_tolerance:
            log(
                f"halting threshold {t}: exact {m.exact_halted:.3f} at the halting step "
                f"vs {m.exact_per_step[-1]:.3f} at the "
                f"full budget, mean {m.mean_steps:.2f} steps ({len(cal.inputs)} held-out samples)"
            )
            return t
    log("no halting threshold up to 8 keeps accuracy; using 8")
    return 8.0


# thresholds a compressed variant may take: below float32's too, since a variant whose halting logits run high
# (HRM INT8 halts 4-5 steps later) keeps its answers at a lower threshold in fewer steps
VARIANT_GRID = (-4.0, -3.0, -2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0)


@dataclass(frozen=True)
class Candidate:
    threshold: float
    exact_halted: float
    mean_steps: float


def pick_threshold(candidates: list[Candidate], floor: float) -> tuple[Candidate, bool]:
    """The candidate with the fewest mean steps whose exact accuracy at halting is at least `floor` (ties: the
    lower threshold), and True; when none reaches it, the most accurate one (ties: fewer steps), and False."""
    ok = [c for c in candidates if c.exact_halted >= floor - 1e-12]
    if ok:
        return min(ok, key=lambda c: (c.mean_steps, c.threshold)), True
    return max(candidates, key=lambda c: (c.exact_halted, -c.mean_steps, -c.threshold)), False


def calibrate_variant_thresholds(
    recipe: Recipe, folder: Path, manifest: Manifest, threshold: float, log: Callable[[str], None]
) -> dict[str, float]:
    """With `halt_threshold: auto` and a halting head, each compressed variant's own threshold, on the calibration
    examples float32's threshold was chosen on: the one with the fewest mean steps whose exact accuracy at halting
    stays within the recipe's limit (gates.max_exact_halted_drop, else validate.halt_tolerance) of the float32
    export's at `threshold`. A variant whose quantization moves the halting logits keeps its answers this way
    instead of halting early or late at float32's threshold. Empty when nothing is calibrated."""
    variants = [name for name in manifest.variants if name != "float32"]
    v = recipe.validate_
    if v.halt_threshold != "auto" or not variants or not manifest.stopping.halting_head:
        return {}
    from ..runtime import Runner
    from .compare import variant_metrics
    from .stage import onnx_rollout

    cal = _in_puzzle_table(calibration_set(recipe, log), Runner(folder, variant="float32", complete=False), log)
    if cal is None:
        return {}
    limit = recipe.gates.max_exact_halted_drop if recipe.gates.max_exact_halted_drop is not None else v.halt_tolerance

    def candidates(name: str, grid: tuple[float, ...]) -> list[Candidate]:
        runner = Runner(folder, variant=name, complete=False)
        rollout, _ = onnx_rollout(runner, cal, f"halting threshold of {name}", v.batch_size, log)
        out = []
        for t in grid:
            m = variant_metrics(rollout, cal.labels, t)
            assert m.exact_halted is not None and m.mean_steps is not None, "ACT rollouts record halting logits"
            out.append(Candidate(t, float(m.exact_halted), float(m.mean_steps)))
        return out

    base = candidates("float32", (threshold,))[0]
    floor = base.exact_halted - limit
    out: dict[str, float] = {}
    for name in variants:
        pick, ok = pick_threshold(candidates(name, tuple(sorted({*VARIANT_GRID, threshold}))), floor)
        out[name] = pick.threshold
        log(
            f"halting threshold of {name}: {pick.threshold:g}, exact {pick.exact_halted:.3f} at the halting step in "
            f"{pick.mean_steps:.2f} steps (float32 at {threshold:g}: {base.exact_halted:.3f} in {base.mean_steps:.2f}; "
            f"{len(cal.inputs)} held-out samples)"
            + ("" if ok else f"; no threshold keeps it within {limit:g} of float32: the most accurate is used")
        )
    return out


def _in_puzzle_table(cal: TaskData, runner: Any, log: Callable[[str], None]) -> TaskData | None:
    """The calibration examples the ONNX variants can run: an artefact that kept only some puzzle identifiers
    (`export.puzzle_ids`, e.g. the validation set's ARC tasks) cannot embed the others. None (and said) when it
    kept none of them: the compressed variants then answer at float32's threshold."""
    if not runner.takes_puzzle_ids or cal.puzzle_ids is None:
        return cal
    kept = np.isin(np.asarray(cal.puzzle_ids), runner.puzzles.original)
    if kept.all():
        return cal
    if not kept.any():
        log(
            "per-variant halting thresholds: none of the held-out calibration puzzles is in the artefact's puzzle "
            "table (export.puzzle_ids); compressed variants answer at float32's threshold"
        )
        return None
    log(
        f"per-variant halting thresholds: calibrating on the {int(kept.sum())} of {len(kept)} held-out samples whose "
        "puzzles the artefact's puzzle table kept"
    )
    idx = np.flatnonzero(kept)
    return replace(
        cal,
        inputs=cal.inputs[idx],
        labels=cal.labels[idx],
        puzzle_ids=np.asarray(cal.puzzle_ids)[idx],
        names=None if cal.names is None else [cal.names[i] for i in idx],
        augmentations=None if cal.augmentations is None else [cal.augmentations[i] for i in idx],
        scoring=None,
    )


def apply_variant_thresholds(folder: Path, manifest: Manifest, own: dict[str, float]) -> Manifest:
    """`manifest` with each variant's own threshold (`graph.variant_thresholds`), and every compressed variant's
    Loop form answering at the threshold its variant is validated at by default (a backend that builds the default
    in, TensorRT, then answers as validation did): the calibrated one, else the artefact's."""
    from ..export.loop import set_halt_threshold

    if not manifest.stopping.halting_head:
        return manifest
    graph = manifest.graph
    if own:
        graph = replace(graph, extra={**graph.extra, "variant_thresholds": dict(own)})
    for name, roles in manifest.variants.items():
        loop = roles.loop
        if name != "float32" and loop is not None:
            set_halt_threshold(folder / manifest.files[loop], own.get(name, graph.threshold))
    return replace(manifest, graph=graph)


def variant_threshold_stage(
    recipe: Recipe, folder: Path, manifest: Manifest, files: dict[str, str], threshold: float, log: Log
) -> Manifest:
    """With compressed variants, each one's own halting threshold (with auto) calibrated, set in its Loop form and
    the manifest, and manifest.json written again; with float32 alone, the manifest unchanged."""
    from ..export.manifest import with_files

    if len(manifest.variants) <= 1:
        return manifest
    own = calibrate_variant_thresholds(recipe, folder, manifest, threshold, log)
    manifest = with_files(apply_variant_thresholds(folder, manifest, own), folder, files)
    (folder / "manifest.json").write_text(manifest.dumps())
    return manifest
