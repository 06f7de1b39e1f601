"""Latency / throughput benchmark of an artefact through `Runner.solve`: numpy + onnxruntime only, no torch.

`benchmark(runner, inputs, batch_sizes, mode)` cuts the inputs into batches of each size (tiling them when there
are fewer inputs than one batch), runs `warmup` untimed passes, then `repeats` timed passes over all batches, and
reports per batch size: latency percentiles of one `solve` call (ms per batch), throughput (samples/s),
mean time per sample (ms), and the recursion steps the samples took (histogram and mean, from `Solution.steps`).

Helpers for finding where the time goes, also torch-free:
- `SessionTimer`: wraps a runner's onnxruntime sessions and sums the time spent inside `session.run`, so the
  host-side overhead of the Python loop (feeds, compaction, halting checks) is total time minus that sum;
- `profile_ops`: onnxruntime's own profiler on one graph, aggregated into time per op type.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from .. import progress
from .errors import RuntimeInputError
from .runner import MODES, Runner

MAX_BATCH = 65536  # samples per timed call, as for serve's slots: batches are tiled from the inputs


@dataclass
class BatchStats:
    """One (mode, batch size) measurement. Latencies are per `solve` call on one batch."""

    mode: str
    batch: int
    batches: int  # distinct batches per pass
    repeats: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    samples_per_s: float
    per_sample_ms: float
    mean_steps: float
    steps_hist: dict[int, int] = field(default_factory=dict)  # steps -> samples (first timed pass)
    exact: float | None = None  # exact-match accuracy when labels were given (all positions right)
    latencies_ms: list[float] = field(default_factory=list)  # every timed solve call, for distributions

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["steps_hist"] = {str(k): v for k, v in sorted(self.steps_hist.items())}
        return d


def percentiles(values_ms: list[float] | np.ndarray) -> tuple[float, float, float]:
    a = np.asarray(values_ms, dtype=np.float64)
    return tuple(float(np.percentile(a, q)) for q in (50, 90, 99))  # type: ignore[return-value]


def check_batch(batch: Any) -> int:
    """A batch size in [1, MAX_BATCH], or one RuntimeInputError line."""
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or not 1 <= batch <= MAX_BATCH:
        raise RuntimeInputError(f"batch size must be an integer in [1, {MAX_BATCH}], got {batch!r}")
    return int(batch)


def make_batches(
    inputs: np.ndarray, batch: int, labels: np.ndarray | None = None
) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Whole batches of `batch` samples (a remainder is dropped); with fewer samples than one batch the inputs are
    tiled to fill it, so every timed call has exactly `batch` samples."""
    batch = check_batch(batch)
    n = len(inputs)
    if n == 0:
        raise RuntimeInputError("no inputs to benchmark")
    if n < batch:
        idx = np.resize(np.arange(n), batch)
        return [(inputs[idx], None if labels is None else labels[idx])]
    return [
        (inputs[i : i + batch], None if labels is None else labels[i : i + batch])
        for i in range(0, n - batch + 1, batch)
    ]


