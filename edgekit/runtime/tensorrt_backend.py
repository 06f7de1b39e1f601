"""Run an artefact's TensorRT engines: the step engine under a host loop (encode once, step K times, read out), or a
single unrolled / Loop engine. Same contract and result as the onnxruntime Runner, so validation code can use either.

Imports tensorrt and cuda-python lazily (never torch). Before loading, the engine manifest is checked against the
TensorRT and GPU present: engines built elsewhere are refused (IncompatibleError, exit 6), because a plan built for
another GPU or TensorRT release fails to deserialize or, worse, runs untuned.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from ..errors import InputError
from ..tensorrt.engine_manifest import engine_dir, read_manifest, verify
from ..tensorrt.toolchain import gpu_info, import_cudart, require_tensorrt, tensorrt_version
from . import Runner, RunResult  # the package API, stable while runner.py changes

if TYPE_CHECKING:
    from . import Solution

SINGLE_GRAPH_FORMS = ("unrolled", "loop")  # inputs -> logits[, halt] after the whole budget


def _check(cudart: Any, result: Any) -> Any:
    """cuda-python returns (err, *values); raise on an error, return the values."""
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        name = cudart.cudaGetErrorName(err)[1] if hasattr(cudart, "cudaGetErrorName") else err
        raise RuntimeError(f"CUDA error {name}")
    return rest[0] if len(rest) == 1 else rest


class DeviceArray:
    """A device buffer with a shape and dtype; freed when dropped."""

    def __init__(self, cudart: Any, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.cudart, self.shape, self.dtype = cudart, tuple(int(d) for d in shape), np.dtype(dtype)
        self.nbytes = int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize
        self.ptr = _check(cudart, cudart.cudaMalloc(max(self.nbytes, 1)))

    @classmethod
    def from_host(cls, cudart: Any, host: np.ndarray) -> DeviceArray:
        host = np.ascontiguousarray(host)
        arr = cls(cudart, host.shape, host.dtype)
        _check(cudart, cudart.cudaMemcpy(arr.ptr, host, arr.nbytes, cudart.cudaMemcpyKind.cudaMemcpyHostToDevice))
        return arr

    def to_host(self) -> np.ndarray:
        host = np.empty(self.shape, self.dtype)
        _check(
            self.cudart,
            self.cudart.cudaMemcpy(host, self.ptr, self.nbytes, self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost),
        )
        return host

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown: the CUDA context may already be gone
            self.cudart.cudaFree(self.ptr)


class _Engine:
    """One deserialized engine with its execution context; calls take and return device arrays by tensor name."""

    def __init__(self, trt: Any, cudart: Any, engine: Any, name: str) -> None:
        self.trt, self.cudart, self.engine, self.name = trt, cudart, engine, name
        self.context = engine.create_execution_context()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self.inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.dtypes = {n: np.dtype(trt.nptype(engine.get_tensor_dtype(n))) for n in names}

    def host_input(self, name: str, host: np.ndarray) -> DeviceArray:
        """Copy a host array to the device in the dtype the engine declares (e.g. int64 tokens, float32 states)."""
        return DeviceArray.from_host(self.cudart, np.asarray(host).astype(self.dtypes[name], copy=False))

    def __call__(self, feeds: dict[str, DeviceArray], stream: Any) -> dict[str, DeviceArray]:
        for n in self.inputs:
            if n not in feeds:
                raise InputError(
                    f"engine {self.name!r} needs input {n!r}, which the host loop does not have",
                    "rebuild the engines from this artefact",
                )
            arr = feeds[n]
            if arr.dtype != self.dtypes[n]:
                raise InputError(
                    f"engine {self.name!r} input {n!r} is {self.dtypes[n]}, got {arr.dtype}",
                    "rebuild the engines from this artefact",
                )
            self.context.set_input_shape(n, arr.shape)
            self.context.set_tensor_address(n, arr.ptr)
        outs = {}
        for n in self.outputs:
            outs[n] = DeviceArray(self.cudart, tuple(self.context.get_tensor_shape(n)), self.dtypes[n])
            self.context.set_tensor_address(n, outs[n].ptr)
        if not self.context.execute_async_v3(stream):
            raise RuntimeError(f"TensorRT failed to run engine {self.name!r}")
        _check(self.cudart, self.cudart.cudaStreamSynchronize(stream))
        return outs


class TensorRTRunner:
    """`TensorRTRunner(artefact, target).run(inputs)` / `.solve(inputs, mode)`: the onnxruntime Runner's contract,
    on engines in <artefact>/engines/<target>/ (built by `edgekit build` or the `edgekit plan` script)."""

    def __init__(
        self,
        artefact: str | Path,
        target: str | None = None,
        engines: str | Path | None = None,
        variant: str = "float32",
    ) -> None:
        self.folder = Path(artefact)
        manifest_path = self.folder / "manifest.json"
        if not manifest_path.is_file():
            raise InputError(
                f"{self.folder} has no manifest.json", "pass an artefact folder written by `edgekit export`"
            )
        from .errors import ArtefactError
        from .manifest import read_manifest as read_artefact_manifest

        try:
            self.manifest = read_artefact_manifest(self.folder)  # the strict reader every command uses
        except ArtefactError as e:
            raise InputError(str(e)) from None
        self.graph = self.manifest["graph"]
        if "puzzle_ids" in self.graph:  # not wired here: nothing untested is called done (no TensorRT on our CI)
            raise InputError(
                "this artefact takes puzzle identifiers (ARC), which the direct TensorRT runner does not feed yet",
                "use edgekit.runtime.Runner with providers=['tensorrt'] (onnxruntime's TensorRT provider)",
            )
        self.state_names: list[str] = self.graph["state_names"]
        self.family: str = self.manifest["model"]["family"]
        self.solver: dict[str, Any] = (
            self.manifest["model"].get("config", {}).get("solver", {}) if self.family == "deq" else {}
        )
        # role (encode/step/readout/loop/unrolled) -> manifest "files" key, per precision variant
        variants = self.manifest.get("variants") or {
            "float32": {r: r for r in ("encode", "step", "readout", *SINGLE_GRAPH_FORMS)}
        }
        if variant not in variants:
            raise InputError(f"artefact has no variant {variant!r}", f"use one of {', '.join(variants)}")
        self.roles: dict[str, str] = dict(variants[variant])
        self.engine_dir = Path(engines) if engines else engine_dir(self.folder, target or self._only_target())
        self.trt = require_tensorrt(target, str(self.folder))
        self.cudart = import_cudart()
        self.engine_manifest = read_manifest(self.engine_dir)
        gpu, cc = gpu_info()
        self.warnings = verify(self.engine_manifest, tensorrt_version(self.trt), gpu, cc, self.engine_dir)
        self._runtime = self.trt.Runtime(self.trt.Logger(self.trt.Logger.WARNING))
        self._engines: dict[str, _Engine] = {}
        self.stream = _check(self.cudart, self.cudart.cudaStreamCreate())

    def _only_target(self) -> str:
        found = sorted(p.name for p in (self.folder / "engines").glob("*") if p.is_dir())
        if len(found) != 1:
            raise InputError(
                f"{self.folder}/engines holds engines for {found or 'no target'}",
                "name the target (TensorRTRunner(artefact, target=...))",
            )
        return found[0]

    def engine(self, role: str) -> _Engine:
        """The engine playing `role`, deserialized on first use."""
        if role not in self._engines:
            key = self.roles.get(role, role)
            entry = self.engine_manifest["engines"].get(key)
            if entry is None:
                raise InputError(
                    f"no {role} engine in {self.engine_dir}", f"export the {role} graph and rebuild the engines"
                )
            engine = self._runtime.deserialize_cuda_engine((self.engine_dir / entry["file"]).read_bytes())
            if engine is None:
                raise InputError(
                    f"TensorRT could not load engine {entry['file']}", "rebuild the engines on this device"
                )
            self._engines[role] = _Engine(self.trt, self.cudart, engine, role)
        return self._engines[role]

    def check_inputs(self, inputs: np.ndarray) -> np.ndarray:
        """The artefact's input contract, exactly as the onnxruntime Runner enforces it (it reads only self.graph)."""
        return Runner.check_inputs(self, inputs)  # type: ignore[arg-type]

    # -- pieces of the host loop ------------------------------------------------------------------------------------
    def _encode(self, x_in: np.ndarray) -> DeviceArray:
        enc = self.engine("encode")
        out = enc({"inputs": enc.host_input("inputs", x_in)}, self.stream)
        return out["x"] if "x" in out else out[enc.outputs[0]]

    def _initial_state(self, x: DeviceArray) -> list[DeviceArray]:
        init = self.graph["initial_state"]
        step = self.engine("step")
        if init["kind"] == "zeros":
            host = [np.zeros((x.shape[0], *init["shape"]), dtype=np.float32)]
        else:
            vecs = np.load(self.folder / self.manifest["files"]["initial_state"])
            host = [
                np.ascontiguousarray(np.broadcast_to(vecs[n].astype(np.float32), x.shape)) for n in self.state_names
            ]
        return [step.host_input(n, h) for n, h in zip(self.state_names, host)]

    def _step(self, state: list[DeviceArray], x: DeviceArray) -> tuple[list[DeviceArray], np.ndarray]:
        """One step on the device; only the halting logit / residual comes back to the host."""
        step = self.engine("step")
        out = step({**dict(zip(self.state_names, state)), "x": x}, self.stream)
        new = [out[f"{n}_next"] if f"{n}_next" in out else out[step.outputs[i]] for i, n in enumerate(self.state_names)]
        extra = "residual" if self.family == "deq" else "halt"
        return new, (out[extra] if extra in out else out[step.outputs[-1]]).to_host()

    def _readout(self, state: list[DeviceArray]) -> list[np.ndarray]:
        eng = self.engine("readout")
        out = eng({n: a for n, a in zip(self.state_names, state) if n in eng.inputs}, self.stream)
        return [out[n].to_host() for n in eng.outputs]

    # -- validation path: every step, recorded --------------------------------------------------------------------
    def run(self, inputs: np.ndarray, steps: int | None = None, record: bool = True) -> RunResult:
        """Run `steps` steps (default: the budget) for every sample, recording per-step predictions and halting
        logits / residuals, as Runner.run does on onnxruntime."""
        x_in = self.check_inputs(inputs)
        steps = steps or self.graph["step_budget"]
        x = self._encode(x_in)
        state = self._initial_state(x)
        res = RunResult()
        for _ in range(steps):
            state, extra = self._step(state, x)
            (res.residual if self.family == "deq" else res.halt).append(extra)
            if record:
                logits = self._readout(state)[0]
                res.preds.append(logits.argmax(-1))
                res.logits = logits
        res.steps = np.full(x_in.shape[0], steps)
        return res

    # -- deployment path ------------------------------------------------------------------------------------------
    def solve(
        self, inputs: np.ndarray, mode: str = "host", max_steps: int | None = None, threshold: float | None = None
    ) -> Solution:
        """Answer a batch (a runtime Solution). host: step engine with per-sample halting (a sample's answer is the
        readout at its halting step; states stay on the device); loop / unrolled: one engine run."""
        from . import Solution  # lazily: the Solution type arrives with the runtime's deployment path

        x_in = self.check_inputs(inputs)
        threshold_arg = threshold
        cap, threshold = Runner.limits(self, max_steps, threshold)  # type: ignore[arg-type]  # same manifest fields
        n = len(x_in)
        if mode in SINGLE_GRAPH_FORMS:
            eng = self.engine(mode)
            feeds = {"inputs": eng.host_input("inputs", x_in)}
            if mode == "loop":
                limit = "tol" if self.family == "deq" else "halt_threshold"
                asked: dict[str, tuple[float | None, np.ndarray]] = {
                    "max_steps": (max_steps, np.array(cap, np.int64)),
                    limit: (threshold_arg, np.array(threshold, np.float32)),
                }
                for name, (given, value) in asked.items():
                    if name in eng.inputs:
                        feeds[name] = eng.host_input(name, value)
                    elif given is not None:  # an ONNX input with a default is a build-time constant in TensorRT
                        raise InputError(
                            f"the loop engine has {name} built in (its ONNX default)",
                            "use mode='host' to choose it per call, or re-export without the default",
                        )
            out = {k: v.to_host() for k, v in eng(feeds, self.stream).items()}
            steps = out.get("steps", np.full(n, self.graph.get("unrolled_steps", cap)))
            return Solution(out["logits"], steps, out.get("done", np.zeros(n, bool)), out.get("halt"))
        if mode != "host":
            raise InputError(f"unknown mode {mode!r}", f"use one of host, {', '.join(SINGLE_GRAPH_FORMS)}")
        if self.family == "deq" and self.solver.get("name") == "anderson":
            raise InputError(
                "Anderson acceleration needs the host-side mixing step, not yet on TensorRT engines",
                "use mode='loop' with a loop engine, or the onnxruntime Runner",
            )
        x = self._encode(x_in)
        state = self._initial_state(x)
        steps, done = np.full(n, cap, np.int64), np.zeros(n, bool)
        answers: list[np.ndarray | None] = [None, None]
        for t in range(1, cap + 1):
            state, signal = self._step(state, x)
            stop = (signal <= threshold) if self.family == "deq" else (signal > threshold)
            finish = (stop & ~done) | ((t == cap) & ~done)
            if finish.any():
                head = self._readout(state)
                for i, h in enumerate(head[:2]):
                    a = answers[i]
                    if a is None:
                        a = answers[i] = np.empty_like(h)
                    a[finish] = h[finish]
                steps[stop & ~done] = t
                done |= stop
            if done.all():
                break
        # answers[0] is set once cap >= 1 (the last step finishes every sample still running); max_steps <= 0 is
        # not refused here, and then it stays None as before
        return Solution(cast(np.ndarray, answers[0]), steps, done, answers[1] if self.family != "deq" else None)
