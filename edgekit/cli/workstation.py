"""Workstation commands (the `export` extra): export, validate, targets, check, plan, build."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.table import Table

from .. import progress
from ..errors import EdgekitError
from ..scale.settings import EXECUTOR_HELP, WORKERS_HELP, for_command
from .app import app, console, err_console, fail
from .results_view import print_results


@app.command()
def export(
    recipe: Path = typer.Argument(..., help="recipe YAML, e.g. recipes/trm-sudoku.yaml"),
    out: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        help="artefact folder (default: the recipe's `output`, relative to the recipe; without one, "
        "artefacts/<name> under the current folder)",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="check the recipe, target, paths and file headers (no weights loaded), then stop"
    ),
    wide: bool = typer.Option(False, "--wide", help="every column of the results (needs about 200 columns)"),
    json_out: bool = typer.Option(False, "--json", help="print results.json instead of a table"),
    executor: str | None = typer.Option(None, "--executor", help=EXECUTOR_HELP),
    workers: int | None = typer.Option(None, "--workers", min=1, max=4096, help=WORKERS_HELP),
) -> None:
    """Run the pipeline: load checkpoint, export ONNX, validate, write the artefact. Exit code = gate verdict."""
    from ..schema import load_recipe, load_target

    try:
        r, base = load_recipe(recipe)
        load_target(r.target)
        from ..pipeline import resolve_output, run_export

        final = resolve_output(r, base, out)
        if dry_run:
            from ..preflight import check_inputs

            for line in check_inputs(r, base):
                console.print(f"• {line}", style="dim", markup=False, highlight=False, soft_wrap=True)
            console.print(
                f"recipe {recipe} is valid (target {r.target}, model {r.model.path}, output {final})",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
            return

        with (
            progress.reporting(progress.for_stream(sys.stdout, console, quiet=json_out)),
            for_command(recipe, executor, workers),
        ):
            outcome = run_export(recipe, out, log=lambda s: console.print(f"[dim]• {s}[/]") if not json_out else None)
    except EdgekitError as e:
        fail(e)
    res = outcome.results
    if json_out:
        import json

        print(json.dumps(res, indent=1))
    else:
        print_results(console, res, outcome.folder, wide)
    tgt = res.get("target_build")
    if tgt and tgt.get("exit_code"):
        why = (
            tgt.get("engine_error") or "the artefact is not compatible with the target (see results.json target.check)"
        )
        err_console.print(f"[bold red]error:[/] {why}", highlight=False, soft_wrap=True)
    raise typer.Exit(outcome.exit_code)


@app.command()
def targets() -> None:
    """List the deployment targets shipped with edgekit (edgekit/targets/*.yaml). Works on the base install."""
    from .. import targets as shipped

    t = Table(title="targets")
    for col in ("name", "backend", "precisions", "TensorRT", "SM", "platform"):
        t.add_column(col, no_wrap=col == "name")
    t.add_column("description", overflow="fold")
    for name in shipped.target_names():
        try:
            tg = shipped.read_target(name)
        except shipped.TargetFileError as e:
            fail(EdgekitError(f"target file {e}", "reinstall edgekit (the packaged target files are damaged)"))
        t.add_row(
            name,
            str(tg.get("backend", "?")),
            ",".join(map(str, tg.get("precisions", []))),
            str(tg.get("tensorrt") or "–"),
            str(tg.get("compute_capability") or "–"),
            shipped.platform(tg) or "–",
            str(tg.get("description", "")),
        )
    console.print(t)


# -- TensorRT targets: check, plan, build ----------------------------------------------------------------------------
_TARGET_HELP = "target name (`edgekit targets`); default: the target the artefact was exported for"
_GRAPHS_HELP = (
    "comma-separated graphs of the variant (roles such as encode,step,readout, or manifest keys); default: all"
)


def _graph_list(graphs: str | None) -> list[str] | None:
    return [g.strip() for g in graphs.split(",") if g.strip()] if graphs else None


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _artefact_target(artefact: Path, target: str | None) -> str:
    """--target, or the artefact's own target from its manifest."""
    if target:
        return target
    from ..tensorrt.graphs import load_manifest

    return load_manifest(artefact).target_name


def _print_check(report) -> None:
    for _name, g in report.graphs.items():
        quant = ", ".join(g["quantization"]) or "none"
        console.print(f"[dim]{g['file']}: opset {g['opset']}, {g['nodes']} nodes, Q/DQ {quant}[/]", highlight=False)
    if report.findings:
        t = Table(title=f"{report.artefact} → {report.target}")
        for col in ("severity", "file", "node", "message"):
            t.add_column(col, overflow="fold")
        colour = {"error": "bold red", "warning": "yellow", "note": "dim"}
        for f in report.findings:
            t.add_row(f"[{colour[f.severity]}]{f.severity}[/]", f.file, f.node or "–", f.message)
        console.print(t)
    counts = {s: sum(f.severity == s for f in report.findings) for s in ("error", "warning", "note")}
    verdict = "[green]COMPATIBLE[/]" if report.compatible else "[bold red]INCOMPATIBLE[/]"
    trt = f", TensorRT {report.tensorrt}" if report.tensorrt else ""
    console.print(
        f"{report.artefact} → {report.target} ({report.backend}{trt}): {verdict}  "
        f"({_count(counts['error'], 'error')}, {_count(counts['warning'], 'warning')}, "
        f"{_count(counts['note'], 'note')})",
        highlight=False,
    )


@app.command()
def check(
    artefact: Path = typer.Argument(..., help="artefact folder written by `edgekit export`"),
    target: str | None = typer.Option(None, "--target", "-t", help=_TARGET_HELP),
    json_out: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """Check an artefact's ONNX graphs against a target (ops, opset, types, Q/DQ, Loop rules); no GPU. Exit 0 / 6."""
    from ..errors import EXIT_INCOMPATIBLE
    from ..tensorrt.check import check_artefact

    try:
        report = check_artefact(artefact, _artefact_target(artefact, target))
    except EdgekitError as e:
        fail(e)
    if json_out:
        import json

        print(json.dumps(report.to_dict(), indent=1))
    else:
        _print_check(report)
    raise typer.Exit(0 if report.compatible else EXIT_INCOMPATIBLE)


def _require_compatible(artefact: Path, target: str) -> None:
    """Plans and builds start only from an artefact `check` passes; otherwise print why and exit 6."""
    from ..errors import EXIT_INCOMPATIBLE
    from ..tensorrt.check import check_artefact

    report = check_artefact(artefact, target)
    if not report.compatible:
        _print_check(report)
        err_console.print(
            f"[bold red]error:[/] {artefact} is incompatible with {target}; fix the errors above "
            "(`edgekit check` lists them)",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(EXIT_INCOMPATIBLE)


_PRECISION_HELP = (
    "fp32, fp16, bf16, int8 (Q/DQ graphs), fp8 (Q/DQ graphs); default: what the variant was validated at "
    "(float32: fp32, float16: fp16, Q/DQ variants: int8 with float32 elsewhere)"
)
_VARIANT_HELP = (
    "comma-separated artefact variants to build (e.g. float16 or float32,int8); default: float16 if it passed its "
    "accuracy gates (results.json), else float32"
)


def _variant_list(variant: str | None) -> list[str] | None:
    return [v.strip() for v in variant.split(",") if v.strip()] if variant else None


def _print_choice(recipe) -> None:
    """Which variants are built at which precision, and why (plan and build print it before anything else)."""
    built = ", ".join(f"{v} at {info['precision']}" for v, info in recipe.variants.items())
    console.print(f"engines: {built} — {recipe.reason}", highlight=False, markup=False, soft_wrap=True)
    for n in recipe.notes:
        console.print(f"note: {n}", style="dim", highlight=False, markup=False, soft_wrap=True)


@app.command()
def plan(
    artefact: Path = typer.Argument(..., help="artefact folder written by `edgekit export`"),
    target: str = typer.Option(..., "--target", "-t", help="TensorRT target (`edgekit targets`)"),
    out: Path | None = typer.Option(None, "--out", "-o", help="folder for the script (default: the artefact)"),
    variant: str | None = typer.Option(None, "--variant", "-v", help=_VARIANT_HELP),
    precision: str | None = typer.Option(None, "--precision", help=_PRECISION_HELP),
    strongly_typed: bool = typer.Option(False, "--strongly-typed", help="strongly typed build on TensorRT 10.x too"),
    graphs: str | None = typer.Option(None, "--graphs", help=_GRAPHS_HELP),
) -> None:
    """Write build_<target>.sh, the trtexec engine build to run on the device itself (Jetson engines are built
    there), for the variant validation passed (or --variant) at the precision it was validated at."""
    from ..tensorrt.build_spec import make_recipe, tensorrt_target
    from ..tensorrt.plan import write_script

    try:
        tg = tensorrt_target(target)
        _require_compatible(artefact, tg.name)
        recipe = make_recipe(artefact, tg, precision, strongly_typed, _graph_list(graphs), _variant_list(variant))
        path = write_script(recipe, tg, artefact, out)
    except EdgekitError as e:
        fail(e)
    _print_choice(recipe)
    t = Table(
        title=f"{artefact} → {tg.name}: {recipe.precision}, batch {recipe.batch['min']}/{recipe.batch['opt']}/"
        f"{recipe.batch['max']}, workspace {recipe.workspace_mb} MiB"
    )
    for col in ("engine", "onnx", "precision", "TensorRT 10 flags", "TensorRT 11 flags", "dynamic inputs"):
        t.add_column(col)
    for g in recipe.graphs:
        t.add_row(
            g.engine,
            g.onnx,
            g.label(),
            " ".join(g.trtexec_strong_flags(10) if g.strongly_typed else g.trtexec_weak_flags()) or "–",
            " ".join(g.trtexec_strong_flags(11)) or "–",
            ", ".join(g.shapes) or "–",
        )
    console.print(t)
    console.print(f"plan: {path}  (copy the artefact to the device, then: bash {path.name})", highlight=False)


@app.command()
def build(
    artefact: Path = typer.Argument(..., help="artefact folder written by `edgekit export`"),
    target: str = typer.Option(..., "--target", "-t", help="TensorRT target (`edgekit targets`)"),
    out: Path | None = typer.Option(None, "--out", "-o", help="engine folder (default: ARTEFACT/engines/TARGET)"),
    variant: str | None = typer.Option(None, "--variant", "-v", help=_VARIANT_HELP),
    precision: str | None = typer.Option(None, "--precision", help="as for `edgekit plan`"),
    strongly_typed: bool = typer.Option(False, "--strongly-typed", help="strongly typed build on TensorRT 10.x too"),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="timing caches (default ~/.cache/edgekit)"),
    graphs: str | None = typer.Option(None, "--graphs", help=_GRAPHS_HELP),
) -> None:
    """Build TensorRT engines on this machine's GPU (Python API), for the same variant and precision as `edgekit
    plan`. Exit 5 without TensorRT: use `edgekit plan`."""
    from ..tensorrt.build_spec import make_recipe, tensorrt_target

    try:
        tg = tensorrt_target(target)
        variants = _variant_list(variant)
        recipe = make_recipe(artefact, tg, precision, strongly_typed, _graph_list(graphs), variants)  # usage errors
        _require_compatible(artefact, tg.name)
        _print_choice(recipe)
        from ..tensorrt.tensorrt_builder import build_engines

        folder = build_engines(
            artefact,
            tg,
            out,
            precision,
            strongly_typed,
            cache_dir,
            _graph_list(graphs),
            log=lambda s: console.print(f"• {s}", style="dim", highlight=False, markup=False),
            variants=variants,
        )
    except EdgekitError as e:
        fail(e)
    console.print(f"engines: {folder}", highlight=False)


@app.command()
def validate(
    recipe: Path = typer.Argument(..., help="the recipe the artefact was exported with (model, data, gates)"),
    artefact: Path = typer.Argument(..., help="artefact folder written by `edgekit export`"),
    wide: bool = typer.Option(False, "--wide", help="every column of the results (needs about 200 columns)"),
    json_out: bool = typer.Option(False, "--json", help="print results.json instead of a table"),
    executor: str | None = typer.Option(None, "--executor", help=EXECUTOR_HELP),
    workers: int | None = typer.Option(None, "--workers", min=1, max=4096, help=WORKERS_HELP),
) -> None:
    """Re-validate an existing artefact against its PyTorch model with the recipe's data and gates; rewrites
    results.json, junit.xml, report.md. Exit code = gate verdict (0 passed, 3 failed)."""
    try:
        from ..pipeline import run_validate

        with (
            progress.reporting(progress.for_stream(sys.stdout, console, quiet=json_out)),
            for_command(recipe, executor, workers),
        ):
            outcome = run_validate(
                recipe, artefact, log=lambda s: console.print(f"[dim]• {s}[/]") if not json_out else None
            )
    except EdgekitError as e:
        fail(e)
    if json_out:
        import json

        print(json.dumps(outcome.results, indent=1))
    else:
        print_results(console, outcome.results, outcome.folder, wide)
    raise typer.Exit(outcome.exit_code)
