"""`edgekit tune`: parse, call edgekit.tune, print the front and the choice; exit 4 when nothing fits the budget."""

from __future__ import annotations

import math
import shlex
import sys
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from .. import progress
from ..errors import EXIT_BUDGET_GATE, EdgekitError
from ..scale.settings import EXECUTOR_HELP, WORKERS_HELP, for_command
from .app import app, console, err_console, fail


def _thr(t: float | None) -> str:
    return "never" if t is None or (isinstance(t, float) and math.isinf(t)) else f"{t:g}"


@app.command()
def tune(
    recipe: Path = typer.Argument(..., help="the recipe the artefact was exported with (its data and target)"),
    latency_budget: float = typer.Option(
        ..., "--latency-budget", min=0.001, help="ms per puzzle on this machine (or the device of --latency-from)"
    ),
    batch: int = typer.Option(64, "--batch", min=1, max=4096, help="batch size the device serves at"),
    artefact: Path | None = typer.Option(None, "--artefact", help="artefact folder (default: the recipe's output)"),
    variant: list[str] = typer.Option([], "--variant", "-v", help="only these variants (default: all)"),
    check_n: int = typer.Option(512, "--check-n", min=1, max=100_000, help="held-out examples to re-measure on"),
    apply: bool = typer.Option(False, "--apply", help="write the choice as the artefact's runtime default"),
    min_accuracy: float | None = typer.Option(
        None,
        "--min-accuracy",
        min=0.0,
        max=1.0,
        help="exact accuracy (0-1) the chosen configuration must keep; default: the validated exact accuracy at "
        "halting minus the recipe's drop limit (gates.max_exact_halted_drop, else max_exact_drop)",
    ),
    latency_from: Path | None = typer.Option(
        None,
        "--latency-from",
        help="graph times measured on the target device by `edgekit bench --graph-times` (needed for TensorRT "
        "targets): latency is then estimated from them, not measured here",
    ),
    depth_factor: int = typer.Option(
        1,
        "--depth-factor",
        min=1,
        max=8,
        help="test-time depth: also try step caps past the trained budget, up to this many times it (1-8; 1: the "
        "budget only); prints the accuracy-vs-cap curve and writes tune_depth.png",
    ),
    depth_check_n: int = typer.Option(
        32,
        "--depth-check-n",
        min=1,
        max=100_000,
        help="with --depth-factor: examples the deepest cap is answered again on through the host loop and the Loop "
        "form, compared with the curve",
    ),
    ov_precision: list[str] = typer.Option(
        [],
        "--ov-precision",
        help="also tune the float32 graphs on OpenVINO's CPU plugin at this inference precision (f32, bf16, f16; "
        "int8: the int8_weight_only graphs, activations quantized at run time; repeatable; needs pip install "
        '"edgekit[openvino]"): configurations openvino-<precision>, scored and measured one at a time like the '
        "variants",
    ),
    json_out: bool = typer.Option(False, "--json", help="print the tune result as JSON"),
    executor: str | None = typer.Option(None, "--executor", help=EXECUTOR_HELP),
    workers: int | None = typer.Option(None, "--workers", min=1, max=4096, help=WORKERS_HELP),
) -> None:
    """The accuracy-latency front over the artefact's variants, halting thresholds and step caps, measured on this
    machine; the most accurate configuration within the budget that keeps the accuracy floor; with --apply (or
    when confirmed on a terminal) written as the artefact's runtime default. Exit 4 when no configuration at or
    above the floor meets the budget."""
    from ..tune import TuneSettings, apply_defaults, run_tune

    settings = TuneSettings(
        latency_budget,
        batch,
        variant or None,
        check_n=check_n,
        latency_from=latency_from,
        min_accuracy=min_accuracy,
        depth_factor=depth_factor,
        depth_check_n=depth_check_n,
        openvino=list(ov_precision),
    )
    try:
        with (
            progress.reporting(progress.for_stream(sys.stdout, console, quiet=json_out)),
            for_command(recipe, executor, workers),
        ):
            res = run_tune(recipe, artefact, settings, log=lambda s: None if json_out else console.print(
                f"[dim]• {escape(s)}[/]"))  # fmt: skip
        folder = artefact or _folder(recipe)
        if _on_openvino(res) and not apply:  # runtime defaults name a variant, not a backend: nothing to record
            pass
        elif res["chosen"] and not apply and not json_out and sys.stdin.isatty():
            apply = typer.confirm("write this configuration as the artefact's runtime default?", default=False)
        if res["chosen"] and apply:
            res["applied"] = apply_defaults(folder, res)
    except EdgekitError as e:
        fail(e)
    if json_out:
        import json

        print(json.dumps(res, indent=1))
    else:
        _print(res)
        if _on_openvino(res):
            c = res["chosen"]
            run = ["--backend", "openvino", "--ov-precision", c["variant"].removeprefix("openvino-")]
            run += ["--max-steps", str(c["cap"])] + (
                [] if c["threshold"] is None else ["--threshold", f"{c['threshold']:g}"]
            )
            console.print(
                "runtime defaults cannot name a backend, so nothing is recorded; run this choice on the device with "
                + shlex.join(run)
                + (" (it never halts before the cap)" if c["threshold"] is None else ""),
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
        elif res["chosen"] and not res.get("applied"):
            again = ["edgekit", "tune", str(recipe), "--latency-budget", f"{latency_budget:g}", "--batch", str(batch)]
            again += ["--artefact", str(artefact)] if artefact else []
            again += [a for v in variant for a in ("--variant", v)]
            again += ["--min-accuracy", f"{min_accuracy:g}"] if min_accuracy is not None else []
            again += ["--latency-from", str(latency_from)] if latency_from else []
            again += ["--depth-factor", str(depth_factor)] if depth_factor > 1 else []
            again += [a for p in ov_precision for a in ("--ov-precision", p)]
            console.print(
                f"nothing was recorded (the artefact's runtime defaults are unchanged); to record this choice: "
                f"{shlex.join([*again, '--apply'])}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
    if not res["chosen"]:
        why = _no_choice(res, latency_from is not None)
        err_console.print(f"error: {why}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_BUDGET_GATE)


def _on_openvino(res: dict) -> bool:
    """The choice is an OpenVINO configuration (`--ov-precision`): openvino-<precision>."""
    return bool(res.get("chosen")) and str(res["chosen"]["variant"]).startswith("openvino-")


def _no_choice(res: dict, device: bool) -> str:
    """One line for exit 4: the floor, the budget, and the fastest configuration that keeps the floor."""
    floor, ok = res["floor"], res["fastest_meeting_floor"]
    where = "on the device (estimated)" if device else "on this machine"
    head = (
        f"no configuration at or above the accuracy floor {floor['value']:.4g} meets {res['budget_ms']:g} ms per "
        f"puzzle at batch {res['batch']} {where}"
    )
    if ok is None:
        best = max(res["front"], key=lambda c: c["exact"])
        return (
            f"{head}; none reaches the floor at all (the most accurate is {_label(best)}, exact "
            f"{best['exact']:.3f}): lower --min-accuracy"
        )
    return (
        f"{head}; the fastest configuration that meets it is {_label(ok)} at {ok['latency_ms']:.2f} ms (exact "
        f"{ok['exact']:.3f}): raise the budget, lower --min-accuracy, add a faster variant (quantize.modes) or "
        "serve at another batch size"
    )


def _label(c: dict) -> str:
    return f"{c['variant']}, halt threshold {_thr(c['threshold'])}, cap {c['cap']}"


def _folder(recipe: Path) -> Path:
    from ..pipeline import resolve_output
    from ..schema import load_recipe

    r, base = load_recipe(recipe)
    return resolve_output(r, base)


def _print(res: dict) -> None:
    """The front in 80 columns: one row per configuration, fastest first; the note says which was chosen, which
    are below the accuracy floor, and where a latency is only estimated."""
    floor = res["floor"]["value"]
    console.print(
        f"accuracy-latency front: {res['configurations']} configurations at batch {res['batch']}, accuracy floor "
        f"{floor:.3f} ({res['floor']['source']})",
        markup=False,
        highlight=False,
    )
    t = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("variant", "threshold", "cap", "exact [95 %]", "steps", "same", "ms", "note"):
        t.add_column(col, justify="left" if col in ("variant", "note") else "right", no_wrap=col != "note")
    chosen = res["chosen"]
    for c in res["front"]:
        is_chosen = chosen and (c["variant"], c["threshold"], c["cap"]) == (
            chosen["variant"], chosen["threshold"], chosen["cap"])  # fmt: skip
        notes = ["◀ chosen"] if is_chosen else (["below floor"] if c["exact"] < floor - 1e-9 else [])
        notes += [] if c["latency_source"] in ("model", "measured") else ["device times"]
        notes += ["measured"] if c["latency_source"] == "measured" else []
        lo, hi = c["exact_interval"]
        t.add_row(c["variant"], _thr(c["threshold"]), str(c["cap"]), f"{c['exact']:.3f} [{lo:.3f}, {hi:.3f}]",
                  f"{c['mean_steps']:.2f}", f"{c['same_answer_as_default']:.3f}", f"{c['latency_ms']:.2f}",
                  ", ".join(notes))  # fmt: skip
    console.print(t)
    if chosen:
        console.print(
            f"chosen for {res['budget_ms']:g} ms: {chosen['variant']}, halt threshold {_thr(chosen['threshold'])}, "
            f"cap {chosen['cap']} — {chosen['latency_ms']:.2f} ms per puzzle "
            f"({'estimated from device graph times' if chosen['latency_source'] != 'measured' else 'measured'}), "
            f"exact {chosen['exact']:.3f} on the tuning set",
            markup=False,
            highlight=False,
        )
        ck = res.get("check")
        if ck:
            c, d = ck["chosen"], ck["default"]
            console.print(
                f"re-measured on {ck['n']} held-out examples: chosen {c['exact']:.3f} ({c['exact_interval'][0]:.3f}–"
                f"{c['exact_interval'][1]:.3f}), validated default {d['exact']:.3f} ({d['exact_interval'][0]:.3f}–"
                f"{d['exact_interval'][1]:.3f})",
                markup=False,
                highlight=False,
            )
    if res.get("depth"):
        _print_depth(res)
    if res.get("applied"):
        console.print("written as the artefact's runtime default (manifest runtime_defaults)", markup=False)


def _print_depth(res: dict) -> None:
    """The accuracy-vs-step-cap curve: one row per shown cap, per variant the two halting rules side by side."""
    from ..tune.depth import shown_caps

    d = res["depth"]
    console.print(
        f"test-time depth: step caps 1-{d['deepest']} ({d['factor']} x the trained budget {d['budget']}); ms "
        "predicted by the latency model",
        markup=False,
        highlight=False,
    )
    t = Table(box=None, pad_edge=False, header_style="bold")
    t.add_column("variant", justify="left")
    t.add_column("cap", justify="right")
    for head in ("threshold: exact", "steps", "ms", "never halt: exact", "steps", "ms"):
        t.add_column(head, justify="right")
    t.add_column("note", justify="left")
    for curve in d["curves"]:
        at, never = curve["rules"]
        marks = {at["saturates_at"]: "saturates (threshold)", never["saturates_at"]: "saturates (never halt)"}
        if at["saturates_at"] == never["saturates_at"]:
            marks = {at["saturates_at"]: "saturates (both)"}
        for cap in shown_caps(curve["budget"], curve["deepest"], list(marks)):
            i = cap - 1
            notes = (["trained budget"] if cap == curve["budget"] else []) + ([marks[cap]] if cap in marks else [])
            t.add_row(curve["variant"], str(cap),
                      f"{at['exact'][i]:.3f}", f"{at['mean_steps'][i]:.2f}", f"{at['ms_per_puzzle'][i]:.2f}",
                      f"{never['exact'][i]:.3f}", f"{never['mean_steps'][i]:.2f}", f"{never['ms_per_puzzle'][i]:.2f}",
                      ", ".join(notes))  # fmt: skip
    console.print(t)
    for curve in d["curves"]:
        for r in curve["rules"]:
            g = r["past_budget"]
            per = f", {g['ms_per_extra_step']:.2f} ms per extra step" if g["ms_per_extra_step"] is not None else ""
            console.print(
                f"{curve['variant']}, {r['rule']}: cap {curve['budget']} -> {curve['deepest']} changes exact by "
                f"{g['exact_gain']:+.3f} for {g['extra_mean_steps']:+.2f} mean steps and {g['extra_ms']:+.2f} ms per "
                f"puzzle{per}",
                markup=False,
                highlight=False,
            )
    for row in d["forms_check"]["rows"]:
        rule = "never halt early" if row["threshold"] is None else f"halt threshold {row['threshold']:g}"
        loop = (
            f", Loop form (max_steps input) {row['loop_form_same_answer']:.3f}"
            if "loop_form_same_answer" in row
            else f", {row['loop_form']}"
        )
        console.print(
            f"cap {row['cap']}, {rule}, on {row['examples']} examples: same answer as the curve through the host "
            f"loop {row['host_loop_same_answer']:.3f}{loop}",
            markup=False,
            highlight=False,
        )
