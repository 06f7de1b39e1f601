"""The documented commands, run as a user runs them (subprocess, real exit codes)."""

import json
import subprocess
import sys

EDGEKIT = [sys.executable, "-m", "edgekit.cli"]


def run(*args, cwd=None):
    return subprocess.run([*EDGEKIT, *args], capture_output=True, text=True, cwd=cwd, timeout=600)


def test_targets_lists_all_targets():
    r = run("targets")
    assert r.returncode == 0
    for name in ("x86-cpu", "jetson-orin-nano", "rtx-40", "hopper"):
        assert name in r.stdout


def test_dry_run_validates_without_writing(root, tmp_path):
    r = run("export", str(root / "recipes" / "trm-sudoku.yaml"), "--dry-run", "--out", str(tmp_path / "a"))
    assert r.returncode == 0, r.stderr
    assert "is valid" in r.stdout and not (tmp_path / "a").exists()


def test_bad_recipe_exits_2_with_one_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("schema_version: 1\nname: x\nmodel: {path: m}\ntask: {name: sudoku}\ntarget: jetson-orin-nan\n")
    r = run("export", str(p))
    assert r.returncode == 2
    assert "did you mean 'jetson-orin-nano'" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_missing_model_exits_2(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("schema_version: 1\nname: x\nmodel: {path: nowhere}\ntask: {name: digits}\n")
    r = run("export", str(p), "--out", str(tmp_path / "out"))
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()


def test_tensorrt_targets_get_a_build_plan_and_exit_5_where_the_build_must_happen_here(root, tmp_path):
    """Jetson: engines are built on the device, so export validates on onnxruntime, checks compatibility and
    writes the on-device build script (exit 0). A desktop GPU target wants an engine built here, which needs
    TensorRT: exit 5, naming TensorRT, with the artefact and script still written."""
    for target, code in (("jetson-orin-nano", 0), ("rtx-40", 5)):
        p = tmp_path / f"{target}.yaml"
        p.write_text(
            f"schema_version: 1\nname: x\nmodel: {{path: {root / 'examples/models/deq-digits'}}}\n"
            f"task: {{name: digits, n: 60}}\ntarget: {target}\nexport: {{forms: [step, loop]}}\n"
        )
        out = tmp_path / f"out-{target}"
        r = run("export", str(p), "--out", str(out))
        assert r.returncode == code, r.stdout + r.stderr
        res = json.loads((out / "results.json").read_text())
        assert res["target_build"]["compatible"] is True
        assert (out / f"build_{target}.sh").is_file()
        if code == 5:
            assert "TensorRT" in r.stderr and "Traceback" not in r.stderr


def test_export_deq_recipe_end_to_end(root, tmp_path):
    out = tmp_path / "deq"
    r = run("export", str(root / "recipes" / "deq-digits.yaml"), "--out", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "PASSED" in r.stdout
    res = json.loads((out / "results.json").read_text())
    assert res["schema_version"] == 2 and res["passed"] is True
    onnx = next(v for v in res["variants"] if v["name"] == "float32")
    assert onnx["vs_reference"]["argmax_agreement_last"] == 1.0
    assert onnx["vs_reference"]["max_abs_dlogits_last"] < 1e-4
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["files"]) == {"encode", "step", "readout", "loop", "unrolled", "golden", "references"}
    assert onnx["loop"]["same_iterations_as_pytorch_solver"] == 1.0  # Anderson in the Loop graph
    assert onnx["unrolled"]["argmax_agreement_with_host_last"] == 1.0
    assert not list(tmp_path.glob(".deq.tmp-*"))


def test_accuracy_gate_failure_gives_exit_3_and_names_the_gate(root, tmp_path, monkeypatch):
    """A variant that lost accuracy (simulated by corrupting the ONNX predictions) must fail the gate."""
    import numpy as np

    from edgekit import pipeline
    from edgekit.validate import stage

    real = stage.onnx_rollout

    def degraded(*a, **k):
        v, hit = real(*a, **k)
        v.preds = [np.where(np.arange(len(p)) % 4 == 0, (p + 1) % 10, p) for p in v.preds]  # break 25 %
        return v, hit

    monkeypatch.setattr(stage, "onnx_rollout", degraded)
    out = pipeline.run_export(root / "recipes" / "deq-digits.yaml", tmp_path / "out", log=lambda s: None)
    assert out.exit_code == 3 and out.results["passed"] is False
    failed = [g["name"] for g in out.results["gates"] if not g["passed"]]
    assert failed == ["max_exact_drop", "min_argmax_agreement"]
    # a failed gate still leaves a complete artefact to inspect
    assert json.loads((tmp_path / "out" / "results.json").read_text())["passed"] is False


def test_trm_export_results_match_pytorch(trm_artefact):
    res = json.loads((trm_artefact / "results.json").read_text())
    names = [(v["name"], v["display"]) for v in res["variants"]]  # validate.reference: float32
    assert names == [("pytorch_float32", "pytorch (float32)"), ("float32", "onnx (float32, step graph, host loop)")]
    assert res["reference"] == "pytorch_float32" and {g["variant"] for g in res["gates"]} == {"float32"}
    fp32, onnx = res["variants"][0], res["variants"][1]
    parity = onnx["vs_pytorch_float32"]
    assert parity["argmax_agreement_per_step"][0] == 1.0  # step 1 exact: export error alone, no chaos yet
    assert parity["argmax_agreement_min"] > 0.98
    assert parity["halting_step_agreement"] >= 0.95
    assert onnx["vs_reference"]["argmax_agreement_min"] > 0.95
    assert abs(onnx["metrics"]["exact_full"] - fp32["metrics"]["exact_full"]) <= 1 / 32 + 1e-9
    assert onnx["loop"]["same_halting_step_as_host"] == 1.0 and onnx["loop"]["same_answer_as_host"] == 1.0
    assert onnx["loop"]["mean_steps"] < 16
    assert res["passed"] is True
    assert (trm_artefact / "report.md").read_text().startswith("# edgekit report")
