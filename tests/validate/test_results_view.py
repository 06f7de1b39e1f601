"""What export and validate print, at 80 columns (an SSH session on a Jetson) and at 200: every number whole, failing
gates first with intervals, undecidable limits said, the report's path and the next commands at the end."""

from __future__ import annotations

import copy
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from edgekit.cli.results_view import next_steps, print_results, undecided, variant_id

ROOT = Path(__file__).resolve().parents[2]


def _render(res: dict, folder: Path, width: int, wide: bool = False) -> str:
    """The printout, with the artefact's path shortened: a path is as long as the user made it."""
    out = io.StringIO()
    print_results(Console(file=out, width=width, force_terminal=False, color_system=None), res, folder, wide)
    return out.getvalue().replace(str(folder), "art")


@pytest.fixture(scope="module")
def results(trm_artefact) -> dict:
    return json.loads((trm_artefact / "results.json").read_text())


def _failing(results: dict) -> dict:
    """The demo's results with an INT8-like variant whose halted-drop gate fails on a sample too small to say."""
    res = copy.deepcopy(results)
    onnx = next(e for e in res["variants"] if e["name"] == "float32")
    int8 = copy.deepcopy(onnx)
    int8["name"], int8["display"] = "int8", "onnx (int8, step graph, host loop)"
    int8["metrics"]["exact_halted"], int8["metrics"]["exact_halted_interval"] = 0.9062, [0.8466, 0.9439]
    int8["vs_onnx_float32"] = {"halting_step_agreement": 0.8594, "halting_step_agreement_interval": [0.79, 0.91]}
    res["variants"].append(int8)
    res["gates"] += [
        {"name": "max_exact_halted_drop", "variant": int8["name"], "value": 0.0234, "limit": 0.01, "passed": False,
         "against": "reference", "kind": "accuracy", "interval": [-0.0029, 0.0497]},
        {"name": "min_halting_agreement", "variant": int8["name"], "value": 0.8594, "limit": 0.95, "passed": False,
         "against": "float32", "kind": "accuracy", "interval": [0.79, 0.91]},
    ]  # fmt: skip
    res["passed"] = False
    return res


def test_80_columns_fit_and_keep_every_number(results, trm_artefact):
    text = _render(results, trm_artefact, 80)
    lines = text.splitlines()
    assert max(len(ln) for ln in lines) <= 80, "\n".join(ln for ln in lines if len(ln) > 80)
    assert "…" not in text  # no number or header cut
    for col in ("variant", "exact at halt [95 %]", "steps", "same halt", "MB", "verdict"):
        assert col in text, col
    onnx = next(e for e in results["variants"] if e["name"] == "float32")
    lo, hi = onnx["metrics"]["exact_halted_interval"]
    assert f"{onnx['metrics']['exact_halted']:.3f} [{lo:.3f}, {hi:.3f}]" in text
    assert "float32 " in text and "onnx (float32" not in text  # the --variant name, not the display string
    assert lines[-3].startswith("report:") and lines[-3].endswith("report.md")
    assert lines[-2] == "next:     edgekit verify art" and lines[-1] == "next:     edgekit bench art"


def test_failing_gates_come_first_with_intervals_and_say_when_the_sample_cannot_decide(results, trm_artefact):
    text = _render(_failing(results), trm_artefact, 80)
    lines = text.splitlines()
    assert max(len(ln) for ln in lines) <= 80
    gate_lines = [ln for ln in lines if ln.startswith(("passed ", "FAILED "))]
    first_pass = next(i for i, ln in enumerate(gate_lines) if ln.startswith("passed"))
    assert first_pass == 2 and all(ln.startswith("FAILED") for ln in gate_lines[:2]), gate_lines
    assert "FAILED max_exact_halted_drop int8: 0.0234 [-0.0029, 0.0497], limit ≤ 0.01" in text
    assert "FAILED min_halting_agreement int8 vs float32: 0.8594 [0.79, 0.91], limit ≥ 0.95" in text
    i = lines.index("FAILED max_exact_halted_drop int8: 0.0234 [-0.0029, 0.0497], limit ≤ 0.01")
    assert lines[i + 1].strip().startswith("32 examples cannot decide this limit"), lines[i + 1]
    assert "cannot decide" not in lines[lines.index(next(ln for ln in lines if "min_halting_agreement int8" in ln)) + 1]
    assert "FAILED: 2 of" in text
    assert any(ln.startswith("next:     open ") for ln in lines)


