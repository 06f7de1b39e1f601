"""`edgekit doctor`: what this device can run, one line per check with the fix.

Python; numpy and onnxruntime and whether they import together; every provider onnxruntime offers and whether it
really creates a session on a one-node graph (and gets that provider); TensorRT and cuda-python; the GPU; the
bundled targets that describe this device. Exit 0 when everything the device needs works (the CPU provider at
least), 1 otherwise.

Standard library only at import time, and loadable on its own: the point is to explain a broken install, so
onnxruntime, TensorRT and cuda-python are imported in child processes (an ABI mismatch such as onnxruntime-gpu
wheels built against NumPy 1.x under NumPy 2 kills the import, sometimes the process) and their failures read
from there. The targets are read with a few lines of YAML parsing (pyyaml is not in the base install).
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

MIN_PYTHON = (3, 10)
NUMPY_ABI = ("compiled using numpy 1.x", "_array_api not found", "numpy.core.multiarray failed to import")
NUMPY_FIX = (
    'pip install "numpy<2" (on a Jetson: pip install "edgekit[jetson-jp6]"): this onnxruntime wheel was built '
    "against NumPy 1.x, as the Jetson onnxruntime-gpu wheels for JetPack 6 are, and NumPy 2 cannot load it"
)
_MARK = "EDGEKIT-DOCTOR "  # prefix of a child's result line (onnxruntime may print its own lines)


@dataclass
class DoctorCheck:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True  # False: reported, but the device does not need it (no effect on the exit code)


@dataclass
class Device:
    """What the checks learned about this machine, for matching targets."""

    arch: str
    gpu: str | None = None
    cc: str | None = None
    model: str | None = None  # a Jetson's /proc/device-tree/model
    onnxruntime_ok: bool = False
    providers: dict[str, bool] = field(default_factory=dict)
    cpu_flags: set[str] = field(default_factory=set)  # /proc/cpuinfo flags (x86 ISA extensions)
    openvino_devices: list[str] = field(default_factory=list)  # what OpenVINO lists, where it is installed


# -- child processes ---------------------------------------------------------------------------------------------

_IMPORT_ORT = """
import json, sys
out = {}
try:
    import numpy
    out["numpy"] = numpy.__version__
except BaseException as e:
    out["numpy_error"] = f"{type(e).__name__}: {e}"
try:
    import onnxruntime
    out["onnxruntime"] = onnxruntime.__version__
    out["providers"] = list(onnxruntime.get_available_providers())
except BaseException as e:
    out["onnxruntime_error"] = f"{type(e).__name__}: {e}"
print("MARK" + json.dumps(out))
"""

_IMPORT_TRT = """
import json
from importlib import metadata
out = {}
try:
    import tensorrt
    out["tensorrt"] = tensorrt.__version__
except BaseException as e:
    out["tensorrt_error"] = f"{type(e).__name__}: {e}"
try:
    try:
        from cuda.bindings import runtime
    except ImportError:
        from cuda import cudart
    for dist in ("cuda-python", "cuda-bindings"):
        try:
            out["cuda"] = metadata.version(dist)
            break
        except metadata.PackageNotFoundError:
            pass
    out.setdefault("cuda", "unknown version")
except BaseException as e:
    out["cuda_error"] = f"{type(e).__name__}: {e}"
print("MARK" + json.dumps(out))
"""

_IMPORT_OV = """
import json
out = {}
try:
    import openvino
    core = openvino.Core()
    out["openvino"] = openvino.get_version().split("-")[0]
    devices = []
    for name in core.available_devices:
        d = {"name": name}
        for key, prop in (("full_name", "FULL_DEVICE_NAME"), ("caps", "OPTIMIZATION_CAPABILITIES")):
            try:
                d[key] = core.get_property(name, prop)
            except BaseException as e:
                d[key + "_error"] = f"{type(e).__name__}: {e}"
        devices.append(d)
    out["devices"] = devices
except BaseException as e:
    out["openvino_error"] = f"{type(e).__name__}: {e}"
