"""The host loop's step calls on the CUDA provider with the recursion state kept on the GPU.

`PlainStep` on a GPU provider feeds numpy arrays, so every step copies the whole state host -> device -> host.
`DeviceBoundStep` keeps it in two device buffer sets (onnxruntime OrtValues on "cuda") that ping-pong through IO
binding, as `BoundStep` does with host buffers on the CPU provider: a step reads one set and writes the other, and
only the halting signal (one number per sample, bound to a host buffer) comes back. The state is copied to the host
when it is read (the readout of samples that halt), and compaction goes through the host: survivors are packed
there and uploaded into fresh buffers of the smaller batch (buffers come from onnxruntime's CUDA arena, so this
costs copies, not allocations from the driver). The encoded input `x` is uploaded once per batch.

Written against onnxruntime's Python API (OrtValue.ortvalue_from_shape_and_type, update_inplace, numpy;
IOBinding.bind_ortvalue_input / bind_ortvalue_output; InferenceSession.run_with_iobinding). It needs
onnxruntime-gpu and a GPU: its host-side logic is tested with a fake session here, the GPU path was not run here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import onnxruntime as ort

_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}
# providers whose kernels read and write CUDA device memory, so device OrtValues bind without copies
_ON_CUDA = ("CUDAExecutionProvider", "TensorrtExecutionProvider")


class DeviceBoundStep:
    """Step-graph state in two device buffer sets, run through IO binding. `step()` returns the halting signal
    (a host array, valid until the next `step`); `state` copies the current set to the host, once per step."""

    def __init__(
        self, session: Any, run: Callable[[Any, int], None], names: list[str], tails: list[tuple[int, ...]],
        dtype: np.dtype, x_tail: tuple[int, ...], x_dtype: np.dtype, signal_tail: tuple[int, ...],
        signal_dtype: np.dtype, device_id: int,
    ) -> None:  # fmt: skip
        self.session, self._run, self._names = session, run, names
        self._tails, self._dtype, self._x_tail, self._x_dtype = tails, dtype, x_tail, x_dtype
        self._sig_tail, self._sig_dtype, self.device_id = signal_tail, signal_dtype, device_id
        self._wanted = {i.name for i in session.get_inputs()}
        self._outputs = [o.name for o in session.get_outputs()]
        self.n = 0
        self._cur = 0  # the buffer set holding the current state
        self._host: list[np.ndarray] | None = None  # the current state on the host, once read
        self._x_host = np.empty((0, *x_tail), x_dtype)
        self._sets: tuple[list[Any], list[Any]] = ([], [])
        self._x: Any = None
        self._sig: tuple[np.ndarray, np.ndarray] = (np.empty(0), np.empty(0))
        self._io: list[Any] = []
        self._keep_alive: list[Any] = []

    @classmethod
    def for_session(
        cls, session: Any, run: Callable[[Any, int], None], names: list[str], x: np.ndarray,
        state: list[np.ndarray],
    ) -> DeviceBoundStep | None:  # fmt: skip
        """A device-bound stepper loaded with `x` and `state`, or None where it cannot bind: the step graph does not
        run on a CUDA provider, this onnxruntime cannot make device OrtValues, or the graph's declared outputs do
        not pin the buffers (state outputs of the state's dtype, a signal of known dtype and fixed tail)."""
        got = list(session.get_providers())
        if not got or got[0] not in _ON_CUDA:
            return None
        if not all(hasattr(ort.OrtValue, f) for f in ("ortvalue_from_shape_and_type", "update_inplace")):
            return None
        outs = session.get_outputs()
        if len(outs) != len(names) + 1 or len(state) != len(names):
            return None
        for o, s in zip(outs, state):
            if _DTYPES.get(o.type) != s.dtype:
                return None
        sig_dtype, sig_shape = _DTYPES.get(outs[-1].type), list(outs[-1].shape or [])
        if sig_dtype is None or not sig_shape or not all(isinstance(d, int) and d > 0 for d in sig_shape[1:]):
            return None
        try:
            device_id = int(session.get_provider_options().get(got[0], {}).get("device_id", 0))
        except (AttributeError, TypeError, ValueError):
            device_id = 0
        stepper = cls(
            session, run, names, [tuple(s.shape[1:]) for s in state], state[0].dtype if state else x.dtype,
            tuple(x.shape[1:]), x.dtype, tuple(sig_shape[1:]), np.dtype(sig_dtype), device_id,
        )  # fmt: skip
        stepper.load(x, state)
        return stepper

    # -- buffers ------------------------------------------------------------------------------------------------
    def _device(self, shape: tuple[int, ...], dtype: np.dtype) -> Any:
        return ort.OrtValue.ortvalue_from_shape_and_type(list(shape), dtype.type, "cuda", self.device_id)

    def _allocate(self, n: int) -> None:
        """Both device sets, the device input and the host signal buffers for a batch of `n`, bound."""
        self.n = n
        self._io, self._keep_alive = [], []  # bindings go first: they hold the buffers they bind
        self._sets = (
            [self._device((n, *t), self._dtype) for t in self._tails],
            [self._device((n, *t), self._dtype) for t in self._tails],
        )
        self._x = self._device((n, *self._x_tail), self._x_dtype)
        self._sig = (np.empty((n, *self._sig_tail), self._sig_dtype), np.empty((n, *self._sig_tail), self._sig_dtype))
        for src in (0, 1):
            io = self.session.io_binding()
            dst = 1 - src
            for name, v in zip(self._names, self._sets[src]):
                if name in self._wanted:
                    io.bind_ortvalue_input(name, v)
            if "x" in self._wanted:
                io.bind_ortvalue_input("x", self._x)
            signal = ort.OrtValue.ortvalue_from_numpy(self._sig[dst])  # the only output that comes to the host
            self._keep_alive.append(signal)
            for name, v in zip(self._outputs, [*self._sets[dst], signal]):
                io.bind_ortvalue_output(name, v)
            self._io.append(io)

    def _upload(self, x: np.ndarray, state: list[np.ndarray]) -> None:
        """x and state (anything that broadcasts to the batch) into the device input and the current set."""
        n = self.n
        self._x_host = np.ascontiguousarray(x, self._x_dtype)
        self._x.update_inplace(self._x_host)
        for v, s, t in zip(self._sets[self._cur], state, self._tails):
            v.update_inplace(np.ascontiguousarray(np.broadcast_to(s, (n, *t)), self._dtype))
        self._host = None

    # -- the stepper protocol -----------------------------------------------------------------------------------
    def load(self, x: np.ndarray, state: list[np.ndarray]) -> None:
        """Start a batch: x and its initial state to the device (buffers reused when the batch size is the same)."""
        n = len(x)
        assert n > 0, "an empty batch"
        if n != self.n:
            self._allocate(n)
        self._upload(x, state)

    @property
    def state(self) -> list[np.ndarray]:
        """The current state on the host (copied from the device the first time it is read after a step)."""
        if self._host is None:
            self._host = [np.asarray(v.numpy()) for v in self._sets[self._cur]]
        return self._host

    def step(self) -> np.ndarray:
        self._run(self._io[self._cur], self.n)
        self._cur ^= 1
        self._host = None
        return self._sig[self._cur]

    def compact(self, keep: np.ndarray) -> None:
        """Drop the samples where `keep` is False: survivors packed on the host, uploaded into buffers of their
        number (rare next to steps: at most once per step in which a sample halts)."""
        rows = np.flatnonzero(keep)
        if len(rows) == self.n:
            return
        assert len(rows) > 0, "compaction to an empty batch"
        packed, x = [s[rows] for s in self.state], self._x_host[rows]
        self._cur = 0
        self._allocate(len(rows))
        self._upload(x, packed)
