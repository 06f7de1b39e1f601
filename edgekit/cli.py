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
    raise typer.Exit(outcome.exit_code)


def _print_results(res: dict, folder: Path) -> None:
    t = Table(title=f"{res['recipe']} → {res['target']}  ({res['data']})")
    for col in ("variant", "exact@1", "exact@budget", "cell@budget", "exact (halting)", "halted<cap", "argmax vs ref",
                "argmax vs torch fp32", "max|Δlogits| vs torch fp32", "time s"):
        t.add_column(col, justify="left" if col == "variant" else "right")
    for e in res["variants"]:
        m, v, p = e["metrics"], e.get("vs_reference", {}), e.get("vs_pytorch_float32", {})
        f = lambda x, fmt=".3f": "–" if x is None else format(x, fmt)  # noqa: E731
        t.add_row(e["name"], f(m.get("exact_1")), f(m.get("exact_full")), f(m.get("cell_full")), f(m.get("exact_halted")),
                  f(m.get("halted_before_cap")), f(v.get("argmax_agreement_last"), ".4f"), f(p.get("argmax_agreement_last"), ".4f"),
                  f(p.get("max_abs_dlogits_last"), ".2e"), f(e.get("seconds"), ".1f"))
    console.print(t)
    for g in res["gates"]:
        mark = "[green]passed[/]" if g["passed"] else "[bold red]FAILED[/]"
        console.print(f"gate {g['name']} on {g['variant']}: {g['value']:.4g} (limit {g['limit']}) {mark}")
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
