"""`validate.device` for the ONNX variants: onnxruntime's CUDA provider for `cuda` (one line, exit 2, where it does
not start) and `auto` (the CUDA provider where it starts, else the CPU provider, said in results.json and the
report), and each row of results.json saying where it was computed. Here onnxruntime has no CUDA provider; the
test that runs validation on one is skipped with its reason."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import onnxruntime as ort
import pytest

from edgekit.scale import settings as scale_settings
from edgekit.scale.settings import ScaleError, ScaleSettings, check, report_lines, resolve_onnx_device

HAVE_CUDA_EP = "CUDAExecutionProvider" in ort.get_available_providers()
NO_CUDA_EP = pytest.mark.skipif(HAVE_CUDA_EP, reason="onnxruntime here has the CUDA provider")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgekit.cli", *args], capture_output=True, text=True, timeout=900)


def _recipe(small_trm_recipe, tmp_path, device: str):
    p = tmp_path / f"{device}.yaml"
    p.write_text(small_trm_recipe.read_text().replace("gates:", f"validate: {{device: {device}}}\ngates:"))
    return p


def test_cpu_keeps_the_onnx_variants_on_the_cpu_provider():
    d = resolve_onnx_device("cpu")
    assert d.providers is None and d.tf32 is None and d.note is None and "CPUExecutionProvider" in d.name


@NO_CUDA_EP
def test_without_onnxruntime_gpu_cuda_is_one_line_and_auto_stays_on_the_cpu():
    with pytest.raises(ScaleError) as e:
        resolve_onnx_device("cuda")
    line = str(e.value)
    assert "\n" not in line and "has no CUDA provider" in line and "onnxruntime-gpu" in line, line
    auto = resolve_onnx_device("auto")
    assert auto.providers is None and "auto" in auto.note and "CPU provider" in auto.note and "onnxruntime" in auto.note


def test_a_working_cuda_provider_is_chosen_with_tf32_off(monkeypatch):
    """The decision alone, with onnxruntime's answer stood in: where the CUDA provider starts, cuda and auto put the
    ONNX variants on it with TF32 off; where it starts but fails the probe, cuda names onnxruntime's reason."""
    monkeypatch.setattr(scale_settings, "_ort_cuda", lambda: None)
    for device in ("cuda", "auto"):
        d = resolve_onnx_device(device)
        assert d.providers == ["cuda"] and d.tf32 is False and d.note is None and "CUDAExecutionProvider" in d.name
    why = "onnxruntime's CUDA provider does not start: libcublasLt.so.12: cannot open shared object file"
    monkeypatch.setattr(scale_settings, "_ort_cuda", lambda: why)
    with pytest.raises(ScaleError, match="libcublasLt"):
        resolve_onnx_device("cuda")
    assert "libcublasLt" in resolve_onnx_device("auto").note


def test_cuda_names_every_missing_piece_in_one_line(monkeypatch):
    """validate.device cuda needs PyTorch's GPU and onnxruntime's CUDA provider: one line names what is missing."""
    monkeypatch.setattr(scale_settings, "resolve_device", lambda d: ("cuda", "cuda (a GPU)"))
    monkeypatch.setattr(scale_settings, "_ort_cuda", lambda: "onnxruntime 1.0 has no CUDA provider")
    with pytest.raises(ScaleError) as e:
        check(ScaleSettings(device="cuda"))
    assert "PyTorch" not in str(e.value) and "onnxruntime 1.0 has no CUDA provider" in str(e.value)
    assert "validate.device: auto" in str(e.value)

    def no_torch_gpu(d):
        raise ScaleError("validate.device is cuda but PyTorch sees no CUDA GPU here (torch x is a CPU build)", "fix")

    monkeypatch.setattr(scale_settings, "resolve_device", no_torch_gpu)
    with pytest.raises(ScaleError) as e:
        check(ScaleSettings(device="cuda"))
    line = str(e.value)
    assert line.count("validate.device is cuda but") == 1 and "PyTorch sees no CUDA GPU" in line
    assert "and onnxruntime 1.0 has no CUDA provider" in line and "\n" not in line


