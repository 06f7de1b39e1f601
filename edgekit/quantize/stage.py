"""The quantize stage's work: the job, the handlers of every mode (`MODES`) and `run_quantize`. Heavy (onnx,
NNCF, torch through the models): `edgekit.quantize` imports it on first use, so the recipe schema, which needs only
`config.QuantizeSection`, loads none of it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from .. import progress
from ..cache import entry, read_json, write_json
from ..models.act import ACTModel
from ..models.deq import DEQModel
from .calibration import cache_key, cached_items, trajectory_items
from .config import QuantizeSection
from .hybrid import handler as _hybrid
from .lint import count_qdq, qdq_violations
from .nncf_backend import QuantizeError, compress_weights_int8, layer_groups, quantize_int8
from .ort_backend import quantize_dynamic_int8, quantize_matmul_nbits
from .per_row import handler as _per_row
from .smooth import smooth_gated

SEARCH_VERSION = 2  # part of the search cache key: bump when the search or its scoring changes


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


def _int8(job: QuantizeJob) -> Quantized:
    kf = job.section.keep_float
    step, smooth = job.int8_input()
    q = quantize_int8(step, job.items(), kf.patterns, kf.types)
    return Quantized(
        q,
        {
            "method": "nncf.quantize (PTQ, PERFORMANCE preset, transformer op set, NNCF SmoothQuant off)",
            "keep_float": {"patterns": kf.patterns, "types": kf.types},
            **smooth,
        },
    )


def _mixed(job: QuantizeJob) -> Quantized:
    from .search import Score, host_scorer, search

    kf, s = job.section.keep_float, job.section.search
    plain = job.step()
    step, smooth = job.int8_input()
    import re

    groups = {
        k: v for k, v in layer_groups(step).items() if not any(re.fullmatch(p, n) for p in kf.patterns for n in v)
    }  # already float by keep_float
    key = cache_key("search", SEARCH_VERSION, job.fingerprint, job.section.model_dump())
    cached = entry("search", key, ".json")

    def quantize(names: list[str]) -> onnx.ModelProto:
        return quantize_int8(step, job.items(), kf.patterns, kf.types, names)

    hit = read_json(cached)
    if isinstance(hit, dict) and isinstance(hit.get("keep_float"), list):
        job.log(f"accuracy-aware search: cached result, keeping {len(hit['keep_float'])} layer groups float")
        q = quantize([n for k in hit["keep_float"] for n in groups.get(k, [])])
        return Quantized(q, {**hit, "cached": True})
    ids = job.search_puzzle_ids
    ref, ref_steps = host_scorer(job.folder, job.search_inputs, job.search_labels, puzzle_ids=ids)(plain)
    scorer = host_scorer(job.folder, job.search_inputs, job.search_labels, ref_steps, puzzle_ids=ids)
    t0 = time.time()
    res, q = search(quantize, groups, scorer, Score(ref.exact, 1.0), s.max_exact_drop, s.min_halting_agreement, job.log)
    info = {
        "method": "accuracy-aware search over NNCF INT8 step graphs, scored by Loop-form rollouts with early halting",
        "keep_float": res.keep_float,
        "passed": res.passed,
        "candidates": len(res.trials),
        "score": {"exact": res.score.exact, "halting_agreement": res.score.halting_agreement},
        "float32": {"exact": ref.exact},
        "trials": res.trials,
        "seconds": round(time.time() - t0, 1),
        "search_samples": len(job.search_inputs),
        "always_float": {"patterns": kf.patterns, "types": kf.types},
        **smooth,
    }
    if set(res.keep_float) >= set(groups):
        info["all_float"] = True
        job.log("accuracy-aware search: no INT8 layer fits the budget; the mixed variant is the float32 step")
    write_json(cached, info)
    return Quantized(q, info)


def _weight_only(job: QuantizeJob) -> Quantized:
    kf = job.section.keep_float
    return Quantized(
        compress_weights_int8(job.step(), kf.patterns, kf.types),
        {"method": "nncf.compress_weights INT8_SYM (weights int8, compute float)"},
    )


def _dynamic(job: QuantizeJob) -> Quantized:
    kf = job.section.keep_float
    step, smooth = job.int8_input()  # unsmoothed, its step error is 2.5x that of static INT8 (measured: 23 vs 9 %)
    return Quantized(
        quantize_dynamic_int8(step, kf.patterns, kf.types),
        {
            "method": "onnxruntime.quantization.quantize_dynamic (weights int8 per channel, activation ranges "
            "computed per call: DynamicQuantizeLinear + MatMulInteger)",
            "keep_float": {"patterns": kf.patterns, "types": kf.types},
            **smooth,
        },
    )


def _nbits(bits: int) -> Callable[[QuantizeJob], Quantized]:
    def handler(job: QuantizeJob) -> Quantized:
        kf, block = job.section.keep_float, job.section.weights.block_size
        return Quantized(
            quantize_matmul_nbits(job.step(), bits, block, kf.patterns, kf.types),
            {
                "method": f"onnxruntime MatMulNBitsQuantizer ({bits}-bit symmetric weights, blocks of {block} "
                "input channels, accuracy_level 4)",
                "bits": bits,
                "block_size": block,
                "keep_float": {"patterns": kf.patterns, "types": kf.types},
            },
        )

    return handler


@dataclass(frozen=True)
class Mode:
    """A registered quantization mode: its handler, and whether its graphs are TensorRT-form (symmetric signed
    INT8 Q/DQ, lint-checked) or onnxruntime CPU graphs (refused for TensorRT targets at recipe load)."""

    handler: Callable[[QuantizeJob], Quantized]
    tensorrt: bool = True


MODES: dict[str, Mode] = {
    "int8": Mode(_int8),
    "mixed": Mode(_mixed),
    "int8_weight_only": Mode(_weight_only),
    "int8_dynamic": Mode(_dynamic, tensorrt=False),
    "int8_per_row": Mode(_per_row, tensorrt=False),
    "int8_hybrid": Mode(_hybrid, tensorrt=False),
    "int8_nbits": Mode(_nbits(8), tensorrt=False),
    "int4_weight_only": Mode(_nbits(4), tensorrt=False),
}


def cpu_only_modes(modes: list[str]) -> list[str]:
    """The requested modes whose graphs only onnxruntime runs (for the recipe check against TensorRT targets)."""
    return [m for m in modes if m in MODES and not MODES[m].tensorrt]


def run_quantize(job: QuantizeJob) -> tuple[dict[str, str], dict[str, dict[str, str]], dict[str, dict]]:
    """Run every requested mode (except float16, which is an export precision). Returns manifest `files`
    entries, `variants` entries and per-mode info for results.json."""
    files: dict[str, str] = {}
    variants: dict[str, dict[str, str]] = {}
    infos: dict[str, dict] = {}
    for mode in job.section.modes:
        if mode == "float16":
            continue
        t0 = time.time()
        job.log(f"quantizing the step graph: {mode}")
        with progress.task(f"quantizing ({mode})"):
            out = MODES[mode].handler(job)
        bad = qdq_violations(out.step) if MODES[mode].tensorrt else []
        if bad:
            raise QuantizeError(
                f"{mode} step graph has Q/DQ TensorRT cannot take: {bad[0]} ({len(bad)} in all)",
                "report this: edgekit asks NNCF for symmetric signed int8 only",
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
            "backends": ["onnxruntime", "tensorrt"] if MODES[mode].tensorrt else ["onnxruntime"],
            "quantize_linear_nodes": count_qdq(out.step),
            "seconds": round(time.time() - t0, 1),
            "step_bytes": (sub / "step.onnx").stat().st_size,
        }
    return files, variants, infos


__all__ = ["MODES", "Mode", "cpu_only_modes", "QuantizeJob", "QuantizeSection", "run_quantize", "QuantizeError"]
