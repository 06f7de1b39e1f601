"""Per-call times of an artefact's encode / step / readout graphs at batch sizes 1, 2, 4, ..., B: the latency
model `edgekit tune` replays the host loop on. Measured with the runtime alone, so a device (a Jetson with
onnxruntime's TensorRT provider, say) can time its own graphs (`edgekit bench --graph-times FILE`) and a
workstation can tune for it (`edgekit tune --latency-from FILE`). The file is untrusted when it comes back:
`read_graph_times` bounds and checks it, and ties each entry to the step graph bytes it timed (sha256)."""

from __future__ import annotations

import json
import math
import platform
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from .errors import RuntimeInputError

GRAPH_TIMES_SCHEMA = 1
MAX_BYTES = 1 << 20
# Per-call times a file may state (ms): a nanosecond to an hour. Within these, every latency tune predicts from
# them (at most 100,000 steps of three graph calls) stays a finite number, so tune.json stays JSON.
MIN_MS, MAX_MS = 1e-6, 3.6e6


@dataclass
class StepTimes:
    """Median ms per call of each graph at each measured batch size."""

    sizes: list[int]
    encode: list[float]
    step: list[float]
    readout: list[float]
    scale: float = 1.0  # measured / predicted, from the default configuration

    def at(self, graph: str, b: int) -> float:
        if b <= 0:
            return 0.0
        return float(np.interp(b, self.sizes, getattr(self, graph)))


def _median_ms(fn: Any, reps: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.median(times))


def batch_sizes(batch: int) -> list[int]:
    return sorted({min(2**k, batch) for k in range(0, int(np.ceil(np.log2(max(batch, 1)))) + 1)})


def time_graphs(runner: Any, inputs: np.ndarray, batch: int, reps: int = 3, puzzle_ids: Any = None) -> StepTimes:
    """Time encode / step / readout of the runner's variant at batch sizes 1, 2, 4, ..., batch on real inputs
    (the step on a state past step 1, as served)."""
    from .. import progress
    from .memory import MAX_CALL_BYTES, bytes_per_sample

    enc, stp, rd = [], [], []
    sizes = batch_sizes(batch)
    per_sample = bytes_per_sample(runner.manifest)
    if per_sample * sizes[-1] > MAX_CALL_BYTES:  # each size is one graph call, not chunked
        raise RuntimeInputError(
            f"timing graphs at batch {sizes[-1]} needs ~{per_sample * sizes[-1] / 1e9:.1f} GB for one call "
            f"(estimated from the model's configuration); time at most batch {max(1, MAX_CALL_BYTES // per_sample)}"
        )
    with progress.task(f"timing {runner.variant} graphs", len(sizes)) as bar:
        for b in sizes:
            x_in = runner.check_inputs(np.resize(inputs, (b, *inputs.shape[1:])))
            feeds = runner.feeds(x_in, runner.puzzle_rows(puzzle_ids, b))
            x = runner.call("encode", feeds)[0]
            new = runner.call("step", {**dict(zip(runner.state_names, runner.initial_state(x))), "x": x})[:-1]
            step_feeds = {**dict(zip(runner.state_names, new)), "x": x}
            head = dict(zip(runner.state_names, new))
            enc.append(_median_ms(partial(runner.call, "encode", feeds), reps))
            stp.append(_median_ms(partial(runner.call, "step", step_feeds), reps))
            rd.append(_median_ms(partial(runner.call, "readout", head), reps))
            bar.advance()
    return StepTimes(sizes, enc, stp, rd)


def graph_times_record(runner: Any, times: StepTimes) -> dict[str, Any]:
    """One variant's entry of a graph-times file, tied to the step graph it timed."""
    key = runner.graphs["step"]
    for graph in ("encode", "step", "readout"):
        if not all(math.isfinite(v) and v > 0 for v in getattr(times, graph)):
            raise RuntimeInputError(f"the {graph} graph's measured times are not positive finite numbers")
    return {
        "step_sha256": runner.manifest.hashes.get(key),
        "sizes": times.sizes,
        "encode_ms": [round(v, 4) for v in times.encode],
        "step_ms": [round(v, 4) for v in times.step],
        "readout_ms": [round(v, 4) for v in times.readout],
    }


def write_graph_times(path: Path, providers: list[str], records: dict[str, dict[str, Any]]) -> None:
    from ..artefact import write_json

    doc = {
        "schema_version": GRAPH_TIMES_SCHEMA,
        "machine": f"{platform.machine()}, {platform.node()[:64]}",
        "providers": providers,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "variants": records,
    }
    write_json(Path(path), doc)


def read_graph_times(path: Path) -> dict[str, Any]:
    """A graph-times file, checked: size-bounded JSON, schema 1, per variant increasing batch sizes and times of
    the same length between `MIN_MS` and `MAX_MS`. Anything else is one RuntimeInputError line."""
    path = Path(path)
    bad = f"{path} is not a graph-times file written by `edgekit bench --graph-times`"
    if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_BYTES:
        raise RuntimeInputError(f"{bad} (missing, a link, or over 1 MiB)")
    try:
        doc = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        raise RuntimeInputError(f"{bad} (not JSON)") from None
    if not isinstance(doc, dict) or doc.get("schema_version") != GRAPH_TIMES_SCHEMA:
        raise RuntimeInputError(f"{bad} (schema_version is not {GRAPH_TIMES_SCHEMA})")
    variants = doc.get("variants")
    if not isinstance(variants, dict) or not 0 < len(variants) <= 64:
        raise RuntimeInputError(f"{bad} (no variants)")
    for name, v in variants.items():
        sizes = v.get("sizes") if isinstance(v, dict) else None
        ok = (
            isinstance(sizes, list)
            and 0 < len(sizes) <= 32
            and all(isinstance(s, int) and not isinstance(s, bool) and 1 <= s <= 65536 for s in sizes)
            and all(a < b for a, b in zip(sizes, sizes[1:]))
            and all(
                isinstance(v.get(k), list)
                and len(v[k]) == len(sizes)
                and all(
                    isinstance(t, (int, float)) and not isinstance(t, bool) and MIN_MS <= t <= MAX_MS for t in v[k]
                )  # fmt: skip
                for k in ("encode_ms", "step_ms", "readout_ms")
            )
            and isinstance(v.get("step_sha256"), str)
        )
        if not ok:
            raise RuntimeInputError(
                f"{bad} (variant {str(name)[:40]!r}: sizes and times are not consistent, or a time is outside "
                f"{MIN_MS:g}..{MAX_MS:g} ms)"
            )
    return doc


def step_times(entry: dict[str, Any]) -> StepTimes:
    return StepTimes(list(entry["sizes"]), list(entry["encode_ms"]), list(entry["step_ms"]), list(entry["readout_ms"]))