print("MARK" + json.dumps(out, default=str))
"""

_PROBE = """
import json
from edgekit.runtime.doctor import probe_providers
print("MARK" + json.dumps(probe_providers()))
"""


def _child(code: str, timeout: float) -> tuple[Any, str]:
    """Run `code` in a fresh interpreter like this one: (its result, or None; what it printed otherwise)."""
    try:
        p = subprocess.run(
            [sys.executable, "-c", code.replace("MARK", _MARK)], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return None, f"did not finish within {timeout:.0f} s"
    for line in reversed(p.stdout.splitlines()):
        if line.startswith(_MARK):
            return json.loads(line[len(_MARK) :]), p.stderr
    died = f"exit status {p.returncode}" if p.returncode >= 0 else f"killed by signal {-p.returncode}"
    tail = [ln.strip() for ln in (p.stderr or p.stdout).splitlines() if ln.strip()]
    return None, f"{died}: {tail[-1][:200] if tail else 'no output'}" + "\n" + p.stderr


def probe_providers() -> list[dict[str, Any]]:
    """In a child process: every provider this onnxruntime offers on the one-node graph (see providers.probe):
    does a session get it and run; for edgekit's own providers, is the node itself placed on it."""
    import onnxruntime as ort

    from .providers import _BY_ORT_NAME, CPU, probe

    out = []
    for name in ort.get_available_providers():
        short = _BY_ORT_NAME.get(name)
        opts: dict[str, Any] = {"device_id": 0} if short in ("cuda", "tensorrt") else {}
        p = probe(name, opts)
        placed = probe(name, opts, strict=True) if p.ok and short and name != CPU else None
        out.append(
            {
                "provider": name,
                "short": short,
                "ok": p.ok,
                "got": p.got,
                "reason": p.reason,
                "placed": None if placed is None else placed.ok,
                "placed_reason": "" if placed is None else placed.reason,
            }
        )
    return out


def _first(text: str) -> str:
    return " ".join(text.strip().splitlines()[0].split())[:240] if text.strip() else ""


# -- checks ------------------------------------------------------------------------------------------------------


def _python() -> DoctorCheck:
    v = sys.version_info
    ok = (v.major, v.minor) >= MIN_PYTHON
    return DoctorCheck(
        "python",
        ok,
        f"{platform.python_version()} ({sys.executable})",
        "" if ok else f"use Python {'.'.join(map(str, MIN_PYTHON))} or newer",
    )


def _wheels() -> list[str]:
    found = []
    for dist in ("onnxruntime", "onnxruntime-gpu", "onnxruntime-directml", "onnxruntime-openvino"):
        try:
            found.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            continue
    return found


def _onnxruntime(dev: Device) -> tuple[list[DoctorCheck], list[str]]:
    res, err = _child(_IMPORT_ORT, 120)
    if res is None:
        why = err.splitlines()[0] if err else "the import crashed"
        fix = NUMPY_FIX if any(m in err.lower() for m in NUMPY_ABI) else "reinstall onnxruntime (or onnxruntime-gpu)"
        return [
            DoctorCheck("numpy", False, f"not checked: the import child failed ({why})", fix),
            DoctorCheck("onnxruntime", False, f"import failed ({why})", fix),
        ], []
    checks = []
    if "numpy" in res:
        checks.append(DoctorCheck("numpy", True, res["numpy"]))
    else:
        checks.append(DoctorCheck("numpy", False, _first(res["numpy_error"]), 'pip install "numpy>=1.24,<2.5"'))
    wheels = _wheels()
    if "onnxruntime" in res:
        detail = f"{res['onnxruntime']} ({', '.join(wheels) or 'wheel unknown'}), imports with numpy {res.get('numpy')}"
        checks.append(DoctorCheck("onnxruntime", True, detail))
        dev.onnxruntime_ok = True
    else:
        text = f"{res['onnxruntime_error']}\n{err}".lower()
        if any(m in text for m in NUMPY_ABI):
            detail = f"does not import with numpy {res.get('numpy', '?')}: built against NumPy 1.x"
            fix = NUMPY_FIX
        elif "no module named" in text:
            detail, fix = "not installed", "pip install onnxruntime (a GPU device: onnxruntime-gpu)"
        else:
            detail, fix = f"import failed ({_first(res['onnxruntime_error'])})", "reinstall onnxruntime (or -gpu)"
        checks.append(DoctorCheck("onnxruntime", False, detail, fix))
    if len(wheels) > 1:
        checks.append(
            DoctorCheck(
                "onnxruntime wheels",
                False,
                f"{' and '.join(wheels)} are both installed and overwrite each other's files",
                "pip uninstall -y " + " ".join(w.split()[0] for w in wheels) + ", then install only the one you need",
            )
        )
    return checks, list(res.get("providers", []))


