"""The `edgekit` command. Every error a user can cause ends as one line and a documented exit code."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from .errors import EXIT_USAGE, EdgekitError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Export, validate and run recursive reasoning models on edge devices.")
# Wide enough for the results table when output goes to a file or CI log.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 200)


def _fail(e: EdgekitError) -> None:
    err_console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
    raise typer.Exit(e.exit_code)


@app.command()
def export(recipe: Path = typer.Argument(..., help="recipe YAML, e.g. recipes/trm-sudoku.yaml"),
           out: Optional[Path] = typer.Option(None, "--out", "-o", help="artefact folder (default: the recipe's output)"),
           dry_run: bool = typer.Option(False, "--dry-run", help="validate the recipe and target, then stop"),
           json_out: bool = typer.Option(False, "--json", help="print results.json instead of a table")) -> None:
    """Run the pipeline: load checkpoint, export ONNX, validate, write the artefact. Exit code = gate verdict."""
    from .schema import load_recipe, load_target

    try:
        r, base = load_recipe(recipe)
        load_target(r.target)
        if dry_run:
            console.print(f"recipe {recipe} is valid (target {r.target}, model {r.model.path})")
            return
        from .pipeline import run_export

        outcome = run_export(recipe, out, log=lambda s: console.print(f"[dim]• {s}[/]") if not json_out else None)
    except EdgekitError as e:
        _fail(e)
    res = outcome.results
    if json_out:
        import json

        print(json.dumps(res, indent=1))
    else:
        _print_results(res, outcome.folder)
    tgt = res.get("target_build")
    if tgt and tgt.get("exit_code"):
        why = tgt.get("engine_error") or "the artefact is not compatible with the target (see results.json target.check)"
        err_console.print(f"[bold red]error:[/] {why}", highlight=False, soft_wrap=True)
    raise typer.Exit(outcome.exit_code)


def _print_results(res: dict, folder: Path) -> None:
    t = Table(title=f"{res['recipe']} → {res['target']}  ({res['data']})")
    for col in ("variant", "exact@1", "exact@budget", "exact@halt", "halted<cap", "mean steps", "argmax vs ref",
                "same halt step vs ref", "Loop form = host", "MB", "time s"):
        t.add_column(col, justify="left" if col == "variant" else "right")
    for e in res["variants"]:
        m, v, lp = e["metrics"], e.get("vs_reference", {}), e.get("loop", {})
        f = lambda x, fmt=".3f": "–" if x is None else format(x, fmt)  # noqa: E731
        loop_ok = lp.get("same_answer_as_host", lp.get("same_iterations_as_pytorch_solver"))
        t.add_row(e["name"], f(m.get("exact_1")), f(m.get("exact_full")), f(m.get("exact_halted")), f(m.get("halted_before_cap")),
                  f(m.get("mean_steps", m.get("mean_iterations")), ".2f"), f(v.get("argmax_agreement_last"), ".4f"),
                  f(v.get("halting_step_agreement")), f(loop_ok), f(e["bytes"] / 1e6 if "bytes" in e else None, ".2f"),
                  f(e.get("seconds"), ".1f"))
    console.print(t)
    for g in res["gates"]:
        mark = "[green]passed[/]" if g["passed"] else "[bold red]FAILED[/]"
        vs = f" vs {g['against']}" if g.get("against", "reference") != "reference" else ""
        console.print(f"gate {g['name']} on {g['variant']}{vs}: {g['value']:.4g} (limit {g['limit']}) {mark}")
    tgt = res.get("target_build")
    if tgt:
        console.print(f"target {res['target']}: {'compatible' if tgt['compatible'] else '[bold red]NOT compatible[/]'}"
                      + (f"; build script {tgt['plan']}" if tgt.get("plan") else "") + (f"; engine: {tgt['engine']}" if tgt.get("engine") else ""))
    console.print(f"artefact: {folder}  —  {'[green]PASSED[/]' if res['passed'] else '[bold red]FAILED[/]'}")


@app.command()
def targets() -> None:
    """List the deployment targets (targets/*.yaml)."""
    from .schema import load_target, target_names

    t = Table(title="targets")
    for col in ("name", "backend", "precisions", "TensorRT", "SM", "description"):
        t.add_column(col)
    for name in target_names():
        tg = load_target(name)
        t.add_row(tg.name, tg.backend, ",".join(tg.precisions), tg.tensorrt or "–", tg.compute_capability or "–", tg.description)
    console.print(t)


# -- TensorRT targets: check, plan, build (issue #5) ------------------------------------------------------------------
_TARGET_HELP = "target name (`edgekit targets`); default: the target the artefact was exported for"
_GRAPHS_HELP = "comma-separated graph names from the manifest (e.g. encode,step,readout); default: all"


def _graph_list(graphs: Optional[str]) -> Optional[list[str]]:
    return [g.strip() for g in graphs.split(",") if g.strip()] if graphs else None


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _artefact_target(artefact: Path, target: Optional[str]) -> str:
    """--target, or the artefact's own target from its manifest."""
    if target:
        return target
    from .build.graphs import load_manifest

    return load_manifest(artefact).get("target") or "x86-cpu"


def _print_check(report) -> None:
    for name, g in report.graphs.items():
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
    console.print(f"{report.artefact} → {report.target} ({report.backend}{trt}): {verdict}  "
                  f"({_count(counts['error'], 'error')}, {_count(counts['warning'], 'warning')}, "
                  f"{_count(counts['note'], 'note')})", highlight=False)


@app.command()
def check(artefact: Path = typer.Argument(..., help="artefact folder written by `edgekit export`"),
          target: Optional[str] = typer.Option(None, "--target", "-t", help=_TARGET_HELP),
          json_out: bool = typer.Option(False, "--json", help="print the report as JSON")) -> None:
    """Check an artefact's ONNX graphs against a target (ops, opset, types, Q/DQ, Loop rules); no GPU. Exit 0 / 6."""
    from .build.check import check_artefact
    from .errors import EXIT_INCOMPATIBLE

    try:
        report = check_artefact(artefact, _artefact_target(artefact, target))
    except EdgekitError as e:
        _fail(e)
    if json_out:
        import json

        print(json.dumps(report.to_dict(), indent=1))
    else:
        _print_check(report)
    raise typer.Exit(0 if report.compatible else EXIT_INCOMPATIBLE)


def _require_compatible(artefact: Path, target: str) -> None:
    """Plans and builds start only from an artefact `check` passes; otherwise print why and exit 6."""
    from .build.check import check_artefact
    from .errors import EXIT_INCOMPATIBLE

    report = check_artefact(artefact, target)
    if not report.compatible:
        _print_check(report)
        err_console.print(f"[bold red]error:[/] {artefact} is incompatible with {target}; fix the errors above "
                          "(`edgekit check` lists them)", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_INCOMPATIBLE)


@app.command()
def plan(artefact: Path = typer.Argument(..., help="artefact folder written by `edgekit export`"),
         target: str = typer.Option(..., "--target", "-t", help="TensorRT target (`edgekit targets`)"),
         out: Optional[Path] = typer.Option(None, "--out", "-o", help="folder for the script (default: the artefact)"),
         precision: Optional[str] = typer.Option(None, "--precision", help="fp32, fp16, bf16, int8 (Q/DQ graphs), fp8; "
                                                 "default int8/fp8 for quantized graphs, else fp16 where the target has it"),
         strongly_typed: bool = typer.Option(False, "--strongly-typed", help="strongly typed build on TensorRT 10.x too"),
         graphs: Optional[str] = typer.Option(None, "--graphs", help=_GRAPHS_HELP)) -> None:
    """Write build_<target>.sh, the trtexec engine build to run on the device itself (Jetson engines are built there)."""
    from .build.plan import write_plan
    from .build.recipe import make_recipe, tensorrt_target

    try:
        tg = tensorrt_target(target)
        _require_compatible(artefact, tg.name)
        recipe = make_recipe(artefact, tg, precision, strongly_typed, _graph_list(graphs))
        path = write_plan(artefact, tg, out, precision, strongly_typed, _graph_list(graphs))
    except EdgekitError as e:
        _fail(e)
    t = Table(title=f"{artefact} → {tg.name}: {recipe.precision}, batch {recipe.batch['min']}/{recipe.batch['opt']}/"
                    f"{recipe.batch['max']}, workspace {recipe.workspace_mb} MiB")
    for col in ("engine", "onnx", "Q/DQ", "TensorRT 10 flags", "dynamic inputs"):
        t.add_column(col)
    for g in recipe.graphs:
        t.add_row(g.engine, g.onnx, ",".join(g.quantization) or "–", " ".join(g.trtexec_weak_flags()) or "–",
                  ", ".join(g.shapes) or "–")
    console.print(t)
    for n in recipe.notes:
        console.print(f"[dim]note: {n}[/]", highlight=False)
    console.print(f"plan: {path}  (copy the artefact to the device, then: bash {path.name})", highlight=False)


@app.command()
def build(artefact: Path = typer.Argument(..., help="artefact folder written by `edgekit export`"),
          target: str = typer.Option(..., "--target", "-t", help="TensorRT target (`edgekit targets`)"),
          out: Optional[Path] = typer.Option(None, "--out", "-o", help="engine folder (default: ARTEFACT/engines/TARGET)"),
          precision: Optional[str] = typer.Option(None, "--precision", help="as for `edgekit plan`"),
          strongly_typed: bool = typer.Option(False, "--strongly-typed", help="strongly typed build on TensorRT 10.x too"),
          cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="timing caches (default ~/.cache/edgekit)"),
          graphs: Optional[str] = typer.Option(None, "--graphs", help=_GRAPHS_HELP)) -> None:
    """Build TensorRT engines on this machine's GPU (Python API). Exit 5 without TensorRT: use `edgekit plan`."""
    from .build.recipe import make_recipe, tensorrt_target

    try:
        tg = tensorrt_target(target)
        make_recipe(artefact, tg, precision, strongly_typed, _graph_list(graphs))  # usage errors before anything slow
        _require_compatible(artefact, tg.name)
        from .build.tensorrt_builder import build_engines

        folder = build_engines(artefact, tg, out, precision, strongly_typed, cache_dir, _graph_list(graphs),
                               log=lambda s: console.print(f"[dim]• {s}[/]", highlight=False))
    except EdgekitError as e:
        _fail(e)
    console.print(f"engines: {folder}", highlight=False)


# -- bench: latency / throughput of an artefact through the runtime --------------------------------------------------
def _bench_inputs(runner, inputs: Optional[Path], n: int, seed: int):
    """(inputs, labels or None, description): --inputs FILE.npy, else held-out task data the artefact's input
    contract identifies (Sudoku for [batch, 81] token ids, scikit-learn digits for a DEQ on [batch, 64])."""
    import numpy as np

    from .errors import InputError

    if inputs is not None:
        try:
            x = np.load(inputs, allow_pickle=False)
        except (OSError, ValueError) as e:
            from .errors import first_line

            raise InputError(f"cannot read --inputs {inputs}: {first_line(e)}", "pass a .npy array saved with numpy.save") from None
        return x, None, f"{len(x)} inputs from {inputs}"
    spec = runner.graph["input"]
    if spec.get("dtype") == "int64" and list(spec.get("shape", []))[1:] == [81] and runner.family in ("trm", "hrm"):
        from .tasks import sudoku

        lo, hi = 28, 40
        pool = sudoku.SudokuPool.generate(min(n, 64), seed=seed)
        x, y = pool.sample(n, (lo, hi), np.random.default_rng(seed), augment=False)
        return x, y, f"{n} held-out Sudoku puzzles, {lo}-{hi} givens, seed {seed}"
    if runner.family == "deq" and list(spec.get("shape", []))[1:] == [64]:
        from .tasks import digits

        x, y = digits.load("test")
        return x[:n], y[:n], f"{min(n, len(x))} held-out digits (scikit-learn test split)"
    raise InputError(f"no built-in inputs for an input of shape {spec.get('shape')} ({runner.family})",
                     "pass --inputs FILE.npy with an array of that shape")


@app.command()
def bench(artefact: Path = typer.Argument(..., help="artefact folder written by `edgekit export`"),
          variant: list[str] = typer.Option(["float32"], "--variant", "-v", help="precision variant (repeatable, or 'all')"),
          mode: str = typer.Option("host", "--mode", "-m", help="host, loop, unrolled, or all (the forms the artefact has)"),
          batch: list[int] = typer.Option([1, 64], "--batch", "-b", help="batch size (repeatable)"),
          n: int = typer.Option(128, "--n", min=1, help="number of inputs (generated held-out task data)"),
          repeats: int = typer.Option(5, "--repeats", min=1, help="timed passes over all batches"),
          warmup: int = typer.Option(1, "--warmup", min=0, help="untimed calls per batch size"),
          threads: Optional[int] = typer.Option(None, "--threads", min=1, help="onnxruntime intra-op threads (default: its own)"),
          inputs: Optional[Path] = typer.Option(None, "--inputs", help="a .npy array of inputs instead of generated data"),
          seed: int = typer.Option(123, "--seed", help="seed of the generated puzzles"),
          json_out: bool = typer.Option(False, "--json", help="print the results as JSON")) -> None:
    """Latency (p50/p90/p99 ms per batch), throughput and recursion steps of an artefact through the torch-free
    runtime, per variant x mode x batch size."""
    from .errors import InputError
    from .runtime import MODES, ArtefactError, Runner, RuntimeInputError
    from .runtime.bench import available_modes, benchmark

    rows = []
    try:
        if mode != "all" and mode not in MODES:
            raise InputError(f"unknown mode {mode!r}", f"use one of {', '.join(MODES)} or all")
        first = Runner(artefact, variant=next((v for v in variant if v != "all"), "float32"), threads=threads)
        names = list(first.manifest.get("variants") or {"float32": {}}) if "all" in variant else variant
        x, y, described = _bench_inputs(first, inputs, n, seed)
        for v in names:
            runner = Runner(artefact, variant=v, threads=threads)
            modes = available_modes(runner) if mode == "all" else [mode]
            for m in modes:
                for s in benchmark(runner, x, batch, m, repeats=repeats, warmup=warmup, labels=y):
                    rows.append({"variant": v, **s.to_dict()})
    except (ArtefactError, RuntimeInputError) as e:
        _fail(InputError(str(e)))
    except EdgekitError as e:
        _fail(e)
    if json_out:
        import json

        print(json.dumps({"artefact": str(artefact), "inputs": described, "threads": threads, "results": rows}, indent=1))
        return
    t = Table(title=f"edgekit bench {artefact}  ({described}; {repeats} repeats)")
    for col in ("variant", "mode", "batch", "p50 ms", "p90 ms", "p99 ms", "samples/s", "ms/sample", "mean steps", "exact"):
        t.add_column(col, justify="left" if col in ("variant", "mode") else "right")
    for r in rows:
        t.add_row(r["variant"], r["mode"], str(r["batch"]), f"{r['p50_ms']:.2f}", f"{r['p90_ms']:.2f}", f"{r['p99_ms']:.2f}",
                  f"{r['samples_per_s']:.1f}", f"{r['per_sample_ms']:.2f}", f"{r['mean_steps']:.2f}",
                  "–" if r["exact"] is None else f"{r['exact']:.3f}")
    console.print(t)


@app.command()
def validate(recipe: Path = typer.Argument(..., help="the recipe the artefact was exported with (model, data, gates)"),
             artefact: Path = typer.Argument(..., help="artefact folder written by `edgekit export`"),
             json_out: bool = typer.Option(False, "--json", help="print results.json instead of a table")) -> None:
    """Re-validate an existing artefact against its PyTorch model with the recipe's data and gates; rewrites
    results.json, junit.xml, report.md. Exit code = gate verdict (0 passed, 3 failed)."""
    try:
        from .pipeline import run_validate

        outcome = run_validate(recipe, artefact, log=lambda s: console.print(f"[dim]• {s}[/]") if not json_out else None)
    except EdgekitError as e:
        _fail(e)
    if json_out:
        import json

        print(json.dumps(outcome.results, indent=1))
    else:
        _print_results(outcome.results, outcome.folder)
    raise typer.Exit(outcome.exit_code)


@app.command()
def verify(artefact: Path = typer.Argument(..., help="artefact folder written by `edgekit export`"),
           json_out: bool = typer.Option(False, "--json", help="print the checks as JSON")) -> None:
    """Re-check an artefact on this device with the runtime alone: file hashes, then the golden outputs.
    Exit 0 when everything reproduces, 3 when something does not, 2 when it is not an artefact."""
    from .runtime.runner import ArtefactError
    from .runtime.verify import verify as run_verify

    try:
        rep = run_verify(artefact)
    except ArtefactError as e:
        err_console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE)
    if json_out:
        import json

        print(json.dumps({"passed": rep.passed, "checks": rep.checks}, indent=1))
    else:
        t = Table(title=f"verify {artefact}")
        for col in ("check", "result", "detail"):
            t.add_column(col)
        for c in rep.checks:
            t.add_row(c["name"], "[green]ok[/]" if c["passed"] else "[bold red]FAILED[/]", c["detail"])
        console.print(t)
        console.print("[green]VERIFIED[/]" if rep.passed else "[bold red]NOT VERIFIED[/]")
    raise typer.Exit(0 if rep.passed else 3)


def main() -> None:
    try:
        app()
    except EdgekitError as e:  # safety net: errors raised outside a command body
        err_console.print(f"error: {e}")
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted; no partial artefact was left")
        sys.exit(130)


if __name__ == "__main__":
    main()
