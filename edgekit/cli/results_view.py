"""What `edgekit export` and `edgekit validate` print: a table that fits 80 columns (an SSH session on a Jetson),
failing gates first with their intervals, a note where the sample is too small to decide a limit, then the
verdict, the report's path and the next commands. `--wide` adds every column of results.json's per-variant
metrics; `--json` (in the commands) prints results.json itself."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ..runtime.gate_eval import straddles, undecided_note
from .app import num

# Gates whose value must stay at or below the limit; every other gate is a lower bound.
_UPPER = ("max_",)


def variant_id(entry: dict[str, Any]) -> str:
    """The name `--variant` takes (float32, int8, ...) for an ONNX variant; pytorch_<precision> for a reference.
    results.json names entries so since schema 2 (with `display` beside); older ones by their display string."""
    name = str(entry.get("name", "?"))
    if "display" in entry:
        return name
    m = re.match(r"^(onnx|pytorch) \(([^,)]+)", name)
    if not m:
        return name
    return m.group(2).strip() if m.group(1) == "onnx" else f"pytorch_{m.group(2).split()[0]}"


def undecided(g: dict[str, Any]) -> bool:
    """The gate's 95 % interval straddles its limit: more examples (or timed rounds) could turn the verdict."""
    return straddles(g)


def _interval(iv: list[float] | None) -> str:
    return f" [{iv[0]:.3f}, {iv[1]:.3f}]" if iv else ""


def _same_halt(e: dict[str, Any]) -> float | None:
    """Halting agreement as gated: a compressed variant against the float32 export, float32 against PyTorch."""
    parent = e.get("vs_onnx_float32") or {}
    return parent.get("halting_step_agreement", (e.get("vs_reference") or {}).get("halting_step_agreement"))


def _verdict(e: dict[str, Any], gates: list[dict[str, Any]]) -> str:
    own = [g for g in gates if g.get("variant") == e.get("name")]
    if not own:
        return "reference" if str(e.get("name", "")).startswith("pytorch") else "–"
    if any(not g["passed"] for g in own):
        return "[bold red]FAILED[/]"
    return "passed" + ("*" if any(undecided(g) for g in own) else "")


def _compact(res: dict[str, Any]) -> Table:
    t = Table(box=None, pad_edge=False, header_style="bold")
    for col, just in (("variant", "left"), ("exact at halt [95 %]", "left"), ("steps", "right"),
                      ("same halt", "right"), ("MB", "right"), ("verdict", "left")):  # fmt: skip
        t.add_column(col, justify=just, no_wrap=col != "variant", overflow="fold")  # type: ignore[arg-type]
    for e in res["variants"]:
        m = e["metrics"]
        halted = m.get("exact_halted")
        exact, iv = (halted, m.get("exact_halted_interval")) if halted is not None else (
            m.get("exact_full"), m.get("exact_full_interval"))  # fmt: skip
        t.add_row(
            variant_id(e),
            num(exact) + _interval(iv),
            num(m.get("mean_steps", m.get("mean_iterations")), ".2f"),
            num(_same_halt(e)),
            num(e["bytes"] / 1e6 if "bytes" in e else None, ".2f"),
            _verdict(e, res["gates"]),
        )
    return t


WIDE = (
    ("exact@1", lambda e: num(e["metrics"].get("exact_1"))),
    (
        "exact@budget [95 %]",
        lambda e: num(e["metrics"].get("exact_full")) + _interval(e["metrics"].get("exact_full_interval")),
    ),  # fmt: skip
    (
        "exact@halt [95 %]",
        lambda e: num(e["metrics"].get("exact_halted")) + _interval(e["metrics"].get("exact_halted_interval")),
    ),  # fmt: skip
    ("halted<cap", lambda e: num(e["metrics"].get("halted_before_cap"))),
    ("mean steps", lambda e: num(e["metrics"].get("mean_steps", e["metrics"].get("mean_iterations")), ".2f")),
    ("argmax vs ref", lambda e: num((e.get("vs_reference") or {}).get("argmax_agreement_last"), ".4f")),
    ("same halt", lambda e: num(_same_halt(e))),
    (
        "Loop = host",
        lambda e: num(
            (e.get("loop") or {}).get(
                "same_answer_as_host", (e.get("loop") or {}).get("same_iterations_as_pytorch_solver")
            )
        ),
    ),  # fmt: skip
    ("MB", lambda e: num(e["bytes"] / 1e6 if "bytes" in e else None, ".2f")),
    ("ms/example", lambda e: num((e.get("latency") or {}).get("ms_per_puzzle"), ".2f")),
    ("validation s", lambda e: num(e.get("seconds"), ".1f")),
)


def _wide(res: dict[str, Any]) -> Table:
    t = Table(box=None, pad_edge=False, header_style="bold")
    t.add_column("variant", overflow="fold")
    for col, _ in WIDE:
        t.add_column(col, justify="right", no_wrap=True)
    t.add_column("verdict", no_wrap=True)
    for e in res["variants"]:
        t.add_row(variant_id(e), *(f(e) for _, f in WIDE), _verdict(e, res["gates"]))
    return t