def _providers(dev: Device, offered: list[str]) -> list[DoctorCheck]:
    if not dev.onnxruntime_ok:
        return [DoctorCheck("providers", False, "not checked: onnxruntime does not import", required=False)]
    res, err = _child(_PROBE, 600)
    if res is None:
        return [
            DoctorCheck(
                "providers",
                False,
                f"the provider check failed ({err.splitlines()[0]}); onnxruntime offers {', '.join(offered)}",
                'run `python -c "import onnxruntime"` to see the error, reinstall onnxruntime',
            )
        ]
    checks = []
    for r in res:
        name = r["short"] or r["provider"]
        dev.providers[r["provider"]] = r["ok"]
        edgekit_uses = r["short"] is not None
        gpu = r["short"] in ("cuda", "tensorrt")
        required = r["short"] == "cpu" or (gpu and dev.gpu is not None)
        if r["ok"] and not edgekit_uses:
            detail = "a session on a one-node graph gets it (edgekit does not use this provider)"
            checks.append(DoctorCheck(f"provider {name}", True, detail, required=False))
            continue
        if r["ok"]:
            detail = "a session on a one-node graph gets it and gives the right answer"
            if r["placed"] is True:
                detail += "; the node runs on it"
            elif r["placed"] is False:
                detail += f"; but the node was not placed on it ({r['placed_reason'][:160]})"
            checks.append(DoctorCheck(f"provider {name}", True, detail, required=required))
            continue
        got = ", ".join(r["got"]) or "no session"
        fix = {
            "cpu": "reinstall onnxruntime",
            "cuda": "install the CUDA and cuDNN versions this onnxruntime-gpu was built for (see onnxruntime's "
            "CUDA provider requirements), or run with --provider cpu",
            "tensorrt": "install the TensorRT libraries this onnxruntime-gpu was built for and put them on "
            "LD_LIBRARY_PATH (Jetson: they come with JetPack), or run with --provider cuda",
        }.get(r["short"] or "", "not used by edgekit; nothing to do unless you need it")
        detail = f"offered, but a session on a one-node graph did not get it ({r['reason'][:200]}; got: {got})"
        checks.append(DoctorCheck(f"provider {name}", False, detail, fix, required=required and edgekit_uses))
    if dev.gpu is not None and not any(p in offered for p in ("CUDAExecutionProvider", "TensorrtExecutionProvider")):
        checks.append(
            DoctorCheck(
                "gpu providers",
                False,
                f"a GPU is visible, but this onnxruntime ({', '.join(_wheels()) or '?'}) offers only "
                + ", ".join(offered),
                "pip uninstall onnxruntime, then install onnxruntime-gpu (Jetson: the JetPack onnxruntime-gpu wheel)",
                required=False,
            )
        )
    return checks


def _gpu(dev: Device) -> DoctorCheck:
    from edgekit.errors import EdgekitError
    from edgekit.runtime.toolchain import gpu_info

    tree = Path("/proc/device-tree/model")
    if tree.is_file():
        dev.model = tree.read_bytes().decode(errors="replace").rstrip("\0").strip() or None
    try:
        dev.gpu, dev.cc = gpu_info(0)
    except EdgekitError:
        return DoctorCheck(
            "gpu",
            False,
            "no NVIDIA GPU visible (cuda-python, nvidia-smi, Jetson device tree)",
            "none needed for the CPU provider; for a GPU, install the NVIDIA driver (Jetson: JetPack)",
            required=False,
        )
    except (OSError, subprocess.SubprocessError) as e:
        return DoctorCheck("gpu", False, f"could not read the GPU ({_first(str(e))})", "check nvidia-smi", False)
    model = f", {dev.model}" if dev.model else ""
    return DoctorCheck("gpu", True, f"{dev.gpu}, compute capability {dev.cc}{model}")


# -- targets -----------------------------------------------------------------------------------------------------


def read_targets() -> list[dict[str, Any]]:
    """The bundled targets, through the package's own standard-library reader (no pyyaml on a base install)."""
    from edgekit.targets import read_target, target_names

    return [read_target(n) for n in target_names()]