def _exact(preds: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-sample exact match: every labelled position (sequence tasks; negative labels are unlabelled) or the
    class (labels [N] or [N, 1])."""
    if labels.ndim == 1 or (labels.ndim == 2 and labels.shape[1] == 1 and preds.ndim == 1):
        return np.asarray(preds.reshape(-1) == labels.reshape(-1))
    ok = (preds.reshape(labels.shape) == labels) | (labels < 0)
    return np.asarray(ok.reshape(len(labels), -1).all(-1))


def benchmark(
    runner: Runner,
    inputs: np.ndarray,
    batch_sizes: list[int] | tuple[int, ...] = (1, 64),
    mode: str = "host",
    repeats: int = 5,
    warmup: int = 1,
    labels: np.ndarray | None = None,
    **solve_kwargs: Any,
) -> list[BatchStats]:
    """Time `runner.solve(batch, mode=mode, **solve_kwargs)` per batch size; see the module docstring."""
    if mode not in MODES:
        raise RuntimeInputError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    if repeats < 1:
        raise RuntimeInputError(f"repeats must be >= 1, got {repeats}")
    sizes = [check_batch(b) for b in batch_sizes]  # before any work: a bad size late in the list costs nothing
    inputs = runner.check_inputs(inputs)
    out = []
    for b in sizes:
        batches = make_batches(inputs, b, labels)
        for _ in range(max(0, warmup)):
            runner.solve(batches[0][0], mode=mode, **solve_kwargs)
        lat: list[float] = []
        steps: list[np.ndarray] = []
        correct: list[np.ndarray] = []
        for r in range(repeats):
            for x, y in batches:
                t0 = time.perf_counter()
                sol = runner.solve(x, mode=mode, **solve_kwargs)
                lat.append((time.perf_counter() - t0) * 1000.0)
                if r == 0:
                    steps.append(np.asarray(sol.steps).reshape(-1))
                    if y is not None:
                        correct.append(_exact(sol.preds, y))
        out.append(_stats(mode, int(b), len(batches), repeats, lat, steps, correct))
    return out


def _stats(
    mode: str, b: int, batches: int, repeats: int, lat: list[float], steps: list[np.ndarray], correct: list[np.ndarray]
) -> BatchStats:
    """One (mode, batch size) measurement from its timed calls (ms), and the steps and exact answers of the first
    timed pass."""
    total_s = sum(lat) / 1000.0
    samples = len(lat) * b
    st = np.concatenate(steps)
    p50, p90, p99 = percentiles(lat)
    return BatchStats(
        mode=mode,
        batch=b,
        batches=batches,
        repeats=repeats,
        p50_ms=p50,
        p90_ms=p90,
        p99_ms=p99,
        mean_ms=float(np.mean(lat)),
        samples_per_s=samples / total_s if total_s else float("inf"),
        per_sample_ms=1000.0 * total_s / samples,
        mean_steps=float(st.mean()),
        steps_hist={int(k): int(v) for k, v in sorted(Counter(st.tolist()).items())},
        exact=float(np.concatenate(correct).mean()) if correct else None,
        latencies_ms=[round(x, 3) for x in lat],
    )


def available_modes(runner: Runner) -> list[str]:
    """Modes whose graphs this runner's variant has: host needs the step graphs, loop / unrolled their own."""
    g = runner.graphs
    have = {
        "host": all(k in g for k in ("encode", "step", "readout")),
        "loop": "loop" in g,
        "unrolled": "unrolled" in g,
    }
    return [m for m in MODES if have[m]]


class _TimedSession:
    """Proxy for an onnxruntime session that adds the wall time of each `run` to its timer."""

    def __init__(self, sess: ort.InferenceSession, timer: SessionTimer, graph: str) -> None:
        self._sess, self._timer, self._graph = sess, timer, graph

    def run(self, *args: Any, **kwargs: Any) -> Any:
        return self._timed(self._sess.run, *args, **kwargs)

    def run_with_iobinding(self, *args: Any, **kwargs: Any) -> Any:
        return self._timed(self._sess.run_with_iobinding, *args, **kwargs)

    def _timed(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            dt = time.perf_counter() - t0
            self._timer.seconds[self._graph] = self._timer.seconds.get(self._graph, 0.0) + dt
            self._timer.calls[self._graph] = self._timer.calls.get(self._graph, 0) + 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sess, name)


class SessionTimer:
    """Sum the time a runner spends inside onnxruntime `run` calls, per graph:

    timer = SessionTimer(runner)          # creates and wraps the sessions of `graphs`
    t0 = perf_counter(); runner.solve(x); total = perf_counter() - t0
    overhead = total - timer.total        # host-side Python / numpy time
    """

    def __init__(
        self, runner: Runner, graphs: tuple[str, ...] = ("encode", "step", "readout", "loop", "unrolled")
    ) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        for g in graphs:
            if g in runner.graphs:
                sess = runner.session(g)
                if not isinstance(sess, _TimedSession):
                    runner._sessions[g] = _TimedSession(sess, self, g)

    @property
    def total(self) -> float:
        return sum(self.seconds.values())

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()


def profile_ops(
    model_path: str | Path,
    feeds: dict[str, np.ndarray],
    runs: int = 1,
    threads: int | None = None,
    providers: list[str] | None = None,
) -> dict[str, Any]:
    """Run one graph under onnxruntime's profiler and aggregate kernel time per op type.

    Returns {"total_us", "by_op": {op: {"us", "share", "calls"}}} sorted by time; the first (warm-up) run is not
    profiled separately, so call with runs >= 2 for steady-state shares."""
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    with tempfile.TemporaryDirectory() as tmp:
        opts.enable_profiling = True
        opts.profile_file_prefix = os.path.join(tmp, "ort_profile")
        sess = ort.InferenceSession(str(model_path), opts, providers=providers or ["CPUExecutionProvider"])
        wanted = {i.name for i in sess.get_inputs()}
        f = {k: v for k, v in feeds.items() if k in wanted}
        for _ in range(max(1, runs)):
            sess.run(None, f)
        trace = json.loads(Path(sess.end_profiling()).read_text())
    by_op: dict[str, dict[str, Any]] = {}
    for ev in trace:
        if ev.get("cat") != "Node" or not str(ev.get("name", "")).endswith("_kernel_time"):
            continue
        op = ev.get("args", {}).get("op_name", "?")
        e = by_op.setdefault(op, {"us": 0.0, "calls": 0})
        e["us"] += float(ev.get("dur", 0))
        e["calls"] += 1
    total = sum(e["us"] for e in by_op.values())
    for e in by_op.values():
        e["share"] = e["us"] / total if total else 0.0
    return {"total_us": total, "by_op": dict(sorted(by_op.items(), key=lambda kv: -kv[1]["us"]))}


@dataclass(frozen=True)
class BenchPlan:
    """One `edgekit bench` run: the variants and modes timed, the batch sizes, the passes, and whether the graphs
    are also timed one by one (for `edgekit tune --latency-from`)."""

    variants: list[str]
    mode: str  # a runtime mode, or "all": every form each variant has
    batches: list[int]
    repeats: int
    warmup: int
    puzzle_id: int | str | None  # ARC models: the identifier every example takes
    graph_times: bool


@dataclass
class BenchRun:
    """What `bench_variants` measured."""

    rows: list[dict[str, Any]] = field(default_factory=list)  # per variant x mode x batch size: BatchStats, variant
    graph_times: dict[str, dict[str, Any]] = field(default_factory=dict)  # variant -> its graph-times record


def bench_variants(open_runner: Callable[[str], Any], plan: BenchPlan, x: np.ndarray, y: np.ndarray | None) -> BenchRun:
    """`benchmark` for every variant (opened by `open_runner(variant)`) and mode of the plan, each under one
    progress task; with `graph_times`, each variant's encode / step / readout timed up to the largest batch."""
    out = BenchRun()
    for v in plan.variants:
        runner = open_runner(v)
        for m in available_modes(runner) if plan.mode == "all" else [plan.mode]:
            with progress.task(f"bench {v} {m}"):
                kw: dict[str, Any] = {} if plan.puzzle_id is None else {"puzzle_ids": plan.puzzle_id}
                stats = benchmark(runner, x, plan.batches, m, repeats=plan.repeats, warmup=plan.warmup, labels=y, **kw)
                out.rows += [{"variant": v, **s.to_dict()} for s in stats]
        if plan.graph_times:
            from .graph_times import graph_times_record, time_graphs

            times = time_graphs(runner, x, max(plan.batches), puzzle_ids=plan.puzzle_id)
            out.graph_times[v] = graph_times_record(runner, times)
    return out


@dataclass(frozen=True)
class Configuration:
    """One runtime configuration `edgekit bench` compares side by side: its name (onnxruntime, openvino-bf16), how
    to open its runner for a variant, and the variant whose graphs it runs whichever variant its rows are compared
    on (None: the compared variant's; OpenVINO int8 always runs int8_weight_only's INT8-weight graphs)."""

    name: str
    open: Callable[[str], Any]
    graphs: str | None = None


@dataclass
class _Cell:
    """One (configuration, variant, mode, batch size) being timed, and what its timed calls gave."""

    config: str
    variant: str
    mode: str
    batch: int
    runner: Any
    batches: list[tuple[np.ndarray, np.ndarray | None]]
    graphs: str | None = None  # the variant whose graphs ran, where not `variant`'s (Configuration.graphs)
    lat: list[float] = field(default_factory=list)
    steps: list[np.ndarray] = field(default_factory=list)
    correct: list[np.ndarray] = field(default_factory=list)

    def passes(self) -> list[float]:
        """ms of each round's pass over all its batches."""
        k = len(self.batches)
        return [sum(self.lat[i : i + k]) for i in range(0, len(self.lat), k)]


def bench_configurations(
    configs: list[Configuration], plan: BenchPlan, x: np.ndarray, y: np.ndarray | None
) -> BenchRun:
    """`bench_variants` for several runtime configurations in one run, side by side: every configuration, variant,
    mode and batch size is warmed up, then each of `plan.repeats` rounds times one pass of each in turn (A, B, A, B,
    ...), so load that comes and goes between rounds slows all of them alike. Rows carry their configuration, and
    every configuration after the first its speed-up over the first on the same variant, mode and batch size: the
    median of the per-round ratios (the first's pass time over its own in the same round) with the distribution-free
    95 % interval of that median."""
    from .gate_eval import median_interval

    if plan.graph_times:
        raise RuntimeInputError("--graph-times times the graphs of one configuration: give one --backend")
    if plan.repeats < 1:
        raise RuntimeInputError(f"repeats must be >= 1, got {plan.repeats}")
    sizes = [check_batch(b) for b in plan.batches]
    kw: dict[str, Any] = {} if plan.puzzle_id is None else {"puzzle_ids": plan.puzzle_id}
    cells: list[_Cell] = []
    for c in configs:
        for v in plan.variants:
            runner = c.open(c.graphs or v)
            xs = runner.check_inputs(x)
            modes = available_modes(runner) if plan.mode == "all" else [plan.mode]
            if any(m not in MODES for m in modes):
                raise RuntimeInputError(f"unknown mode {plan.mode!r}; use one of {', '.join(MODES)}")
            cells += [_Cell(c.name, v, m, b, runner, make_batches(xs, b, y), c.graphs) for m in modes for b in sizes]
    for cell in cells:
        for _ in range(max(0, plan.warmup)):
            cell.runner.solve(cell.batches[0][0], mode=cell.mode, **kw)
    names = ", ".join(c.name for c in configs)
    with progress.task(f"bench {names} ({plan.repeats} interleaved rounds)", plan.repeats) as bar:
        for r in range(plan.repeats):
            for cell in cells:
                for xb, yb in cell.batches:
                    t0 = time.perf_counter()
                    sol = cell.runner.solve(xb, mode=cell.mode, **kw)
                    cell.lat.append((time.perf_counter() - t0) * 1000.0)
                    if r == 0:
                        cell.steps.append(np.asarray(sol.steps).reshape(-1))
                        if yb is not None:
                            cell.correct.append(_exact(sol.preds, yb))
            bar.advance()
    out = BenchRun()
    first = {(c.variant, c.mode, c.batch): c for c in cells if c.config == configs[0].name}
    for cell in cells:
        s = _stats(cell.mode, cell.batch, len(cell.batches), plan.repeats, cell.lat, cell.steps, cell.correct)
        row: dict[str, Any] = {"variant": cell.variant, "config": cell.config, **s.to_dict()}
        if cell.graphs is not None:
            row["graphs"] = cell.graphs
        base = first[(cell.variant, cell.mode, cell.batch)]
        if base is not cell:
            ratios = [a / b for a, b in zip(base.passes(), cell.passes())]
            lo, hi = median_interval(ratios)
            row["speedup"] = {"vs": base.config, "median": round(float(np.median(ratios)), 3),
                              "interval": [round(lo, 3), round(hi, 3)], "rounds": len(ratios)}  # fmt: skip
        out.rows.append(row)
    return out