def _gate_line(g: dict[str, Any], ids: dict[str, str]) -> str:
    upper = g["name"].startswith(_UPPER)
    mark = "passed" if g["passed"] else "[bold red]FAILED[/]"
    against = str(g.get("against", "reference")).removeprefix("onnx ")  # "onnx float32" is the float32 variant
    vs = f" vs {against}" if against not in ("reference", "absolute") else ""
    iv = g.get("interval")
    ci = f" [{iv[0]:.4g}, {iv[1]:.4g}]" if iv else ""
    limit = f"{'≤' if upper else '≥'} {g['limit']:g}"
    return f"{mark} {g['name']} {ids.get(g['variant'], g['variant'])}{vs}: {g['value']:.4g}{ci}, limit {limit}"


def print_results(
    console: Console, res: dict[str, Any], folder: Path, wide: bool = False, recipe: Path | None = None
) -> None:
    """The table, the gates (failed first), the verdict, the report's path and what to run next."""
    n, thr = _examples(res), _threshold(folder)
    head = f"{res['recipe']} → {res['target']}" + (f", halting threshold {thr:g}" if thr is not None else "")
    own = [f"{variant_id(e)} {e['halt_threshold']:g}" for e in res["variants"] if _own_threshold(e, thr)]
    head += f" ({', '.join(own)})" if own else ""
    console.print(head, highlight=False, markup=False)
    console.print(f"data: {res['data']}", highlight=False, markup=False)
    console.print(_wide(res) if wide else _compact(res))
    if wide:  # what each row ran, as results.json's `display` says
        for e in res["variants"]:
            if e.get("display"):
                console.print(f"{variant_id(e)}: {e['display']}", highlight=False, markup=False)
    ids = {e["name"]: variant_id(e) for e in res["variants"]}
    gates = sorted(res["gates"], key=lambda g: g["passed"])  # failing first, otherwise in recipe order
    for g in gates:
        console.print(_gate_line(g, ids), highlight=False)
        note = undecided_note(g, n)
        if note:
            head, _, rest = note.partition(" (")
            console.print(f"  [yellow]{head}[/] ({rest}", highlight=False)
    failed = [g for g in res["gates"] if not g["passed"]]
    open_ = sum(undecided(g) for g in res["gates"] if g["passed"])
    if res["passed"]:
        verdict = f"[green]PASSED[/]: all {len(res['gates'])} gates hold"
    else:
        verdict = f"[bold red]FAILED[/]: {len(failed)} of {len(res['gates'])} gates failed"
    if open_:
        verdict += f"; {open_} passed only by point estimate (*)"
    for w in res.get("warnings") or []:  # the gates judge another configuration than the device runs
        console.print(f"[yellow]warning:[/] {w}", highlight=False, soft_wrap=True)
    tgt = res.get("target_build")
    if tgt:
        console.print(
            f"target {res['target']}: {'compatible' if tgt['compatible'] else '[bold red]NOT compatible[/]'}"
            + (f"; build script {tgt['plan']}" if tgt.get("plan") else "")
            + (f"; engine: {tgt['engine']}" if tgt.get("engine") else ""),
            highlight=False,
        )
    console.print(verdict, highlight=False)
    folder = shown(folder)
    console.print(f"report:   {folder / 'report.md'}", highlight=False, markup=False, soft_wrap=True)
    for cmd in next_steps(res, folder):
        console.print(f"next:     {cmd}", highlight=False, markup=False, soft_wrap=True)


def next_steps(res: dict[str, Any], folder: Path) -> list[str]:
    """Commands a user runs next with this artefact: check it on the device, time it, and for TensorRT targets
    write the engine build; after a failure, the report comes first."""
    a = shlex.quote(str(folder))
    out = [f"edgekit verify {a}", f"edgekit bench {a}"]
    tgt = res.get("target_build")
    if tgt is not None:
        out.append(f"edgekit plan {a} --target {shlex.quote(str(res['target']))}")
    if not res["passed"]:
        out.insert(0, f"open {shlex.quote(str(folder / 'report.md'))} (the failing gates, with plots)")
    return out


def shown(folder: Path) -> Path:
    """The folder as the user would type it: relative to the current folder when inside it."""
    try:
        return Path(folder).resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return Path(folder)


def _threshold(folder: Path) -> float | None:
    """The artefact's halting threshold (manifest.json), for the headline; None when it cannot be read."""
    import json

    from ..manifest import Manifest

    try:  # ArtefactError (a manifest that is not edgekit's) is a ValueError
        thr = Manifest.from_json(json.loads((folder / "manifest.json").read_text())).graph.halt_threshold
    except (OSError, ValueError, RecursionError):
        return None
    return None if thr is None else float(thr)


def _own_threshold(e: dict[str, Any], thr: float | None) -> bool:
    """The entry was validated at its own calibrated halting threshold, not the artefact's."""
    own = e.get("halt_threshold")
    return isinstance(own, (int, float)) and thr is not None and float(own) != thr


def _examples(res: dict[str, Any]) -> int | None:
    """Examples validated: the first number of the data description ('the first 256 examples of ...', '32
    held-out Sudoku puzzles, ...')."""
    m = re.search(r"(\d+)", str(res.get("data", "")))
    return int(m.group(1)) if m else None
