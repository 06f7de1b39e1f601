"""The TensorRT backend of the host loop (runtime/base.py): the engines `edgekit build` or the `edgekit plan` script
built for an artefact, run through the same loop as onnxruntime — halting, compaction, chunking, puzzle
identifiers, the Loop and unrolled forms, slot refill — so what `verify`, `bench`, `solve` and `serve` measure on
a device is what the engines answer.

Imports tensorrt and cuda-python lazily (never torch). Before anything is loaded the engine folder is read
strictly (runtime/engine_folder.py): engines built from another artefact, for another TensorRT release or GPU, or
changed after the build are refused in one line. Every input shape is checked against the engine's optimization
profile, and batches are chunked to the profile's maximum, so a large batch never ends in an opaque failure.
The step loop keeps the recursion state on the device in two buffer sets that ping-pong between steps; only the
halting signal comes back each step, the state only when samples halt.

Not run here: no machine of this project's CI has TensorRT. Tests run this file's host-side logic against a
stand-in of the TensorRT and CUDA APIs that executes the same ONNX graphs with onnxruntime
(tests/runtime/test_engines.py).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EdgekitError, InputError
from .base import DEFAULT_CHUNK, HostRunner
from .engine_folder import EngineFolder, open_engine_folder
from .errors import RuntimeInputError
from .memory import DEFAULT_MEMORY_BUDGET


def _check(cudart: Any, result: Any) -> Any:
    """cuda-python returns (err, *values); raise on an error, return the values."""
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        name = cudart.cudaGetErrorName(err)[1] if hasattr(cudart, "cudaGetErrorName") else err
        raise RuntimeError(f"CUDA error {name}")
    return rest[0] if len(rest) == 1 else rest


class DeviceArray:
    """A device buffer of `capacity` rows; calls use its leading `rows` (a batch that shrank by compaction)."""

    def __init__(self, cudart: Any, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.cudart, self.dtype = cudart, np.dtype(dtype)
        self.capacity_shape = tuple(int(d) for d in shape)
        self.rows = self.capacity_shape[0] if self.capacity_shape else 1
        self.row_bytes = int(np.prod(self.capacity_shape[1:], dtype=np.int64)) * self.dtype.itemsize
        nbytes = int(np.prod(self.capacity_shape, dtype=np.int64)) * self.dtype.itemsize
        self.ptr = _check(cudart, cudart.cudaMalloc(max(nbytes, 1)))

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.rows, *self.capacity_shape[1:]) if self.capacity_shape else ()

    @property
    def nbytes(self) -> int:
        return self.rows * self.row_bytes if self.capacity_shape else self.dtype.itemsize

    @classmethod
    def from_host(cls, cudart: Any, host: np.ndarray) -> DeviceArray:
        arr = cls(cudart, np.shape(host), np.asarray(host).dtype)
        arr.upload(host)
        return arr

    def upload(self, host: np.ndarray) -> None:
        """Copy `host` into the leading rows (and use that many rows from now on)."""
        host = np.ascontiguousarray(host, dtype=self.dtype)
        if self.capacity_shape:
            if host.shape[1:] != self.capacity_shape[1:] or len(host) > self.capacity_shape[0]:
                raise RuntimeError(f"{list(host.shape)} does not fit a device buffer of {list(self.capacity_shape)}")
            self.rows = len(host)
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        _check(self.cudart, self.cudart.cudaMemcpy(self.ptr, host, self.nbytes, kind))

    def to_host(self) -> np.ndarray:
        host = np.empty(self.shape, self.dtype)
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        _check(self.cudart, self.cudart.cudaMemcpy(host, self.ptr, self.nbytes, kind))
        return host

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown: the CUDA context may already be gone
            self.cudart.cudaFree(self.ptr)


class Engine:
    """One deserialized engine with its execution context; a call binds device arrays by tensor name."""

    def __init__(self, trt: Any, cudart: Any, engine: Any, name: str, stream: Any) -> None:
        self.trt, self.cudart, self.engine, self.name, self.stream = trt, cudart, engine, name, stream
        self.context = engine.create_execution_context()
        if self.context is None:
            raise InputError(f"TensorRT could not create a context for the {name} engine", "free GPU memory")
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        # TensorRT lists a network's inputs and outputs in the ONNX graph's order: outputs come back in that order
        self.inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.dtypes = {n: np.dtype(trt.nptype(engine.get_tensor_dtype(n))) for n in names}
        # batch range of profile 0 for every input with a dynamic first dimension
        self.batch_range: dict[str, tuple[int, int]] = {}
        for n in self.inputs:
            if list(engine.get_tensor_shape(n))[:1] == [-1]:
                lo, _, hi = engine.get_tensor_profile_shape(n, 0)
                self.batch_range[n] = (int(lo[0]), int(hi[0]))

    @property
    def max_batch(self) -> int | None:
        return min((hi for _, hi in self.batch_range.values()), default=None)

    def upload(self, name: str, host: np.ndarray) -> DeviceArray:
        """A host array on the device in the dtype the engine declares for `name` (int64 tokens, float16 states)."""
        return DeviceArray.from_host(self.cudart, np.asarray(host).astype(self.dtypes[name], copy=False))

    def __call__(
        self, feeds: dict[str, DeviceArray], outputs: dict[str, DeviceArray] | None = None
    ) -> dict[str, DeviceArray]:
        """Run on `feeds` (device arrays by input name); outputs go to `outputs` where given, else new arrays."""
        ctx = self.context
        for n in self.inputs:
            if n not in feeds:
                raise InputError(
                    f"the {self.name} engine needs input {n!r}, which this artefact's host loop does not feed",
                    "rebuild the engines from this artefact",
                )
            arr = feeds[n]
            if arr.dtype != self.dtypes[n]:
                raise InputError(
                    f"the {self.name} engine's input {n!r} is {self.dtypes[n]}, got {arr.dtype}",
                    "rebuild the engines from this artefact",
                )
            if not ctx.set_input_shape(n, arr.shape):
                lo, hi = self.batch_range.get(n, (None, None))
                raise RuntimeInputError(
                    f"the {self.name} engine refuses input {n!r} of shape {list(arr.shape)}"
                    + (f" (its profile takes batch {lo}..{hi})" if lo is not None else "")
                    + ": rebuild the engines for this shape"
                )
            ctx.set_tensor_address(n, arr.ptr)
        unresolved = ctx.infer_shapes() if hasattr(ctx, "infer_shapes") else []
        if unresolved:
            raise RuntimeInputError(f"the {self.name} engine cannot infer the shapes of {', '.join(unresolved)}")
        outs: dict[str, DeviceArray] = {}
        for n in self.outputs:
            shape = tuple(int(d) for d in ctx.get_tensor_shape(n))
            if any(d < 0 for d in shape):
                raise RuntimeInputError(
                    f"the {self.name} engine's output {n!r} has a data-dependent shape {list(shape)}, which edgekit's "
                    "host loop does not allocate: re-export the graph with static output shapes"
                )
            given = (outputs or {}).get(n)
            if given is not None and given.shape == shape:
                outs[n] = given
            else:
                outs[n] = DeviceArray(self.cudart, shape, self.dtypes[n])
            ctx.set_tensor_address(n, outs[n].ptr)
        if not ctx.execute_async_v3(self.stream):
            raise RuntimeError(f"TensorRT failed to run the {self.name} engine")
        _check(self.cudart, self.cudart.cudaStreamSynchronize(self.stream))
        return outs


class EngineStep:
    """The Stepper protocol (runtime/stepper.py) on a step engine: the state stays on the device in two buffer sets
    of the batch's starting size that ping-pong between steps; `step` brings back only the halting signal; `state`
    copies to the host when read (the readout at a halting step); compaction packs survivors through the host."""

    def __init__(self, engine: Engine, names: list[str], x: np.ndarray, state: list[np.ndarray]) -> None:
        self.engine, self.names = engine, names
        cudart = engine.cudart
        self._x = engine.upload("x", x)
        self._bufs = tuple(
            [DeviceArray(cudart, s.shape, engine.dtypes[n]) for n, s in zip(names, state)] for _ in range(2)
        )
        for b, s in zip(self._bufs[0], state):
            b.upload(s)
        signal = engine.outputs[len(names)]
        tail = tuple(int(d) for d in engine.engine.get_tensor_shape(signal))[1:]
        self._signal_name = signal
        self._sig = DeviceArray(cudart, (len(x), *tail), engine.dtypes[signal])
        self._cur = 0

    @property
    def n(self) -> int:
        return self._x.rows

    def step(self) -> np.ndarray:
        src, dst = self._bufs[self._cur], self._bufs[1 - self._cur]
        feeds = {**dict(zip(self.names, src)), "x": self._x}
        outs = dict(zip(self.engine.outputs, [*dst, self._sig]))
        for b in (*dst, self._sig):
            b.rows = self.n
        got = self.engine({k: v for k, v in feeds.items() if k in self.engine.inputs}, outs)
        for name, want in outs.items():
            if got[name] is not want:
                raise RuntimeInputError(f"the step engine's output {name!r} has another shape than its state")
        self._cur ^= 1
        return self._sig.to_host()

    @property
    def state(self) -> list[np.ndarray]:
        return [b.to_host() for b in self._bufs[self._cur]]

    def compact(self, keep: np.ndarray) -> None:
        for b, s in zip(self._bufs[self._cur], self.state):
            b.upload(s[keep])
        self._x.upload(self._x.to_host()[keep])


class TensorRTRunner(HostRunner):
    """`TensorRTRunner(artefact, engines=DIR)` (or `target=` for <artefact>/engines/<target>/): the host loop's
    contract on TensorRT engines; see the module docstring."""

    backend = "tensorrt"

    def __init__(
        self,
        artefact: str | Path,
        target: str | None = None,
        engines: str | Path | None = None,
        variant: str | None = None,
        chunk_size: int = DEFAULT_CHUNK,
        memory_budget: int = DEFAULT_MEMORY_BUDGET,
    ) -> None:
        super().__init__(artefact, variant, chunk_size, memory_budget=memory_budget)
        # host-side checks first: a wrong folder is refused before TensorRT is even imported
        self.engines: EngineFolder = open_engine_folder(self.folder, self.manifest, self.graphs, engines, target)
        from .toolchain import gpu_info, import_cudart, require_tensorrt, tensorrt_version

        self.trt = require_tensorrt(self.engines.target, str(self.folder))
        self.cudart = import_cudart()
        gpu, cc = gpu_info()
        self.warnings = self.engines.check_device(tensorrt_version(self.trt), gpu, cc)
        self._runtime = self.trt.Runtime(self.trt.Logger(self.trt.Logger.WARNING))
        self._engines: dict[str, Engine] = {}
        self.stream = _check(self.cudart, self.cudart.cudaStreamCreate())

    def engine(self, graph: str) -> Engine:
        """The engine playing `graph` (encode, step, readout, loop, unrolled), deserialized on first use."""
        if graph not in self._engines:
            path = self.engines.engine_file(graph)
            engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
            if engine is None:
                raise InputError(f"TensorRT could not load engine {path.name}", "rebuild the engines on this device")
            self._engines[graph] = Engine(self.trt, self.cudart, engine, graph, self.stream)
        return self._engines[graph]

    @property
    def max_batch(self) -> int | None:
        return self.engines.max_batch

    def inputs_of(self, graph: str) -> set[str]:
        return set(self.engine(graph).inputs)

    def outputs_of(self, graph: str) -> list[str]:
        return list(self.engine(graph).outputs)

    def _call(self, graph: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        eng = self.engine(graph)
        out = eng({n: eng.upload(n, v) for n, v in feeds.items() if n in eng.inputs})
        return [out[n].to_host() for n in eng.outputs]

    def _stepper(self, x: np.ndarray) -> tuple[EngineStep, None]:
        return EngineStep(self.engine("step"), self.state_names, x, self.initial_state(x)), None


def describe_engines(artefact: str | Path, engines: str | Path, variant: str | None = None) -> dict[str, Any]:
    """What an engine folder holds and whether it belongs to the artefact (host-side only: no TensorRT needed)."""
    runner = HostRunner(artefact, variant)
    try:
        folder = open_engine_folder(runner.folder, runner.manifest, runner.graphs, engines, None)
    except EdgekitError as e:
        return {"engines": str(engines), "usable": False, "problem": str(e)}
    return {"engines": str(engines), "usable": True, **folder.describe()}
