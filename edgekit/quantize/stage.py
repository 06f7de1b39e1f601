"""The quantize stage's work: the job every mode's handler reads, and `run_quantize`, which dispatches each requested
mode to its handler (`modes.MODES`, one file per mode) and lints the graph against the form the mode declares.
Heavy (onnx, torch through the models): `edgekit.quantize` imports it on first use, so the recipe schema, which
needs only `config.QuantizeSection`, loads none of it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from .. import progress
from ..models.act import ACTModel
from ..models.deq import DEQModel
from .calibration import cache_key, cached_items, trajectory_items
from .config import QuantizeSection
from .lint import count_qdq, form_violations
from .modes import MODES, Mode, cpu_only_modes
from .nncf_backend import QuantizeError
from .smooth import smooth_gated


@dataclass
class QuantizeJob:
    """Everything a handler needs: the float32 model and artefact folder, the data, the settings."""

    model: ACTModel | DEQModel
    folder: Path
    section: QuantizeSection
    calib_inputs: np.ndarray
    search_inputs: np.ndarray
    search_labels: np.ndarray
    fingerprint: str  # checkpoint hash + task description: part of every cache key
    log: Callable[[str], None] = print
    forms: tuple[str, ...] = ("step", "loop")  # the recipe's export.forms: each variant gets the same ones
    calib_puzzle_ids: np.ndarray | None = None  # identifiers of the calibration examples (puzzle-table models)
    search_puzzle_ids: np.ndarray | None = None
    _items: list | None = field(default=None, repr=False)
    _int8_input: tuple | None = field(default=None, repr=False)

    def items(self) -> list[dict]:
        if self._items is None:
            c = self.section.calibration
            key = cache_key("calib", self.fingerprint, c.model_dump(), self.model.step_budget)
            self._items, hit = cached_items(
                key, lambda: trajectory_items(self.model, self.calib_inputs, c.batch, self.calib_puzzle_ids)
            )
            self.log(
                f"calibration: {len(self._items)} step inputs from {len(self.calib_inputs)} trajectories"
                f" x {self.model.step_budget} steps{' (cached)' if hit else ''}"
            )
        return self._items

    def step(self) -> onnx.ModelProto:
        return onnx.load(str(self.folder / "step.onnx"))

    def int8_input(self) -> tuple[onnx.ModelProto, dict]:
        """The float32 step graph INT8 modes quantize: smoothed (an exact rewrite) unless the recipe turns it off.
        Computed once per job: int8 and mixed share it."""
        if self._int8_input is None:
            step, alpha = self.step(), self.section.smooth.alpha
            if alpha is None:
                self._int8_input = step, {"smooth": None}
            else:
                smoothed, report = smooth_gated(step, self.items(), alpha)
                if report:
                    worst = max(report, key=lambda r: r["spread_before"])
                    self.log(
                        f"smoothing {len(report)} gated MLP weight pairs (alpha {alpha}): worst channel spread "
                        f"{worst['spread_before']:.1f}x -> {worst['spread_after']:.1f}x"
                    )
                self._int8_input = smoothed, {"smooth": {"alpha": alpha, "pairs": report}}
        return self._int8_input

    def wrap(self, step: onnx.ModelProto, form: str = "loop") -> onnx.ModelProto:
        """The quantized step graph as the Loop form, or unrolled (its weights stored once either way)."""
        from ..export.onnx_export import stitch

        encode, readout = (
            onnx.load(str(self.folder / g), load_external_data=False) for g in ("encode.onnx", "readout.onnx")
        )
        return stitch(self.model, form, encode, step, readout)


@dataclass
class Quantized:
    step: onnx.ModelProto
    info: dict


def run_quantize(job: QuantizeJob) -> tuple[dict[str, str], dict[str, dict[str, str]], dict[str, dict]]:
    """Run every requested mode with a handler (float16 has none: it is an export precision). Returns manifest
    `files` entries, `variants` entries and per-mode info for results.json."""
    files: dict[str, str] = {}
    variants: dict[str, dict[str, str]] = {}
    infos: dict[str, dict] = {}
    for mode in job.section.modes:
        spec = MODES[mode]
        if spec.handler is None:
            continue
        t0 = time.time()
        job.log(f"quantizing the step graph: {mode}")
        with progress.task(f"quantizing ({mode})"):
            out = spec.handler(job)
        bad = form_violations(out.step, spec.qdq_form)
        if bad:
            raise QuantizeError(
                f"{mode} step graph is not the form its mode declares ({spec.qdq_form.description}): {bad[0]} "
                f"({len(bad)} in all)",
                f"report this: the {mode} mode's handler and its form ({spec.form}) disagree",
            )
        sub = job.folder / mode
        sub.mkdir(exist_ok=True)
        onnx.save(out.step, str(sub / "step.onnx"))
        files[f"{mode}/step"] = f"{mode}/step.onnx"
        variants[mode] = {"encode": "encode", "step": f"{mode}/step", "readout": "readout"}
        external = (job.folder / "encode.onnx.data").exists()
        if external and set(job.forms) & {"loop", "unrolled"}:
            job.log(
                f"{mode}: no Loop / unrolled form (the puzzle table is external data, which a graph in a "
                "sub-folder cannot reach)"
            )
        for form in ("loop", "unrolled"):
            if form in job.forms and not external:
                onnx.save(job.wrap(out.step, form), str(sub / f"{form}.onnx"))
                files[f"{mode}/{form}"] = f"{mode}/{form}.onnx"
                variants[mode][form] = f"{mode}/{form}"
        infos[mode] = {
            **out.info,
            "form": spec.form,  # what the graph is, for runtimes that pick a variant by it (OpenVINO's int8)
            "backends": spec.backends,
            "quantize_linear_nodes": count_qdq(out.step),
            "seconds": round(time.time() - t0, 1),
            "step_bytes": (sub / "step.onnx").stat().st_size,
        }
    return files, variants, infos


__all__ = ["MODES", "Mode", "cpu_only_modes", "QuantizeJob", "QuantizeSection", "run_quantize", "QuantizeError"]
