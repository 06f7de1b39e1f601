"""`edgekit debug`: parse, call edgekit.debug, print the ranked layers (and write the plot / JSON asked for)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import EdgekitError, InputError
from .app import app, console, fail


def _inputs(runner_folder: Path, inputs: Path | None, n: int, seed: int) -> tuple:
    """The debug inputs: a file of examples, or the task's own generated held-out examples."""
    from ..runtime import Runner
    from ..tasks import task_for_inputs

    runner = Runner(runner_folder)
    task = task_for_inputs(runner.graph.input.to_json(), runner.family)
    if inputs is not None:
        from ..runtime.inputs import read_inputs

        length = int(runner.graph.input.shape[-1])
        parse = None if task is None else (lambda line: task.parse_line(line, length))
        x = read_inputs(inputs, parse)
        return x[:n], f"{min(n, len(x))} examples from {inputs.name}"
    if task is None or not task.generates:
        raise InputError(
            f"no built-in inputs for this artefact's input ({runner.family})", "pass --inputs FILE with examples"
        )
    from types import SimpleNamespace

    settings = SimpleNamespace(
        name=task.name, n=n, seed=seed, givens=None, data=None, split="test", calibration_split="train"
    )
    data = task.load(settings, n, seed, "test")
    return data.inputs, data.description


@app.command()
def debug(
    artefact: Path = typer.Argument(..., help="artefact folder written by `edgekit export`"),
    variant: str = typer.Option(..., "--variant", "-v", help="the compressed variant to explain (e.g. int8)"),
    step: int | None = typer.Option(
        None, "--step", "-k", min=1, max=100_000, help="recursion step (default: where most float32 puzzles halt)"
    ),
    n: int = typer.Option(64, "--n", min=1, max=4096, help="puzzles whose float32 trajectory is followed"),
    seed: int = typer.Option(4242, "--seed", min=0, help="seed of the generated puzzles"),
    inputs: Path | None = typer.Option(None, "--inputs", help="examples to use instead of generated ones"),
    plot: Path | None = typer.Option(None, "--plot", help="write the ranking as a PNG plot to this file"),
    json_out: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """Which quantized layer moves halting: along the float32 trajectory at recursion step K, each layer's output
    error against float32 and the change of the halting logit when only it is quantized (or only it restored),
    ranked. Needs the export extra (onnx; matplotlib for --plot)."""
    from .. import progress
    from ..debug import debug_variant, write_plot

    if plot is not None and (plot.suffix.lower() != ".png" or not plot.parent.is_dir()):
        fail(InputError(f"--plot {plot}: expected a .png file in an existing folder", "name a .png path"))
    try:
        x, described = _inputs(artefact, inputs, n, seed)
        with progress.reporting(progress.for_stream(sys.stderr, quiet=json_out)):
            report = debug_variant(artefact, variant, x, step, log=lambda s: None)
        if plot is not None:
            write_plot(report, plot)
    except EdgekitError as e:
        fail(e)
    if json_out:
        console.print_json(json.dumps({**report.to_json(), "inputs": described}))
        return
    t = Table(
        title=f"{escape(report.variant)} ({report.mode}) at recursion step {report.step}: halting logit vs float32",
        caption=f"{described}; threshold {report.threshold:g}; whole variant: mean |Δ halt| "
        f"{report.variant_halt_change:.4f}, decisions flipped {report.variant_flips:.1%}. |Δ halt|: mean change of "
        "the halting logit with only this layer quantized (only q) or only it restored (only r); out err: relative "
        "output error of the variant vs float32",
    )
    width = max(len(r.layer) for r in report.layers)
    t.add_column("rank", justify="right")
    t.add_column("layer", min_width=width, no_wrap=True)
    for c in ("calls", "out err", "only q |Δ halt|", "flips", "only r |Δ halt|", "flips "):
        t.add_column(c, justify="right")
    for r in report.layers:
        err = "n/a" if r.output_error is None else f"{r.output_error:.4f}"
        cells = [f"{r.only_quantized_halt_change:.4f}", f"{r.only_quantized_flips:.1%}"]
        cells += [f"{r.only_restored_halt_change:.4f}", f"{r.only_restored_flips:.1%}"]
        t.add_row(str(r.rank), escape(r.layer), str(r.calls), err, *cells)
    console.print(t)
    for note in report.notes:
        console.print(f"note: {escape(note)}")
    if plot is not None:
        console.print(f"plot: {escape(str(plot))}")
