"""Where validation rollouts run: the executor, its workers, the Ray cluster and the PyTorch device.

Settings come from the recipe's `validate:` section; `--executor` / `--workers` on the command line override them
for one command (`overriding`). `check` refuses what cannot run here before any work starts: one line, exit 2.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import EdgekitError, first_line

EXECUTOR_NAMES = ("serial", "processes", "ray")
DEVICES = ("cpu", "cuda", "auto")
INSTALL_RAY = 'pip install "edgekit[scale]"'
CONNECT_TIMEOUT_S = 5.0  # a cluster address that does not answer within this is an error, not a hang


class ScaleError(EdgekitError):
    """An executor that cannot run here, a cluster that does not answer, a worker that keeps dying (exit 2)."""


@dataclass(frozen=True)
class ScaleSettings:
    """`executor`: serial (in this process), processes (this machine), ray (a local instance or a cluster);
    `workers`: None = one per CPU (processes) or per cluster CPU (ray); `device`: where PyTorch references and the
    ONNX variants' rollouts run (cuda: onnxruntime's CUDA provider, which needs onnxruntime-gpu)."""

    executor: str = "serial"
    workers: int | None = None
    ray_address: str | None = None
    device: str = "cpu"

    def record(self) -> dict[str, Any]:
        return {"executor": self.executor, "workers": self.workers, "device": self.device}


@dataclass
class ScaleRun:
    """One validation's settings and what its sharded rollouts did (results.json's `scale` section)."""

    settings: ScaleSettings = field(default_factory=ScaleSettings)
    device: str = "cpu"  # resolved: cpu or cuda
    device_name: str = "cpu"
    rollouts: list[dict[str, Any]] = field(default_factory=list)
    workers: int = 1
    threads: int | None = None
    onnx: OnnxDevice = field(default_factory=lambda: OnnxDevice())  # where the ONNX variants' rollouts run

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "executor": self.settings.executor,
            "workers": self.workers,
            "threads_per_worker": self.threads,
            "reference_device": self.device_name,
            "onnx_device": self.onnx.name,
            "rollouts": self.rollouts,
        }
        if self.onnx.note:
            out["onnx_note"] = self.onnx.note
        if self.device == "cuda":
            out["reference_precision"] = "float32 with TF32 off"
            out["note"] = "PyTorch references computed on a GPU: not comparable bit for bit with CPU references"
        return out


@dataclass(frozen=True)
class OnnxDevice:
    """Where validation runs the ONNX variants: onnxruntime providers for their Runners (None: the CPU provider),
    a name for results.json and the report, and why `auto` stayed on the CPU."""

    providers: list[str] | None = None
    name: str = "cpu (CPUExecutionProvider)"
    note: str | None = None

    @property
    def tf32(self) -> bool | None:
        """The CUDA provider runs float32 MatMul in TF32 unless told not to; validation compares in float32."""
        return False if self.providers else None


def _ort_cuda() -> str | None:
    """None when onnxruntime's CUDA provider starts here (a one-node session runs on it), else why not."""
    import onnxruntime as ort

    from ..runtime.providers import CUDA, ort_distribution, probe

    if CUDA not in ort.get_available_providers():
        return f"{ort_distribution()} has no CUDA provider (onnxruntime-gpu is not installed)"
    p = probe(CUDA)
    return None if p.ok else f"onnxruntime's CUDA provider does not start: {p.reason}"


def resolve_onnx_device(device: str) -> OnnxDevice:
    """Where the ONNX variants run for `validate.device`: cpu; cuda (onnxruntime's CUDA provider, TF32 off; one
    line when it does not start here); auto (CUDA when it starts, else the CPU, with the reason kept for the
    report)."""
    if device == "cpu":
        return OnnxDevice()
    why = _ort_cuda()
    if why is None:
        return OnnxDevice(["cuda"], "cuda (CUDAExecutionProvider, TF32 off)")
    if device == "auto":
        return OnnxDevice(note=f"validate.device auto: ONNX variants ran on the CPU provider, as {why}")
    raise ScaleError(
        f"validate.device is cuda but {why}",
        "install onnxruntime-gpu in place of onnxruntime, or use validate.device: auto (ONNX variants then run on "
        "the CPU provider, as the report states)",
    )


_override: ContextVar[dict[str, Any] | None] = ContextVar("edgekit_scale_override", default=None)


@contextlib.contextmanager
def overriding(**values: Any) -> Iterator[None]:
    """Command-line values (None: keep the recipe's) over every recipe read while the block runs."""
    token = _override.set({k: v for k, v in values.items() if v is not None})
    try:
        yield
    finally:
        _override.reset(token)


