"""`edgekit verify`: is this the artefact that passed the gates, and does this device reproduce it? Base install only
(numpy + onnxruntime): the quick check (hashes, golden answers) and `--full` (the artefact's own gates on this
device's answers to every recorded validation example). Nothing is ever written into the artefact."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from .. import progress
from ..artefact import name_problem
from ..errors import EdgekitError, InputError
from .app import app, console, fail, num
from .device import (
    ALLOW_FALLBACK,
    BACKEND,
    CACHE_DIR,
    DEVICE_ID,
    ENGINES,
    OV_DEVICE,
    OV_PRECISION,
    PROVIDER,
    TF32,
    TRT_FP16,
    _options,
    _runtime_errors,
)


def _out_file(out: Path, artefact: Path) -> Path:
    """--out: a file outside the artefact (it stays exactly as exported and hash-verifiable)."""
    why = name_problem(out)
    if why:
        raise InputError(f"--out {str(out)[:100]} {why}", "use shorter names")
    target = out.expanduser()
    where = target.parent.resolve()
    if where == artefact.resolve() or artefact.resolve() in where.parents:
        raise InputError(f"--out {out} is inside the artefact, which verify never modifies", "write it elsewhere")
    if not where.is_dir():
        raise InputError(f"--out {out}: folder {target.parent} does not exist", "create it first")
    if target.is_dir():
        raise InputError(f"--out {out} is a folder", "name a file")
    if target.is_symlink() or (target.exists() and not target.is_file()):
        # the file is replaced by a rename: a device such as /dev/null or a pipe would be replaced by a file
        raise InputError(f"--out {out} is not a regular file (a link, a device or a pipe)", "name a file")
    return where / target.name


def _write(path: Path, payload: dict[str, Any]) -> None:
    from ..artefact import replace_file

    try:
        replace_file(path, (json.dumps(payload, indent=1) + "\n").encode())
    except OSError as e:
        fail(InputError(f"cannot write --out {path}: {e.strerror}", "name a file in a folder you can write"))


def _gate_table(full: Any) -> Table:
    t = Table(title=f"gates on this device ({full.examples} of {full.validated} validation examples: {full.kept})")
    width = max([len(g["name"]) for g in full.gates], default=4)
    t.add_column("gate", min_width=width, no_wrap=True)  # never cut a gate's name on a narrow console
    t.add_column("variant", min_width=max([len(v) for v in full.variants], default=7), no_wrap=True)
    for col in ("device", "export", "limit"):
        t.add_column(col, no_wrap=True)
    t.add_column("95% interval", overflow="fold")
    t.add_column("result", no_wrap=True)
    for g in full.gates:
        iv = g.get("interval")
        t.add_row(
            g["name"],
            full.short(g["variant"]),
            num(g["value"], ".4f"),
            num(g.get("export_value"), ".4f"),
            str(g["limit"]),
            f"{iv[0]:.3f}..{iv[1]:.3f}" if iv else "–",
            "[green]passed[/]" if g["passed"] else "[bold red]FAILED[/]",
        )
    return t


@app.command()
def verify(
    artefact: Path = typer.Argument(..., help="artefact folder written by `edgekit export`"),
    full: bool = typer.Option(
        False,
        "--full",
        help="also re-run every recorded validation example on this device and apply the artefact's own gates "
        "(exit 0 passed, 3 an accuracy gate failed, 4 only a budget gate failed)",
    ),
    variant: str | None = typer.Option(
        None, "--variant", "-v", help="check this variant only (default: every variant; with --full, every gated one)"
    ),
    json_out: bool = typer.Option(False, "--json", help="print the checks (and gates) as JSON"),
    out: Path | None = typer.Option(None, "--out", help="also write the JSON to this file (outside the artefact)"),
    provider: list[str] | None = PROVIDER,
    device_id: int = DEVICE_ID,
    trt_fp16: bool = TRT_FP16,
    cache_dir: Path | None = CACHE_DIR,
    engines: Path | None = ENGINES,
    allow_fallback: bool = ALLOW_FALLBACK,
    backend: str | None = BACKEND,
    ov_device: str | None = OV_DEVICE,
    ov_precision: str | None = OV_PRECISION,
    tf32: bool | None = TF32,
) -> None:
    """Re-check an artefact on this device with the runtime alone: file hashes, then the golden outputs (within a
    tolerance that follows what runs), and with --full the artefact's gates on every recorded validation example.
    Exit 0 when everything reproduces, 3 when something does not (4: --full, only a budget gate failed), 2 when
    it is not an artefact or the options do not fit it."""
    from ..runtime.verify import verify as run_verify

    if tf32 is None and engines is None and backend in (None, "onnxruntime"):
        tf32 = False  # verifying checks float32 answers: TF32 only when asked for (--tf32)
    opts = _options(
        provider, device_id, trt_fp16, cache_dir, None, engines, allow_fallback, backend, ov_device, ov_precision, tf32
    )
    try:
        target = _out_file(out, artefact) if out is not None else None
        if engines is not None and variant is None:
            raise InputError("--engines runs the engines of one variant", "name it with --variant")
        variant = variant or opts.own_variant(artefact)  # OpenVINO int8 checks the graphs it runs
        with progress.reporting(progress.for_stream(sys.stdout, console, quiet=json_out)):
            rep = run_verify(artefact, runner=opts.runner, variants=[variant] if variant else None, full=full)
    except EdgekitError as e:  # ReferencesChanged: exit 3
        fail(e)
    except _runtime_errors() as e:
        fail(InputError(str(e)))
    payload: dict[str, Any] = {"passed": rep.passed, "exit_code": rep.exit_code, "checks": rep.checks}
    if rep.full is not None:
        payload["full"] = rep.full.as_dict()
    if target is not None:
        _write(target, payload)
    if json_out:
        print(json.dumps(payload, indent=1))
    else:
        t = Table(title=f"verify {artefact}")
        for col in ("check", "result", "detail"):
            t.add_column(col)
        for c in rep.checks:
            t.add_row(c["name"], "[green]ok[/]" if c["passed"] else "[bold red]FAILED[/]", c["detail"])
        console.print(t)
        if rep.full is not None:
            f = rep.full
            console.print(_gate_table(f))
            which = "" if variant else " (every variant the export gated)"
            console.print(f"variants checked: {', '.join(f.variants)}{which}", highlight=False, markup=False)
            for v, same in f.answers.items():
                console.print(
                    f"{v}: answers vs the export's: "
                    + ", ".join(f"{k.replace('_', ' ')} {x:.4f}" for k, x in same.items()),
                    highlight=False,
                    markup=False,
                )
            for line in f.not_evaluated:
                console.print(f"not re-evaluated here: {line}", highlight=False, markup=False)
        console.print("[green]VERIFIED[/]" if rep.passed else "[bold red]NOT VERIFIED[/]")
    raise typer.Exit(rep.exit_code)