def test_wide_shows_every_column_at_200(results, trm_artefact):
    text = _render(results, trm_artefact, 200, wide=True)
    assert max(len(ln) for ln in text.splitlines()) <= 200 and "…" not in text
    cols = ["exact@1", "exact@budget [95 %]", "exact@halt [95 %]", "halted<cap", "mean steps", "argmax vs ref"]
    cols += ["same halt", "Loop = host", "MB", "ms/example", "validation s", "onnx (float32, step graph, host loop)"]
    for col in cols:
        assert col in text, col
    assert _render(results, trm_artefact, 200) == _render(results, trm_artefact, 200, wide=False)


def test_undecided_is_the_interval_straddling_the_limit():
    assert undecided({"name": "max_exact_drop", "limit": 0.01, "interval": [-0.01, 0.02]})
    assert not undecided({"name": "max_exact_drop", "limit": 0.01, "interval": [-0.01, 0.005]})
    assert not undecided({"name": "max_exact_drop", "limit": 0.01, "interval": [0.02, 0.05]})
    assert undecided({"name": "min_halting_agreement", "limit": 0.95, "interval": [0.93, 0.99]})
    assert not undecided({"name": "min_halting_agreement", "limit": 0.95, "interval": [0.96, 0.99]})
    assert not undecided({"name": "min_argmax_agreement", "limit": 0.99})


def test_variant_ids_are_the_names_variant_options_take():
    assert variant_id({"name": "onnx (float32, step graph, host loop)"}) == "float32"
    assert variant_id({"name": "onnx (int8_dynamic, step graph, host loop)"}) == "int8_dynamic"
    assert variant_id({"name": "pytorch (float32)"}) == "pytorch_float32"
    assert variant_id({"name": "mixed", "display": "onnx (mixed, step graph, host loop)"}) == "mixed"


def test_results_written_before_variant_ids_still_read(tmp_path):
    """results.json of schema 1 named entries and gates by display string: the plan stage and tune still find the
    variant, as they do by its `--variant` name now."""
    from edgekit.tensorrt.build_spec import verdict
    from edgekit.tune.stage import _failed_variants

    for name in ("onnx (float16, step graph, host loop)", "float16"):
        gate = {"name": "max_exact_drop", "variant": name, "value": 0.2, "limit": 0.01, "passed": False}
        res = {"variants": [{"name": name}], "gates": [gate]}
        assert verdict(res, "float16") == (False, "the float16 variant failed max_exact_drop (0.2, limit 0.01)")
        (tmp_path / "results.json").write_text(json.dumps(res))
        assert _failed_variants(tmp_path, print) == {"float16"}


def test_next_steps_name_plan_for_tensorrt_targets_only(tmp_path):
    cpu = {"passed": True, "target": "x86-cpu"}
    assert not any("edgekit plan" in c for c in next_steps(cpu, tmp_path))
    trt = {"passed": True, "target": "jetson-orin-nano", "target_build": {"compatible": True}}
    assert next_steps(trt, tmp_path)[-1] == f"edgekit plan {tmp_path} --target jetson-orin-nano"


@pytest.mark.parametrize("columns", [80, 200])
def test_validate_command_prints_within_the_terminal(columns, small_trm_recipe, trm_artefact, tmp_path):
    """The command itself at COLUMNS=80 and 200 (validation cached from the fixture's export: seconds)."""
    import shutil

    art = tmp_path / "art"
    shutil.copytree(trm_artefact, art)
    env = {**os.environ, "COLUMNS": str(columns)}
    argv = [sys.executable, "-m", "edgekit.cli", "validate", str(small_trm_recipe), str(art)]
    r = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    printed = r.stdout[r.stdout.index("trm-sudoku → x86-cpu") :].replace(str(art), "art")  # after the progress log
    assert max(len(ln) for ln in printed.splitlines()) <= columns and "…" not in printed, printed
    assert printed.splitlines()[-1] == "next:     edgekit bench art" and "PASSED: all" in printed