_ARCH = {"x86_64": "x86", "amd64": "x86", "aarch64": "arm", "arm64": "arm"}


def _cpu_target(t: dict[str, Any], dev: Device) -> bool:
    """An onnxruntime target: this CPU architecture (`arch`, else the name's first word: x86-cpu)."""
    return bool((t.get("arch") or str(t.get("name", "")).split("-")[0]) == dev.arch)


def _gpu_target(t: dict[str, Any], dev: Device) -> bool:
    """A TensorRT target: the GPU's compute capability, and the Jetson module where the target names one."""
    if dev.cc is None or str(t.get("compute_capability")) != dev.cc:
        return False
    model = t.get("device_model")
    return not model or dev.model is None or str(model).lower() in dev.model.lower()


def _openvino_target(t: dict[str, Any], dev: Device) -> bool:
    """An OpenVINO target: a CPU one by the ISA extensions it names (x86 only); a GPU or NPU one by OpenVINO
    listing that device (GPU, GPU.0, ...)."""
    device = str(t.get("openvino_device") or "CPU")
    if device == "CPU":
        return dev.arch == "x86" and bool(dev.cpu_flags) and set(t.get("cpu_flags") or []) <= dev.cpu_flags
    return any(d == device or d.startswith(device + ".") for d in dev.openvino_devices)


MATCHERS = {"onnxruntime": _cpu_target, "tensorrt": _gpu_target, "openvino": _openvino_target}


