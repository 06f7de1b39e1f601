"""`mixed`: static INT8 (as `int8`) plus an accuracy-aware search for the smallest set of layer groups to keep
float, scored by Loop-form rollouts with early halting against the budget in `quantize.search` (`search.py`)."""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from . import Mode, Section, register
from .int8 import partial

if TYPE_CHECKING:
    import onnx

    from ..stage import Quantized, QuantizeJob

SEARCH_VERSION = 2  # part of the search cache key: bump when the search or its scoring changes


class SearchSection(BaseModel):
    """Budget of the accuracy-aware (`mixed`) mode, scored by full rollouts with early halting."""

    model_config = ConfigDict(extra="forbid")

    max_exact_drop: float = Field(
        default=0.01, ge=0, le=1, description="exact accuracy (fraction) a candidate may lose against float32"
    )
    min_halting_agreement: float = Field(
        default=0.95, ge=0, le=1, description="share of samples that must halt at float32's step"
    )
    n: int = Field(default=128, gt=0, le=1_000_000, description="held-out samples scoring each candidate")
    seed: int = Field(default=2000, ge=0, description="seed of the search examples (apart from validation)")


def handler(job: QuantizeJob) -> Quantized:
    from ...cache import entry, read_json, write_json
    from ..calibration import cache_key
    from ..nncf_backend import layer_groups, quantize_int8
    from ..search import Score, host_scorer, search
    from ..stage import Quantized

    kf, s = job.section.keep_float, job.section.search
    plain = job.step()
    step, smooth = job.int8_input()
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


register(
    Mode(
        "mixed",
        form="qdq_int8",
        summary="int8 plus an accuracy-aware search for the smallest set of layers to keep float",
        handler=handler,
        partial=partial,  # a rebuilt layer is static INT8, as in int8
        section=Section(
            "search",
            SearchSection,
            meaning="budget of the `mixed` search",
            doc="The budget of the accuracy-aware `mixed` mode, scored by rollouts with early halting.",
        ),
    )
)