def test_report_line_says_where_the_onnx_variants_ran():
    rec = {"executor": "serial", "workers": 1, "reference_device": "cuda (H200)", "onnx_device": "cpu (CPU)",
           "onnx_note": "validate.device auto: ONNX variants ran on the CPU provider, as x"}  # fmt: skip
    (line,) = report_lines(rec)
    assert "PyTorch references on cuda (H200)" in line
    assert "ONNX variants (rollouts, forms parity, drift) on cpu" in line
    assert "latency and golden answers on the CPU provider" in line and line.endswith("as x.")


@NO_CUDA_EP
def test_validate_cuda_without_onnxruntime_gpu_is_exit_2_before_any_work(small_trm_recipe, trm_artefact, tmp_path):
    """`edgekit validate` with validate.device cuda here: one line naming onnxruntime, exit 2, nothing rewritten."""
    art = tmp_path / "art"
    shutil.copytree(trm_artefact, art)
    before = (art / "results.json").read_bytes()
    r = _cli("validate", str(_recipe(small_trm_recipe, tmp_path, "cuda")), str(art))
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "validate.device is cuda but" in lines[0] and "onnxruntime" in lines[0]
    assert (art / "results.json").read_bytes() == before


@NO_CUDA_EP
@pytest.mark.slow
def test_validate_auto_without_onnxruntime_gpu_records_the_cpu(small_trm_recipe, trm_artefact, tmp_path):
    """validate.device auto here: every number where it was computed (each row's computed_on, results.json's scale
    section, one report line saying the ONNX variants stayed on the CPU provider and why)."""
    art = tmp_path / "art"
    shutil.copytree(trm_artefact, art)
    r = _cli("validate", str(_recipe(small_trm_recipe, tmp_path, "auto")), str(art))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    res = json.loads((art / "results.json").read_text())
    scale = res["scale"]
    assert scale["onnx_device"] == "cpu (CPUExecutionProvider)" and "ran on the CPU provider" in scale["onnx_note"]
    onnx_rows = [v for v in res["variants"] if "pytorch" not in str(v["name"]).lower()]
    assert onnx_rows and all(v["computed_on"] == "cpu (CPUExecutionProvider)" for v in onnx_rows)
    assert all(v["computed_on"] == scale["reference_device"] for v in res["variants"] if v not in onnx_rows)
    report = (art / "report.md").read_text()
    assert "ONNX variants (rollouts, forms parity, drift) on cpu (CPUExecutionProvider)" in report
    assert "ran on the CPU provider" in report


@pytest.mark.skipif(
    not (HAVE_CUDA_EP and os.environ.get("EDGEKIT_GPU_PROVIDERS") == "1"),
    reason="needs onnxruntime-gpu on a GPU (benchmarks/gpu_check.sh sets EDGEKIT_GPU_PROVIDERS=1); not run here",
)
def test_validate_runs_the_onnx_variants_on_the_cuda_provider(small_trm_recipe, trm_artefact, tmp_path):
    """Where onnxruntime's CUDA provider runs: validate.device cuda puts every ONNX row on it (TF32 off) and says
    so in results.json and the report."""
    art = tmp_path / "art"
    shutil.copytree(trm_artefact, art)
    r = _cli("validate", str(_recipe(small_trm_recipe, tmp_path, "cuda")), str(art))
    assert r.returncode in (0, 3), r.stdout[-2000:] + r.stderr[-2000:]
    res = json.loads((art / "results.json").read_text())
    assert res["scale"]["onnx_device"] == "cuda (CUDAExecutionProvider, TF32 off)"
    rows = [v for v in res["variants"] if v["computed_on"].startswith("cuda (CUDAExecutionProvider")]
    assert rows and len(rows) == len([v for v in res["variants"] if "pytorch" not in str(v["name"]).lower()])
    assert "ONNX variants (rollouts, forms parity, drift) on cuda" in (art / "report.md").read_text()