def cpu_flags() -> set[str]:
    """The CPU's ISA extensions from /proc/cpuinfo (Linux; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for ln in f:
                key, _, value = ln.partition(":")
                if key.strip() == "flags":
                    return set(value.split())
    except OSError:
        pass
    return set()


def _openvino(dev: Device, match: list[dict[str, Any]], res: dict[str, Any]) -> DoctorCheck:
    """OpenVINO (the optional `openvino` extra) and the devices it lists with their precisions: needed (a failure)
    only where every target this device matches is an OpenVINO one."""
    ov_targets = [t for t in match if t.get("backend") == "openvino"]
    needed = bool(ov_targets) and len(ov_targets) == len(match)
    if "openvino" not in res:
        err = str(res.get("openvino_error", ""))
        absent = "no module named 'openvino'" in err.lower()
        detail = "not installed" if absent else f"does not import ({_first(err)})"
        return DoctorCheck(
            "openvino",
            False,
            f"{detail} (only for --backend openvino)",
            'pip install "edgekit[openvino]"',
            required=needed,
        )
    parts = []
    for d in res.get("devices", []):
        caps = d.get("caps")
        what = f"{d.get('full_name', '?')}: {', '.join(caps) if isinstance(caps, list) else '?'}"
        parts.append(f"{d['name']} ({what})")
    detail = f"{res['openvino']}; devices: {'; '.join(parts) or 'none'}"
    if ov_targets:
        detail += "; targets " + ", ".join(str(t.get("name")) for t in ov_targets)
    return DoctorCheck("openvino", True, detail, required=needed)


def _targets(dev: Device, trt: str | None) -> tuple[DoctorCheck, list[dict[str, Any]]]:
    """The bundled targets whose hardware is this device's; with TensorRT installed, each TensorRT target says
    whether its version range admits it (JetPack 6 and 7 targets differ there only)."""
    from edgekit.runtime.versions import in_range

    try:
        targets = read_targets()
    except (ImportError, OSError, ValueError, KeyError) as e:
        return DoctorCheck("targets", False, f"cannot read the bundled targets ({_first(str(e))})",
                           "reinstall edgekit (the targets ship inside the package)", required=False), []  # fmt: skip
    match = [t for t in targets if MATCHERS.get(str(t.get("backend")), lambda t, d: False)(t, dev)]
    if not match:
        return DoctorCheck(
            "targets",
            False,
            f"none of the {len(targets)} bundled targets describes this device",
            "edgekit runs here on the providers above; write a target for this device to export for it",
            required=False,
        ), []
    names = []
    for t in match:
        note = str(t.get("backend"))
        if t.get("backend") == "tensorrt" and trt and t.get("tensorrt"):
            fits = in_range(trt, str(t["tensorrt"]))
            note += f", TensorRT {trt} {'fits' if fits else 'is outside'} {t['tensorrt']}"
        names.append(f"{t.get('name')} ({note})")
    return DoctorCheck("targets", True, f"this device matches {'; '.join(names)}"), match


def _tensorrt_checks(dev: Device, match: list[dict[str, Any]], res: dict[str, str]) -> list[DoctorCheck]:
    """TensorRT and cuda-python: needed (a failure) only where every target this device matches is a TensorRT
    one (a Jetson); elsewhere their absence is a line, not a failure."""
    from edgekit.runtime.versions import in_range

    trt_targets = [t for t in match if t.get("backend") == "tensorrt"]
    needed = bool(trt_targets) and len(trt_targets) == len(match)
    jetson = dev.model is not None and "jetson" in dev.model.lower()
    why = "needed: " + ", ".join(str(t.get("name")) for t in trt_targets) if needed else "not needed here"
    checks = []
    if "tensorrt" in res:
        v = res["tensorrt"]
        outside = [t for t in trt_targets if t.get("tensorrt") and not in_range(v, str(t["tensorrt"]))]
        if trt_targets and len(outside) == len(trt_targets):
            ranges = "; ".join(f"{t.get('name')} wants {t.get('tensorrt')}" for t in outside)
            checks.append(
                DoctorCheck(
                    "tensorrt",
                    False,
                    f"{v}, outside this device's targets ({ranges})",
                    "install a TensorRT in the target's range (JetPack 6.1/6.2 ship 10.3, JetPack 7.2 ships 10.16)",
                    required=needed,
                )
            )
        else:
            checks.append(DoctorCheck("tensorrt", True, v, required=needed))
    else:
        absent = "no module named 'tensorrt'" in res["tensorrt_error"].lower()
        detail = "not installed" if absent else f"does not import ({_first(res['tensorrt_error'])})"
        fix = (
            "JetPack's TensorRT is in the system Python: make the venv with --system-site-packages"
            if jetson
            else "pip install tensorrt from NVIDIA's index (only for `edgekit build` and --engines)"
        )
        checks.append(DoctorCheck("tensorrt", False, f"{detail} ({why})", fix, required=needed))
    if "cuda" in res:
        checks.append(DoctorCheck("cuda-python", True, res["cuda"], required=needed))
    else:
        absent = "no module named 'cuda" in res["cuda_error"].lower()
        detail = "not installed" if absent else f"does not import ({_first(res['cuda_error'])})"
        fix = "pip install cuda-python matching the CUDA on this device (JetPack 6: 12.6, JetPack 7.2: 13.2)"
        checks.append(DoctorCheck("cuda-python", False, f"{detail} ({why})", fix, required=needed))
    return checks


def run_doctor() -> list[DoctorCheck]:
    """Every check, in the order printed."""
    dev = Device(arch=_ARCH.get(platform.machine().lower(), platform.machine().lower()), cpu_flags=cpu_flags())
    checks = [_python()]
    ort_checks, offered = _onnxruntime(dev)
    checks += ort_checks
    gpu = _gpu(dev)
    checks += _providers(dev, offered)
    trt, err = _child(_IMPORT_TRT, 120)
    trt = trt or {"tensorrt_error": err, "cuda_error": err}
    ov, err = _child(_IMPORT_OV, 120)
    ov = ov or {"openvino_error": err}
    dev.openvino_devices = [str(d.get("name")) for d in ov.get("devices", [])]
    target, match = _targets(dev, trt.get("tensorrt"))
    checks += [gpu, *_tensorrt_checks(dev, match, trt), _openvino(dev, match, ov), target]
    return checks


def passed(checks: list[DoctorCheck]) -> bool:
    """Exit 0 when every check the device needs is ok."""
    return all(c.ok for c in checks if c.required)


def as_json(checks: list[DoctorCheck]) -> dict[str, Any]:
    return {"ok": passed(checks), "checks": [asdict(c) for c in checks]}


def line(c: DoctorCheck) -> str:
    """One line per check: status, name, what was found and, where it is not ok, the fix."""
    status = "ok" if c.ok else ("FAIL" if c.required else "--")
    fix = f"; fix: {c.fix}" if c.fix and not c.ok else ""
    return f"{status:<4} {c.name}: {c.detail}{fix}"