def settings_for(section: Any = None) -> ScaleSettings:
    """The recipe's `validate:` section (or none) with the command line's overrides and RAY_ADDRESS applied."""
    base = ScaleSettings()
    if section is not None:
        base = ScaleSettings(
            executor=getattr(section, "executor", "serial"),
            workers=getattr(section, "workers", None),
            ray_address=getattr(section, "ray_address", None),
            device=getattr(section, "device", "cpu"),
        )
    s = replace(base, **(_override.get() or {}))
    if s.executor not in EXECUTOR_NAMES:
        raise ScaleError(f"unknown executor {s.executor!r}", f"use one of {', '.join(EXECUTOR_NAMES)}")
    if s.device not in DEVICES:
        raise ScaleError(f"unknown validate.device {s.device!r}", f"use one of {', '.join(DEVICES)}")
    if s.workers is not None and not 1 <= s.workers <= 4096:
        raise ScaleError(f"workers must lie in 1..4096, got {s.workers}")
    if s.ray_address is None and os.environ.get("RAY_ADDRESS"):
        s = replace(s, ray_address=os.environ["RAY_ADDRESS"])
    return s


def import_ray() -> Any:
    """Ray, or one line naming the install command."""
    try:
        import ray
    except ImportError:
        raise ScaleError("executor ray needs Ray, which is not installed", f"install it: {INSTALL_RAY}") from None
    return ray


def check_address(address: str | None, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """A cluster address must answer on TCP within `timeout` (ray.init would otherwise wait for minutes)."""
    if address in (None, "", "local", "auto"):
        return
    assert address is not None
    host_port = address.removeprefix("ray://")
    host, sep, port = host_port.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ScaleError(f"Ray address {address!r} is not host:port", "e.g. 10.0.0.5:6379 or ray://10.0.0.5:10001")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as e:
        why = "no answer" if isinstance(e, TimeoutError) else first_line(e, 80)
        raise ScaleError(
            f"no Ray cluster answers at {address} within {timeout:g} s ({why})",
            "start one (`ray start --head`), or fix validate.ray_address / RAY_ADDRESS",
        ) from None


def resolve_device(device: str) -> tuple[str, str]:
    """(cpu | cuda, a name for the report). `cuda` without a CUDA build of PyTorch or without a GPU is one line."""
    if device == "cpu":
        return "cpu", "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda", f"cuda ({torch.cuda.get_device_name(0)})"
    if device == "auto":
        return "cpu", "cpu"
    built = torch.version.cuda
    why = f"torch {torch.__version__}, built for CUDA {built}" if built else f"torch {torch.__version__} is a CPU build"
    raise ScaleError(
        f"validate.device is cuda but PyTorch sees no CUDA GPU here ({why})",
        "use validate.device: cpu (or auto), or run on a machine with a GPU and a CUDA build of PyTorch",
    )


def check(s: ScaleSettings) -> None:
    """What cannot run here is refused before any work: a missing Ray, an unreachable cluster, a missing GPU (for
    `cuda`, PyTorch's and onnxruntime's reasons in one line)."""
    if s.executor == "ray":
        import_ray()
        check_address(s.ray_address)
    if s.device == "cuda":
        problems, fixes = [], []
        for resolve in (resolve_device, resolve_onnx_device):
            try:
                resolve("cuda")
            except ScaleError as e:
                problems.append(e.problem.removeprefix("validate.device is cuda but "))
                fixes.append(e.fix)
        if problems:
            raise ScaleError(
                f"validate.device is cuda but {' and '.join(problems)}",
                fixes[0]
                if len(fixes) == 1
                else "use validate.device: cpu or auto, or run where PyTorch sees a CUDA GPU and onnxruntime-gpu is "
                "installed",
            )


def report_lines(record: Any) -> list[str]:
    """report.md's line on where the rollouts ran (results.json's `scale` section; absent in older results)."""
    if not isinstance(record, dict) or "executor" not in record:
        return []
    workers, threads = record.get("workers"), record.get("threads_per_worker")
    how = f"{workers} worker{'s' if workers != 1 else ''}" + (
        f" × {threads} thread{'s' if threads != 1 else ''}" if threads else ""
    )
    precision = f" ({record['reference_precision']})" if record.get("reference_precision") else ""
    device = record.get("reference_device")
    line = f"Rollouts computed by the {record['executor']} executor ({how}); PyTorch references on {device}{precision}."
    if record.get("onnx_device"):
        line += (
            f" ONNX variants (rollouts, forms parity, drift) on {record['onnx_device']}; latency and golden answers on "
            "the CPU provider."
        )
    for key in ("note", "onnx_note"):
        if record.get(key):
            line += f" {record[key]}."
    return [line]


EXECUTOR_HELP = "where validation rollouts run: serial, processes or ray (default: the recipe's validate.executor)"
WORKERS_HELP = "workers of the processes / ray executor (default: the recipe's validate.workers, else one per CPU)"


@contextlib.contextmanager
def for_command(recipe: Any, executor: str | None, workers: int | None) -> Iterator[None]:
    """A command's --executor / --workers over the recipe's `validate:` section, checked before any work (a
    missing Ray, an unreachable cluster, cuda without a GPU: one line, exit 2)."""
    with overriding(executor=executor, workers=workers):
        if recipe is not None:
            from ..schema import load_recipe

            check(settings_for(load_recipe(recipe)[0].validate_))
        yield
