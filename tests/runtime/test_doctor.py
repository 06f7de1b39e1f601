"""`edgekit doctor`: on this machine (CPU onnxruntime: exit 0), in the base install, with an onnxruntime that does
not import under NumPy 2 (exit 1 with the numpy<2 fix), and its decisions — which failures count, which targets match
— on described devices (the GPU lines of those are inputs to the functions, not measurements here)."""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from edgekit.runtime import doctor as d

ROOT = Path(__file__).resolve().parents[2]
DOCS_COMMANDS = (r"^\.venv-device/bin/edgekit doctor( --json)?$",)
X86 = platform.machine().lower() in ("x86_64", "amd64")

FAKE_ORT = """import sys
sys.stderr.write("\\nA module that was compiled using NumPy 1.x cannot be run in\\nNumPy 2.4.6 as it may crash.\\n")
raise ImportError("numpy.core.multiarray failed to import")
"""


def _edgekit(python: Path | str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(python), "-m", "edgekit.cli", *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


def _device_python() -> Path:
    py = Path(os.environ.get("EDGEKIT_DEVICE_PYTHON", ROOT / ".venv-device" / "bin" / "python"))
    if not py.exists():
        pytest.skip(f"no device venv at {py} (.ci/run builds it; tests/system/test_device_install.py too)")
    return py


def _lines(out: str) -> dict[str, str]:
    """check name -> its line."""
    found = {}
    for line in out.splitlines():
        m = re.match(r"^(ok|FAIL|--)\s+([^:]+): ", line)
        if m:
            found[m.group(2)] = line
    return found


def test_doctor_on_this_machine():
    r = _edgekit(sys.executable, "doctor")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = _lines(r.stdout)
    assert len(lines) == len(r.stdout.strip().splitlines()), "one line per check"
    assert lines["python"].startswith("ok") and lines["numpy"].startswith("ok")
    assert lines["onnxruntime"].startswith("ok") and "imports with numpy" in lines["onnxruntime"]
    assert lines["provider cpu"].startswith("ok")
    assert {"gpu", "tensorrt", "cuda-python", "targets"} <= set(lines)
    if X86:
        assert "x86-cpu" in lines["targets"]
    j = _edgekit(sys.executable, "doctor", "--json")
    assert j.returncode == 0, j.stderr
    data = json.loads(j.stdout)
    assert data["ok"] is True and [c["name"] for c in data["checks"]] == list(lines)
    assert all(set(c) == {"name", "ok", "detail", "fix", "required"} for c in data["checks"])


@pytest.mark.parametrize("cmd", [c for c in re.findall(r"^```bash\n(.*?)^```", (ROOT / "docs" / "devices.md")
                                 .read_text(), re.S | re.M)[0].splitlines() if c.strip()])  # fmt: skip
def test_docs_commands_in_the_base_install(cmd):
    """docs/devices.md's commands, as written, with the base install (numpy + onnxruntime, no torch)."""
    assert re.match(DOCS_COMMANDS[0], cmd), cmd
    py = _device_python()
    args = shlex.split(cmd)[1:]
    r = subprocess.run([str(py.parent / "edgekit"), *args], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    if "--json" in args:
        assert json.loads(r.stdout)["ok"] is True
    else:
        assert _lines(r.stdout)["provider cpu"].startswith("ok")


@pytest.mark.parametrize("where", ["workstation", "base install"])
def test_onnxruntime_built_for_numpy_1_is_explained(where, tmp_path):
    """A stand-in onnxruntime package first on PYTHONPATH fails to import the way a NumPy-1.x wheel does under
    NumPy 2: the doctor itself still runs (its module is loaded without edgekit.runtime's onnxruntime import), says
    why, gives the numpy<2 fix and exits 1."""
    py = sys.executable if where == "workstation" else _device_python()
    (tmp_path / "onnxruntime").mkdir()
    (tmp_path / "onnxruntime" / "__init__.py").write_text(FAKE_ORT)
    env = {"PYTHONPATH": str(tmp_path)}
    r = _edgekit(py, "doctor", env=env)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    lines = _lines(r.stdout)
    assert lines["onnxruntime"].startswith("FAIL") and "NumPy 1.x" in lines["onnxruntime"]
    assert 'pip install "numpy<2"' in lines["onnxruntime"]
    assert lines["python"].startswith("ok") and lines["numpy"].startswith("ok")
    j = _edgekit(py, "doctor", "--json", env=env)
    assert j.returncode == 1 and json.loads(j.stdout)["ok"] is False


# -- decisions on described devices -----------------------------------------------------------------------------


def _targets() -> dict[str, dict[str, Any]]:
    return {str(t["name"]): t for t in d.read_targets()}


def _matching(dev: d.Device) -> list[str]:
    return [n for n, t in _targets().items() if d.MATCHERS[str(t["backend"])](t, dev)]


def test_targets_match_by_hardware():
    orin_nano = d.Device(arch="arm", gpu="Orin", cc="8.7", model="NVIDIA Jetson Orin Nano Developer Kit")
    assert _matching(orin_nano) == ["jetson-orin-nano", "jetson-orin-nano-jp7"]
    agx = d.Device(arch="arm", gpu="Orin", cc="8.7", model="Jetson AGX Orin")
    assert _matching(agx) == ["jetson-agx-orin", "jetson-agx-orin-jp7"]
    h200 = d.Device(arch="x86", gpu="NVIDIA H200", cc="9.0")
    assert _matching(h200) == ["hopper", "x86-cpu"]
    assert _matching(d.Device(arch="x86")) == ["x86-cpu"]
    assert _matching(d.Device(arch="arm")) == []


def test_targets_line_says_which_tensorrt_fits():
    orin = d.Device(arch="arm", gpu="Orin", cc="8.7", model="NVIDIA Jetson Orin Nano Developer Kit")
    check, match = d._targets(orin, "10.3.0.30")
    assert check.ok and [t["name"] for t in match] == ["jetson-orin-nano", "jetson-orin-nano-jp7"]
    assert "TensorRT 10.3.0.30 fits >=10.3,<10.4" in check.detail and "is outside >=10.16" in check.detail


def test_tensorrt_is_needed_on_a_jetson_only():
    orin = d.Device(arch="arm", gpu="Orin", cc="8.7", model="NVIDIA Jetson Orin Nano Developer Kit")
    _, match = d._targets(orin, None)
    absent = {"tensorrt_error": "ModuleNotFoundError: No module named 'tensorrt'",
              "cuda_error": "ModuleNotFoundError: No module named 'cuda'"}  # fmt: skip
    trt, cuda = d._tensorrt_checks(orin, match, absent)
    assert not trt.ok and trt.required and "--system-site-packages" in trt.fix
    assert not cuda.ok and cuda.required and not d.passed([trt, cuda])
    (wrong,) = [c for c in d._tensorrt_checks(orin, match, {"tensorrt": "8.6.2", "cuda": "12.6.0"}) if not c.ok]
    assert wrong.name == "tensorrt" and wrong.required and "outside this device's targets" in wrong.detail
    assert d.passed(d._tensorrt_checks(orin, match, {"tensorrt": "10.3.0", "cuda": "12.6.0"}))
    h200 = d.Device(arch="x86", gpu="NVIDIA H200", cc="9.0")
    _, match = d._targets(h200, None)
    checks = d._tensorrt_checks(h200, match, absent)  # x86-cpu matches too: TensorRT is optional there
    assert not any(c.ok for c in checks) and not any(c.required for c in checks) and d.passed(checks)


def _probe_result(short: str | None, provider: str, ok: bool, reason: str = "") -> dict[str, Any]:
    return {"provider": provider, "short": short, "ok": ok, "got": ["CPUExecutionProvider"] if not ok else [provider],
            "reason": reason, "placed": None, "placed_reason": ""}  # fmt: skip


def test_a_gpu_provider_that_does_not_start_fails_only_where_a_gpu_is_visible(monkeypatch):
    """The provider child's results stand in for onnxruntime-gpu on a machine whose cuDNN is missing."""
    rows = [
        _probe_result(
            "cuda", "CUDAExecutionProvider", False, "Failed to load library libonnxruntime_providers_cuda.so"
        ),
        _probe_result("cpu", "CPUExecutionProvider", True),
    ]
    monkeypatch.setattr(d, "_child", lambda code, timeout: (rows, ""))
    offered = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    with_gpu = d.Device(arch="x86", gpu="NVIDIA H200", cc="9.0", onnxruntime_ok=True)
    cuda, cpu = d._providers(with_gpu, offered)
    assert not cuda.ok and cuda.required and "libonnxruntime_providers_cuda" in cuda.detail and "cuDNN" in cuda.fix
    assert cpu.ok and not d.passed([cuda, cpu])
    no_gpu = d.Device(arch="x86", onnxruntime_ok=True)
    assert d.passed(d._providers(no_gpu, offered))
    rows[1]["ok"] = False  # the CPU provider is always needed
    assert not d.passed(d._providers(no_gpu, offered))


def test_a_gpu_with_the_cpu_wheel_is_a_note(monkeypatch):
    monkeypatch.setattr(d, "_child", lambda code, timeout: ([_probe_result("cpu", "CPUExecutionProvider", True)], ""))
    checks = d._providers(d.Device(arch="x86", gpu="RTX 4090", cc="8.9", onnxruntime_ok=True), ["CPUExecutionProvider"])
    note = checks[-1]
    assert note.name == "gpu providers" and not note.ok and not note.required and "onnxruntime-gpu" in note.fix


def test_line_format():
    assert d.line(d.DoctorCheck("x", True, "fine", "unused")) == "ok   x: fine"
    assert d.line(d.DoctorCheck("x", False, "broken", "do this")) == "FAIL x: broken; fix: do this"
    assert (
        d.line(d.DoctorCheck("x", False, "absent", "if you want", required=False)) == "--   x: absent; fix: if you want"
    )
