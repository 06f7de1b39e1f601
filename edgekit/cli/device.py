"""Device commands: verify, bench, solve, info, serve. They need the base install only (numpy + onnxruntime): nothing
here imports torch, onnx or nncf, and task data comes from edgekit.tasks (numpy)."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import queue
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import typer
from rich.table import Table

from .. import progress
from ..errors import EXIT_USAGE, EdgekitError, InputError, first_line
from .app import app, console, err_console, fail

_PROVIDER_HELP = "execution provider: cpu, cuda or tensorrt (onnxruntime-gpu); repeatable, CPU is always the fallback"


@dataclass
class DeviceOptions:
    """Runner settings every device command shares."""

    providers: list[str] | None
    device_id: int
    fp16: bool
    cache_dir: Path | None
    threads: int | None
    engines: Path | None = None
    allow_fallback: bool = False
    backend: str | None = None  # None: onnxruntime, or TensorRT with `engines` (runtime/backends.py)
    ov_device: str | None = None  # --backend openvino: CPU, GPU, GPU.<n> or NPU
    ov_precision: str | None = None  # --backend openvino: f32, bf16, f16 or int8 (runtime/openvino_backend.py)
    tf32: bool | None = None  # CUDA provider: TF32 matmuls on/off; None: onnxruntime's default (on)

    def own_variant(self, artefact: Path) -> str | None:
        """The variant of `artefact` these settings always run (OpenVINO int8: the one with INT8 weights); None:
        any. ArtefactError where the artefact has none."""
        if self.ov_precision is None:
            return None
        from ..runtime.manifest import load_manifest
        from ..runtime.openvino_backend import precision_variant

        return precision_variant(load_manifest(artefact), self.ov_precision)

    def runner(self, artefact: Path, variant: str | None = None) -> Any:
        """variant None: the artefact's runtime default (`edgekit tune --apply`), else float32. With `engines`,
        the TensorRT engines in that folder run instead of onnxruntime (same host loop)."""
        from ..runtime import open_runner

        runner = open_runner(
            artefact,
            variant=variant,
            engines=self.engines,
            backend=self.backend,
            threads=self.threads,
            providers=self.providers,
            device_id=self.device_id or None,  # 0 is the default: not an option given
            fp16=self.fp16,
            device=self.ov_device,
            precision=self.ov_precision,
            tf32=self.tf32,
            cache_dir=self.cache_dir,
            allow_fallback=self.allow_fallback,
        )
        say = functools.partial(_warn, where=str(artefact))
        for w in getattr(runner, "warnings", []):  # known at load (engines built on another GPU model)
            say(w)
        if hasattr(runner, "on_warning"):  # arising later (a provider that fell back when a graph is loaded)
            runner.on_warning = say
        return runner


def _warn(text: str, where: str) -> None:
    err_console.print(f"warning: {where}: {text}", markup=False, highlight=False, soft_wrap=True)


def _options(
    provider: list[str] | None,
    device_id: int,
    trt_fp16: bool,
    cache_dir: Path | None,
    threads: int | None,
    engines: Path | None = None,
    allow_fallback: bool = False,
    backend: str | None = None,
    ov_device: str | None = None,
    ov_precision: str | None = None,
    tf32: bool | None = None,
) -> DeviceOptions:
    if engines is not None and provider:
        raise typer.BadParameter("--engines runs TensorRT engines directly; drop --provider", param_hint="--engines")
    return DeviceOptions(
        provider or None, device_id, trt_fp16, cache_dir, threads, engines, allow_fallback, backend, ov_device,
        ov_precision, tf32,
    )  # fmt: skip


PROVIDER = typer.Option(None, "--provider", "-p", help=_PROVIDER_HELP)
DEVICE_ID = typer.Option(0, "--device-id", min=0, help="GPU for the cuda / tensorrt providers")
TRT_FP16 = typer.Option(False, "--trt-fp16", help="tensorrt provider: allow fp16 kernels")
CACHE_DIR = typer.Option(None, "--cache-dir", help="tensorrt provider: engine cache root (default ~/.cache/edgekit)")
THREADS = typer.Option(None, "--threads", min=1, max=1024, help="onnxruntime intra-op threads (default: its own)")
ENGINES = typer.Option(
    None,
    "--engines",
    help="folder of TensorRT engines built for this artefact (`edgekit build`, or the `edgekit plan` script on "
    "the device): run them instead of onnxruntime, through the same host loop",
)
ALLOW_FALLBACK = typer.Option(
    False,
    "--allow-fallback",
    help="a requested execution provider that onnxruntime cannot create becomes a warning line instead of exit 2",
)
BACKEND = typer.Option(
    None,
    "--backend",
    help="runtime for the artefact's graphs: onnxruntime (default) or openvino (Intel CPU/GPU/NPU; needs "
    'pip install "edgekit[openvino]"); TensorRT engines run with --engines',
)
OV_DEVICE = typer.Option(None, "--device", help="--backend openvino: CPU (default), GPU, GPU.<n> or NPU")
OV_PRECISION = typer.Option(
    None,
    "--ov-precision",
    help="--backend openvino: inference precision f32 (default), bf16, f16, or int8 (the int8_weight_only "
    "variant's INT8 weights with activations quantized per token at run time)",
)
TF32 = typer.Option(
    None,
    "--tf32/--no-tf32",
    help="cuda provider: float32 matmuls in TF32 (onnxruntime's default on Ampere and later) or true float32",
)


def _runtime_errors() -> tuple[type[Exception], ...]:
    from ..runtime import ArtefactError, RuntimeInputError

    return ArtefactError, RuntimeInputError, EdgekitError


def _as_error(e: Exception) -> EdgekitError:
    """The runtime's own errors are input errors (exit 2); edgekit's keep their exit code (5: no TensorRT)."""
    return e if isinstance(e, EdgekitError) else InputError(str(e))


@dataclass
class _TaskDefaults:
    """Task settings for generated inputs (the task's defaults, `--n` and `--seed`)."""

    name: str
    n: int
    seed: int
    givens: tuple[int, int] | None = None
    data: str | None = None
    split: str = "test"
    calibration_split: str = "train"


def _puzzle_id(text: str | None) -> int | str | None:
    """--puzzle-id: an identifier id (ASCII digits, at most 18 of them: every int64 id) or else a name. Other
    Unicode digits ('²', full-width) are names, as `int` would refuse or reinterpret them."""
    if text is None:
        return None
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else text


def _task_of(runner: Any) -> Any:
    from ..tasks import task_for_inputs

    return task_for_inputs(runner.graph.input.to_json(), runner.family)


def _file_inputs(runner: Any, path: Path) -> np.ndarray:
    from ..runtime.inputs import read_inputs

    task = _task_of(runner)
    length = int(runner.graph.input.shape[-1])
    if task is None:
        return read_inputs(path, None)
    return read_inputs(path, lambda line: task.parse_line(line, length))


def _generated_inputs(runner: Any, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    task = _task_of(runner)
    if task is None or not task.generates:  # e.g. ARC or any dataset-only task: nothing to generate
        raise InputError(
            f"no built-in inputs for an input of shape {list(runner.graph.input.shape)} ({runner.family}"
            f"{', task ' + task.name if task else ''})",
            "pass --inputs FILE (.npy, .npz or text) with examples of that shape",
        )
    data = task.load(_TaskDefaults(task.name, n, seed), n, seed, "test")
    return data.inputs, data.labels, data.description


def _need_matplotlib() -> None:
    """`--plot` draws with matplotlib, which the base (device) install leaves out: one line naming the install."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        fail(InputError("--plot needs matplotlib, which is not installed", "pip install matplotlib, or drop --plot"))


@app.command()
def bench(
    artefact: Path = typer.Argument(..., help="artefact folder written by `edgekit export`"),
    variant: list[str] = typer.Option(
        [], "--variant", "-v", help="precision variant (repeatable, or 'all'; default: the artefact's default)"
    ),
    mode: str = typer.Option("host", "--mode", "-m", help="host, loop, unrolled, or all (the forms the artefact has)"),
    batch: list[int] = typer.Option([1, 64], "--batch", "-b", min=1, max=65536, help="batch size (repeatable)"),
    n: int = typer.Option(128, "--n", min=1, max=1_000_000, help="number of inputs (generated held-out task data)"),
    repeats: int = typer.Option(5, "--repeats", min=1, max=10_000, help="timed passes over all batches"),
    warmup: int = typer.Option(1, "--warmup", min=0, max=10_000, help="untimed calls per batch size"),
    inputs: Path | None = typer.Option(
        None, "--inputs", help="examples (.npy, .npz or text) instead of generated data"
    ),
    seed: int = typer.Option(123, "--seed", min=0, help="seed of the generated puzzles"),
    puzzle_id: str | None = typer.Option(
        None, "--puzzle-id", help="ARC models: the puzzle identifier (id or name) of every example"
    ),
    json_out: bool = typer.Option(False, "--json", help="print the results as JSON"),
    graph_times: Path | None = typer.Option(
        None,
        "--graph-times",
        help="also time encode / step / readout per batch size 1, 2, 4, ... up to the largest --batch and write "
        "them here (JSON): what `edgekit tune --latency-from` predicts this device's latency with",
    ),
    plot: Path | None = typer.Option(
        None, "--plot", help="write a PNG of per-puzzle latency per variant and batch size (needs matplotlib)"
    ),
    provider: list[str] | None = PROVIDER,
    device_id: int = DEVICE_ID,
    trt_fp16: bool = TRT_FP16,
    cache_dir: Path | None = CACHE_DIR,
    threads: int | None = THREADS,
    engines: Path | None = ENGINES,
    allow_fallback: bool = ALLOW_FALLBACK,
    backend: list[str] = typer.Option(
        [],
        "--backend",
        help="runtime for the artefact's graphs: onnxruntime (default), openvino (needs "
        'pip install "edgekit[openvino]") or tensorrt (--engines); repeatable: several are timed side by side in '
        "interleaved rounds, each after the first with its speed-up over the first",
    ),
    ov_device: str | None = OV_DEVICE,
    ov_precision: list[str] = typer.Option(
        [],
        "--ov-precision",
        help="--backend openvino: f32 (default), bf16, f16 or int8; repeatable: one configuration each",
    ),
    tf32: bool | None = TF32,
) -> None:
    """Latency (p50/p90/p99 ms per batch), throughput and recursion steps of an artefact through the torch-free
    runtime, per variant x mode x batch size; with several --backend / --ov-precision, per configuration too."""
    from ..runtime import MODES
    from ..runtime.bench import BenchPlan, Configuration, bench_configurations, bench_variants
    from .bench_configs import configurations

    if plot is not None:
        _need_matplotlib()  # before the benchmark, not after minutes of timing
    one_backend = backend[0] if len(set(backend)) == 1 else None
    one_precision = ov_precision[0] if len(set(ov_precision)) == 1 else None
    opts = _options(
        provider, device_id, trt_fp16, cache_dir, threads, engines, allow_fallback, one_backend, ov_device,
        one_precision, tf32,
    )  # fmt: skip
    try:
        if mode != "all" and mode not in MODES:
            raise InputError(f"unknown mode {mode!r}", f"use one of {', '.join(MODES)} or all")
        configs = configurations(opts, backend, ov_precision)  # None: one configuration
        first_opts = opts if configs is None else configs[0][1]
        first = first_opts.runner(artefact, next((v for v in variant if v != "all"), None))
        names = (list(first.manifest.variants) if "all" in variant else variant) or [first.variant]
        x, y, described = _bench_inputs(first, inputs, n, seed)
        plan = BenchPlan(names, mode, batch, repeats, warmup, _puzzle_id(puzzle_id), graph_times is not None)
        with progress.reporting(progress.for_stream(sys.stdout, console, quiet=json_out)):
            if configs is None:
                run = bench_variants(lambda v: opts.runner(artefact, v), plan, x, y)
            else:
                side = [
                    Configuration(c, functools.partial(o.runner, artefact), o.own_variant(artefact)) for c, o in configs
                ]
                run = bench_configurations(side, plan, x, y)
        if graph_times is not None:
            _write_graph_times(graph_times, list(first.providers), run.graph_times)
    except _runtime_errors() as e:
        fail(_as_error(e))
    except EdgekitError as e:
        fail(e)
    if plot is not None:
        _bench_plot(run.rows, plot, f"edgekit bench {artefact.name} ({described}; {repeats} repeats)")
    if json_out:
        doc = {"artefact": str(artefact), "inputs": described, "threads": threads,
               "providers": opts.providers or ["cpu"], "results": run.rows}  # fmt: skip
        if configs is not None:
            doc["configurations"] = [c for c, _ in configs]
        print(json.dumps(doc, indent=1))
        return
    rounds = f"{repeats} {'interleaved rounds' if configs else 'repeats'}"
    _print_bench_table(run.rows, f"edgekit bench {artefact}  ({described}; {rounds})")


def _bench_inputs(runner: Any, inputs: Path | None, n: int, seed: int) -> tuple[np.ndarray, np.ndarray | None, str]:
    """--inputs' examples (no labels), else `n` generated held-out examples of the artefact's task."""
    if inputs is not None:
        return _file_inputs(runner, inputs), None, f"inputs from {inputs}"
    return _generated_inputs(runner, n, seed)


def _write_graph_times(path: Path, providers: list[str], records: dict[str, dict]) -> None:
    from ..runtime.graph_times import write_graph_times

    try:
        write_graph_times(path, providers, records)
    except OSError as e:
        raise InputError(f"cannot write {path} ({e.strerror})", "pass a writable file path") from None


def _bench_plot(rows: list[dict], plot: Path, title: str) -> None:
    from .bench_plot import write_bench_plot

    try:
        write_bench_plot(rows, plot, title)
    except OSError as e:
        fail(InputError(f"cannot write the plot {plot} ({e.strerror})", "pass --plot a writable file path"))


def _speedup(sp: dict | None) -> str:
    """A side-by-side row's speed-up over the first configuration with its interval; the first is the baseline."""
    return "baseline" if not sp else f"{sp['median']:.2f}x [{sp['interval'][0]:.2f}, {sp['interval'][1]:.2f}]"


def _print_bench_table(rows: list[dict], title: str) -> None:
    """One row per variant x mode x batch size (and configuration, side by side), then what the steps column
    means."""
    t = Table(title=title)
    side = any("config" in r for r in rows)
    cols = (
        *(("config",) if side else ()),
        "variant",
        "mode",
        "batch",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "samples/s",
        "ms/sample",
        "mean steps",
        "steps",
        "exact",
        *(("speed-up [95 %]",) if side else ()),
    )
    for col in cols:
        t.add_column(col, justify="left" if col in ("config", "variant", "mode", "steps") else "right")
    for r in rows:
        hist = " ".join(f"{k}:{v}" for k, v in r["steps_hist"].items())
        t.add_row(
            *((r["config"] + (f" ({r['graphs']} graphs)" if "graphs" in r else ""),) if side else ()),
            r["variant"],
            r["mode"],
            str(r["batch"]),
            f"{r['p50_ms']:.2f}",
            f"{r['p90_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
            f"{r['samples_per_s']:.1f}",
            f"{r['per_sample_ms']:.2f}",
            f"{r['mean_steps']:.2f}",
            hist,
            "–" if r["exact"] is None else f"{r['exact']:.3f}",
            *((_speedup(r.get("speedup")),) if side else ()),
        )
    console.print(t)
    console.print("[dim]steps: recursion steps taken -> number of samples (first timed pass)[/]")
    if side:
        console.print(
            f"[dim]speed-up: over {rows[0]['config']} on the same variant, mode and batch, median of the per-round "
            "ratios with its 95 % interval[/]"
        )


@app.command()
def solve(
    artefact: Path = typer.Argument(..., help="artefact folder written by `edgekit export`"),
    inputs: Path = typer.Option(..., "--inputs", "-i", help="examples: .npy, .npz (its 'inputs') or text, one a line"),
    variant: str | None = typer.Option(
        None, "--variant", "-v", help="precision variant (`edgekit info` lists them; default: the artefact's default)"
    ),
    mode: str = typer.Option("host", "--mode", "-m", help="host (early halting), loop or unrolled"),
    max_steps: int | None = typer.Option(None, "--max-steps", min=1, max=100_000, help="step cap (default: budget)"),
    threshold: float | None = typer.Option(None, "--threshold", help="halting threshold (default: the artefact's)"),
    puzzle_id: str | None = typer.Option(
        None, "--puzzle-id", help="ARC models: the puzzle identifier (id or name) of every example"
    ),
    json_out: bool = typer.Option(False, "--json", help="one JSON object per example instead of text"),
    provider: list[str] | None = PROVIDER,
    device_id: int = DEVICE_ID,
    trt_fp16: bool = TRT_FP16,
    cache_dir: Path | None = CACHE_DIR,
    threads: int | None = THREADS,
    engines: Path | None = ENGINES,
    allow_fallback: bool = ALLOW_FALLBACK,
    backend: str | None = BACKEND,
    ov_device: str | None = OV_DEVICE,
    ov_precision: str | None = OV_PRECISION,
    tf32: bool | None = TF32,
) -> None:
    """Answer examples from a file with the runtime alone: one line per example (answer and steps), or JSON."""
    opts = _options(
        provider, device_id, trt_fp16, cache_dir, threads, engines, allow_fallback, backend, ov_device, ov_precision,
        tf32,
    )  # fmt: skip
    try:
        runner = opts.runner(artefact, variant)
        x = _file_inputs(runner, inputs)
        sol = runner.solve(x, mode=mode, max_steps=max_steps, threshold=threshold, puzzle_ids=_puzzle_id(puzzle_id))
    except _runtime_errors() as e:
        fail(_as_error(e))
    task = _task_of(runner)
    preds = sol.preds
    for i in range(len(preds)):
        steps, halted = int(sol.steps[i]), bool(sol.done[i])
        tokens = preds[i].reshape(-1).tolist()
        text = task.render(preds[i]) if task is not None else " ".join(map(str, tokens))
        if json_out:  # the answer as text and serve print it (Sudoku: digits); the model's token ids beside it
            print(json.dumps({"index": i, "answer": text, "tokens": tokens, "steps": steps, "halted": halted}))
        else:
            print(f"{text} steps {steps}{'' if halted else ' (cap)'}")


@app.command()
def info(
    artefact: Path = typer.Argument(..., help="artefact folder written by `edgekit export`"),
    json_out: bool = typer.Option(False, "--json", help="print the description as JSON"),
    engines: Path | None = typer.Option(
        None, "--engines", help="also describe this engine folder and whether it belongs to the artefact"
    ),
    variant: str | None = typer.Option(None, "--variant", "-v", help="with --engines: the variant they serve"),
) -> None:
    """What an artefact holds: model, variants and their forms, input contract, halting, files and hashes (and,
    with --engines, the TensorRT engines built for it: target, TensorRT, GPU, batch profile, graphs)."""
    from ..runtime.info import describe

    try:
        d = describe(artefact)
        if engines is not None:
            from ..runtime.tensorrt_backend import describe_engines

            d["engines"] = describe_engines(artefact, engines, variant)
    except _runtime_errors() as e:
        fail(_as_error(e))
    if engines is not None and not json_out:
        _print_engines(d["engines"])
    if json_out:
        print(json.dumps(d, indent=1))
        return
    g = d["graph"]
    console.print(
        f"{artefact}: {d['model']['family']} model, recipe {d['recipe']}, target {d['target']}, "
        f"edgekit {d['edgekit_version']}",
        highlight=False,
        markup=False,
    )
    console.print(
        f"input: {g['input']}; step budget {g['step_budget']}; halting: {g['halting']}; threshold "
        f"{g['halt_threshold']}",
        highlight=False,
        markup=False,
    )
    p = g.get("puzzle_ids")
    if p:
        console.print(
            f"puzzle identifiers: input puzzle_ids [batch]; {p['rows']:,} of {p['rows_before']:,} table rows kept "
            f"({p['bytes_after'] / 1e6:,.2f} of {p['bytes_before'] / 1e6:,.2f} MB)"
            + (", named" if p.get("named") else ""),
            highlight=False,
            markup=False,
        )
    rd = d.get("runtime_defaults")
    if rd:
        thr = "never" if rd["halt_threshold"] is None else rd["halt_threshold"]
        console.print(
            f"runtime default: {rd['variant']}, halt threshold {thr}, step cap {rd['max_steps']} "
            f"({rd.get('chosen_by', 'set by hand')})",
            highlight=False,
            markup=False,
        )
    t = Table(title="variants")
    for col in ("variant", "forms", "MB"):
        t.add_column(col)
    for name, v in d["variants"].items():
        t.add_row(name, ", ".join(v["forms"]), f"{v['bytes'] / 1e6:.2f}")
    console.print(t)
    t = Table(title="files")
    for col in ("key", "file", "bytes", "sha256"):
        t.add_column(col)
    for f in d["files"]:
        t.add_row(
            f["key"], f["file"], str(f["bytes"]) if f["bytes"] is not None else "missing", (f["sha256"] or "none")[:16]
        )
    console.print(t)
    if d.get("passed") is not None:
        console.print(f"validation: {'PASSED' if d['passed'] else 'FAILED'} ({d['gates']} gates)", markup=False)


def _print_engines(e: dict[str, Any]) -> None:
    from ..runtime.manifest import escape_text

    if not e["usable"]:
        problem = escape_text(e["problem"], 400)
        console.print(f"engines {escape_text(e['engines'])}: NOT USABLE: {problem}", markup=False, highlight=False)
        return
    b, gpu = e["batch"], e["gpu"]
    console.print(
        f"engines {escape_text(e['engines'])}: target {escape_text(e['target'])}, TensorRT "
        f"{escape_text(e['tensorrt_version'])}, built on {escape_text(gpu['name'])} (compute capability "
        f"{escape_text(gpu['compute_capability'])}), precision {escape_text(e.get('precision') or '?')}, batch "
        f"{b['min']}/{b['opt']}/{b['max']}, graphs {', '.join(escape_text(g) for g in e['graphs'])}",
        markup=False,
        highlight=False,
    )


@app.command()
def serve(
    artefact: Path = typer.Argument(..., help="artefact folder written by `edgekit export`"),
    slots: int = typer.Option(16, "--slots", "-b", min=1, max=65536, help="samples in flight (the batch size)"),
    variant: str | None = typer.Option(
        None, "--variant", "-v", help="precision variant (default: the artefact's default)"
    ),
    queue_size: int = typer.Option(256, "--queue", min=1, max=65536, help="requests waiting before back-pressure"),
    max_steps: int | None = typer.Option(None, "--max-steps", min=1, max=100_000, help="step cap (default: budget)"),
    threshold: float | None = typer.Option(None, "--threshold", help="halting threshold (default: the artefact's)"),
    max_line_bytes: int = typer.Option(
        1 << 20,
        "--max-line-bytes",
        min=1024,
        max=1 << 28,
        help="longest stdin line read (bytes); a longer line gets an error line and is skipped unread",
    ),
    provider: list[str] | None = PROVIDER,
    device_id: int = DEVICE_ID,
    trt_fp16: bool = TRT_FP16,
    cache_dir: Path | None = CACHE_DIR,
    threads: int | None = THREADS,
    engines: Path | None = ENGINES,
    allow_fallback: bool = ALLOW_FALLBACK,
    backend: str | None = BACKEND,
    ov_device: str | None = OV_DEVICE,
    ov_precision: str | None = OV_PRECISION,
    tf32: bool | None = TF32,
) -> None:
    """Serve examples read from stdin (one a line) with slot refill: each answer is printed as a JSON line as soon
    as it is ready (completion order, with the input's line number); a bad line gets its own error line. Exit 0
    when every line was answered, 2 when a line was refused or the runtime failed, 130 / 143 on SIGINT / SIGTERM
    (nothing more is answered), 141 when stdout was closed. See docs/serving.md."""
    import signal

    from ..runtime.server import LineReader, Server, ServerFailed, ServerStopped
    from . import Terminated

    opts = _options(
        provider, device_id, trt_fp16, cache_dir, threads, engines, allow_fallback, backend, ov_device, ov_precision,
        tf32,
    )  # fmt: skip
    try:
        runner = opts.runner(artefact, variant)
        task = _task_of(runner)
        length = int(runner.graph.input.shape[-1])
        server = Server(runner, slots=slots, queue_size=queue_size, max_steps=max_steps, threshold=threshold)
    except _runtime_errors() as e:
        fail(_as_error(e))
    out = _JsonLines(sys.stdout)
    lines = LineReader(sys.stdin.fileno(), max_line_bytes)
    try:
        while not out.closed and server.failure is None:
            batch = lines.read(timeout=0.1)  # a bounded wait: a failed worker or closed stdout is seen at once
            if batch is None:
                break
            for number, raw in batch:
                example = _serve_example(raw, number, max_line_bytes, task, length, runner, out)
                if example is None:
                    continue
                fut = None
                while fut is None and not out.closed:  # back-pressure, watching stdout while the queue is full
                    try:
                        fut = server.submit(example, timeout=0.1)
                    except queue.Full:
                        continue
                    except (ServerFailed, ServerStopped):
                        break
                if fut is None:
                    break
                fut.add_done_callback(functools.partial(_print_answer, number=number, task=task, out=out))
        while not out.closed and server.failure is None and not server.close(timeout=0.1):
            pass  # answering what is queued, watching stdout and the worker
    except Terminated as t:
        for sig in (signal.SIGINT, signal.SIGTERM):  # a second signal must not cut the shutdown short
            signal.signal(sig, signal.SIG_IGN)
        out.mute()
        left = server.pending
        ended = server.stop(timeout=0.9)
        name = "SIGINT" if t.signum == signal.SIGINT else "SIGTERM"
        err_console.print(
            f"interrupted ({name}); serving stopped, {left} request(s) in flight were not answered", markup=False
        )
        _leave(128 + t.signum, ended)
    if out.closed:
        ended = server.stop(timeout=0.9)
        if out.write_error is not None:
            err_console.print(
                f"error: cannot write to stdout ({out.write_error}); serve's answers need a writable stdout",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
            _leave(EXIT_USAGE, ended)
        _leave(141, ended)  # the reader went away (a closed pipe): quiet, like a tool stopped by SIGPIPE
    if server.failure is not None:
        fail(InputError(str(server.failure)))
    raise typer.Exit(0 if not out.errors else EXIT_USAGE)


def _leave(code: int, worker_ended: bool) -> NoReturn:
    """Exit serve with `code`. While a graph call still runs on the worker thread the interpreter cannot shut down
    under it (onnxruntime would abort the process), so then the process ends at once, its output flushed."""
    if not worker_ended:
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        os._exit(code)
    raise typer.Exit(code)


class _JsonLines:
    """serve's stdout: one JSON object a line, each written whole under a lock (answers come from the server's
    worker thread, refusals from the reading loop). A closed stdout is noted, never raised (a raising Future
    callback becomes a logged traceback), and later lines are dropped; `mute()` drops them once stopping."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.lock = threading.Lock()
        self.closed = False
        self.muted = False
        self.errors = 0  # refused lines and requests, counted instead of keeping their Futures
        self.write_error: str | None = None  # why stdout could not be written, other than a closed pipe

    def mute(self) -> None:
        self.muted = True  # no lock: the worker may hold it while blocked on a full pipe

    def error(self, number: int, message: str) -> None:
        self.write({"line": number, "error": message}, error=True)

    def write(self, obj: dict[str, Any], error: bool = False) -> None:
        with self.lock:
            self.errors += error
            if self.closed or self.muted:
                return
            try:
                self.stream.write(json.dumps(obj) + "\n")
                self.stream.flush()
            except (OSError, ValueError) as e:  # EPIPE, or a stdout closed under us
                self.closed = True
                if not isinstance(e, (BrokenPipeError, ValueError)):
                    self.write_error = first_line(e, 120)
                with contextlib.suppress(OSError, ValueError):  # the exit flush must not report it again
                    os.dup2(os.open(os.devnull, os.O_WRONLY), self.stream.fileno())


def _serve_example(
    raw: bytes | None, number: int, max_bytes: int, task: Any, length: int, runner: Any, out: _JsonLines
) -> np.ndarray | None:
    """One stdin line as a checked example, or None: blank and # lines are skipped, a bad line gets its error
    line (too long, not UTF-8, not an example of the artefact's input contract)."""
    if raw is None:
        out.error(number, f"line is longer than {max_bytes} bytes; it was skipped (raise --max-line-bytes)")
        return None
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        out.error(number, f"line is not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start})")
        return None
    if not line.strip() or line.lstrip().startswith("#"):
        return None
    try:
        if task is not None:
            example = task.parse_line(line, length)
        else:
            from ..tasks.base import parse_numbers

            example = parse_numbers(line, length, integers=runner.graph.input.tokens)
        return np.asarray(runner.check_inputs(np.asarray(example)[None])[0])
    except (ValueError, TypeError, OverflowError) as e:  # RuntimeInputError is a ValueError
        out.error(number, first_line(e, 300))
        return None


def _print_answer(fut: Any, number: int, task: Any, out: _JsonLines) -> None:
    """A Future's callback (on the worker thread): the answer or the request's error as one JSON line. A Future
    that failed because the server stopped or failed prints nothing: the command ends with one line for that."""
    if fut.exception() is not None:
        return
    a = fut.result()
    if a.error:
        out.error(number, a.error)
        return
    try:
        answer = task.render(a.prediction) if task is not None else a.prediction.reshape(-1).tolist()
    except (ValueError, TypeError, IndexError) as e:
        out.error(number, f"cannot render the answer: {first_line(e, 200)}")
        return
    out.write(
        {
            "line": number,
            "answer": answer,
            "steps": a.steps,
            "halted": a.halted,
            "service_ms": round(a.service_s * 1e3, 3),
        }
    )
