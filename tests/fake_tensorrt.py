"""A stand-in for the TensorRT and cuda-python APIs that the engine backend calls, for testing its host-side logic
where TensorRT cannot be installed. It is NOT TensorRT: an "engine" here is an ONNX graph executed by onnxruntime's
CPU provider, "device memory" is host memory behind integer addresses. It models what the backend relies on —
tensor names and modes in the graph's order, dynamic batch dimensions with an optimization profile that refuses
shapes outside it (set_input_shape returns False), output shapes known before execution, a Loop engine that takes
no step-cap or threshold input (TensorRT builds ONNX inputs that have defaults into the engine), and counts calls
so tests can check chunking and device-resident state. Numbers from it say nothing about TensorRT's numerics.
"""

from __future__ import annotations

import itertools
import os
import sys
import types
from typing import Any

import numpy as np
import onnxruntime as ort

_ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
}


class FakeCudart:
    """cudaMalloc / cudaMemcpy / streams over a dict of host buffers; counts host<->device copies."""

    class cudaMemcpyKind:  # noqa: N801 - cuda-python's name
        cudaMemcpyHostToDevice = 1
        cudaMemcpyDeviceToHost = 2

    def __init__(self) -> None:
        self.memory: dict[int, bytearray] = {}
        self._next = itertools.count(0x1000, 0x1000)
        self.copies = {"h2d": 0, "d2h": 0, "h2d_bytes": 0, "d2h_bytes": 0}

    def cudaMalloc(self, n: int) -> tuple[int, int]:  # noqa: N802
        ptr = next(self._next)
        self.memory[ptr] = bytearray(n)
        return 0, ptr

    def cudaFree(self, ptr: int) -> tuple[int]:  # noqa: N802
        self.memory.pop(ptr, None)
        return (0,)

    def cudaMemcpy(self, dst: Any, src: Any, nbytes: int, kind: int) -> tuple[int]:  # noqa: N802
        if kind == self.cudaMemcpyKind.cudaMemcpyHostToDevice:
            self.memory[dst][:nbytes] = np.ascontiguousarray(src).view(np.uint8).reshape(-1)[:nbytes].tobytes()
            self.copies["h2d"] += 1
            self.copies["h2d_bytes"] += nbytes
        else:
            flat = dst.reshape(-1).view(np.uint8)
            flat[:nbytes] = np.frombuffer(bytes(self.memory[src][:nbytes]), np.uint8)
            self.copies["d2h"] += 1
            self.copies["d2h_bytes"] += nbytes
        return (0,)

    def cudaStreamCreate(self) -> tuple[int, int]:  # noqa: N802
        return 0, 7

    def cudaStreamSynchronize(self, stream: Any) -> tuple[int]:  # noqa: N802
        return (0,)

    def read(self, ptr: int, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        n = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        return np.frombuffer(bytes(self.memory[ptr][:n]), dtype).reshape(shape).copy()

    def write(self, ptr: int, value: np.ndarray) -> None:
        b = np.ascontiguousarray(value).view(np.uint8).reshape(-1).tobytes()
        self.memory[ptr][: len(b)] = b


class RealMemory:
    """Reads and writes of real device memory through cuda-python (on a machine with a GPU and cuda-python), so the
    backend's buffers, copies and stream calls run against the real CUDA runtime while the engines stay stand-ins."""

    def __init__(self, cudart: Any) -> None:
        self.cudart = cudart

    def read(self, ptr: int, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        host = np.empty(shape, dtype)
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        assert int(self.cudart.cudaMemcpy(host, ptr, host.nbytes, kind)[0]) == 0
        return host

    def write(self, ptr: int, value: np.ndarray) -> None:
        value = np.ascontiguousarray(value)
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        assert int(self.cudart.cudaMemcpy(ptr, value, value.nbytes, kind)[0]) == 0


class FakeEngine:
    """An ONNX graph run by onnxruntime behind TensorRT's engine API; inputs with defaults are built in."""

    def __init__(self, trt: FakeTensorRT, onnx_bytes: bytes) -> None:
        self.trt = trt
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(onnx_bytes, opts, providers=["CPUExecutionProvider"])
        self.ins = [(i.name, i.shape, _ORT_TYPES[i.type]) for i in self.session.get_inputs()]
        self.outs = [(o.name, o.shape, _ORT_TYPES[o.type]) for o in self.session.get_outputs()]
        self.num_io_tensors = len(self.ins) + len(self.outs)
        self.calls = 0

    def _all(self) -> list[tuple[str, Any, Any]]:
        return self.ins + self.outs

    def get_tensor_name(self, i: int) -> str:
        return self._all()[i][0]

    def get_tensor_mode(self, name: str) -> str:
        return "INPUT" if any(n == name for n, _, _ in self.ins) else "OUTPUT"

    def get_tensor_dtype(self, name: str) -> Any:
        return next(t for n, _, t in self._all() if n == name)

    def get_tensor_shape(self, name: str) -> list[int]:
        shape = next(s for n, s, _ in self._all() if n == name)
        return [d if isinstance(d, int) else -1 for d in shape]

    def get_tensor_profile_shape(self, name: str, profile: int) -> tuple[list[int], ...]:
        tail = self.get_tensor_shape(name)[1:]
        lo, opt, hi = self.trt.profile
        return [lo, *tail], [opt, *tail], [hi, *tail]

    def create_execution_context(self) -> FakeContext:
        return FakeContext(self)


class FakeContext:
    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.addresses: dict[str, int] = {}
        self._result: dict[str, np.ndarray] | None = None

    def set_input_shape(self, name: str, shape: Any) -> bool:
        lo, _, hi = self.engine.trt.profile
        declared = self.engine.get_tensor_shape(name)
        if declared[:1] == [-1] and not lo <= shape[0] <= hi:
            return False
        self.shapes[name] = tuple(int(d) for d in shape)
        self._result = None
        return True

    def set_tensor_address(self, name: str, ptr: int) -> None:
        self.addresses[name] = ptr
        self._result = None

    def infer_shapes(self) -> list[str]:
        return [n for n, _, _ in self.engine.ins if n not in self.shapes]

    def _run(self) -> dict[str, np.ndarray]:
        if self._result is None:
            mem = self.engine.trt.memory
            feeds = {n: mem.read(self.addresses[n], self.shapes[n], t) for n, _, t in self.engine.ins}
            outs = self.engine.session.run(None, feeds)
            self._result = {n: o for (n, _, _), o in zip(self.engine.outs, outs)}
        return self._result

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._run()[name].shape)

    def execute_async_v3(self, stream: Any) -> bool:
        result = self._run()
        self._result = None
        for name, value in result.items():
            self.engine.trt.memory.write(self.addresses[name], value)
        self.engine.calls += 1
        self.engine.trt.calls[self.engine.name] = self.engine.trt.calls.get(self.engine.name, 0) + 1
        return True


class FakeTensorRT(types.ModuleType):
    """The `tensorrt` module's surface the backend uses. Engine files hold ONNX bytes after a header line naming
    the graph (written by `write_fake_engines`)."""

    __version__ = "10.3.0.26"

    class TensorIOMode:
        INPUT = "INPUT"
        OUTPUT = "OUTPUT"

    class Logger:
        WARNING = 2

        def __init__(self, level: int = 2) -> None:
            self.level = level

    def __init__(self, cudart: Any, profile: tuple[int, int, int] = (1, 4, 16)) -> None:
        super().__init__("tensorrt")
        self.cudart, self.profile = cudart, profile
        self.memory = cudart if isinstance(cudart, FakeCudart) else RealMemory(cudart)
        self.calls: dict[str, int] = {}
        trt = self

        class Runtime:
            def __init__(self, logger: Any) -> None:
                pass

            def deserialize_cuda_engine(self, data: bytes) -> FakeEngine | None:
                head, _, body = bytes(data).partition(b"\n")
                if not head.startswith(b"FAKE-ENGINE "):
                    return None
                engine = FakeEngine(trt, body)
                engine.name = head.split()[1].decode()
                return engine

        self.Runtime = Runtime

    @staticmethod
    def nptype(t: Any) -> Any:
        return t


def real_cuda() -> bool:
    """EDGEKIT_REAL_CUDART=1 (benchmarks/gpu_check.sh on a GPU machine): device memory through real cuda-python."""
    return os.environ.get("EDGEKIT_REAL_CUDART") == "1"


def install(monkeypatch: Any, profile: tuple[int, int, int] = (1, 4, 16), gpu: tuple[str, str] = ("Fake GPU", "8.9")):
    """Put the stand-ins where the backend imports them from; returns (trt, cudart). With `real_cuda()` the CUDA
    runtime and the GPU probe are the real ones and only TensorRT is a stand-in."""
    import edgekit.runtime.toolchain as toolchain

    if real_cuda():
        cudart: Any = toolchain.import_cudart()
    else:
        cudart = FakeCudart()
        monkeypatch.setattr(toolchain, "import_cudart", lambda: cudart)
        monkeypatch.setattr(toolchain, "gpu_info", lambda device=0: gpu)
    trt = FakeTensorRT(cudart, profile)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    return trt, cudart


def write_fake_engines(
    artefact: Any,
    folder: Any,
    keys: list[str],
    batch: tuple[int, int, int] = (1, 4, 16),
    trt_version: str = "10.3.0",
    gpu: tuple[str, str] | None = None,
    bake_loop_inputs: bool = True,
) -> None:
    """An engine folder as `edgekit build` writes it, whose engines are the artefact's ONNX graphs (the loop
    graph with its defaulted inputs turned into constants, as TensorRT's parser does)."""
    import hashlib
    import json
    from pathlib import Path

    if gpu is None:
        from edgekit.runtime.toolchain import gpu_info

        gpu = gpu_info() if real_cuda() else ("Fake GPU", "8.9")
    artefact, folder = Path(artefact), Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    manifest = json.loads((artefact / "manifest.json").read_text())
    engines = {}
    for key in keys:
        rel = manifest["files"][key]
        data = (artefact / rel).read_bytes()
        if bake_loop_inputs and key.split("/")[-1] == "loop":
            data = _bake_defaults(data)
        blob = f"FAKE-ENGINE {key.replace('/', '_')}\n".encode() + data
        name = key.replace("/", "_") + ".engine"
        (folder / name).write_bytes(blob)
        engines[key] = {
            "file": name,
            "onnx": rel,
            "onnx_sha256": manifest["sha256"][key],
            "engine_sha256": hashlib.sha256(blob).hexdigest(),
            "engine_bytes": len(blob),  # as edgekit's builds record it
            "flags": "",
        }
    (folder / "engine_manifest.json").write_text(
        json.dumps(
            {
                "schema_version": 1,
                "target": "rtx-40",
                "built_with": "fake",
                "tensorrt_version": trt_version,
                "gpu": {"name": gpu[0], "compute_capability": gpu[1]},
                "l4t": "",
                "strongly_typed": False,
                "build_recipe_sha256": "0" * 64,
                "build_recipe": {"batch": {"min": batch[0], "opt": batch[1], "max": batch[2]}, "precision": "fp32"},
                "engines": engines,
            }
        )
    )


def _bake_defaults(model_bytes: bytes) -> bytes:
    import onnx

    m = onnx.load_from_string(model_bytes)
    inits = {i.name for i in m.graph.initializer}
    keep = [i for i in m.graph.input if i.name not in inits]
    del m.graph.input[:]
    m.graph.input.extend(keep)
    return m.SerializeToString()
