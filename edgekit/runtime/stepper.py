"""The host loop's step-graph calls, behind one interface with two implementations.

`PlainStep` feeds numpy arrays to `session.run` and gets new ones back: any provider, any graph.
`BoundStep` (CPU provider) keeps the recursion state in two preallocated buffer sets that ping-pong through
onnxruntime IO binding: a step reads one set and writes the other in place, so it is one `run_with_iobinding`
call with no feeds dict, no output allocation and no copies. Compaction (halted samples leave the batch) packs
the survivors into the idle set's leading rows and rebinds. On a 2-core AMD EPYC at batch 1 the host loop's time
outside onnxruntime went from 175 to 134 us per puzzle with this (benchmarks/runtime_limits.py, one noisy run);
the answers are bit-identical, the kernels being the same.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import onnxruntime as ort

_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}


class Stepper(Protocol):
    """The recursion state of a batch and the step graph that advances it."""

    @property
    def state(self) -> list[np.ndarray]: ...

    def step(self) -> np.ndarray:
        """Advance every sample one step; returns the halting signal (ACT logit or DEQ residual)."""
        ...

    def compact(self, keep: np.ndarray) -> None:
        """Drop the samples where `keep` is False."""
        ...


class PlainStep:
    def __init__(
        self, call: Callable[[str, dict[str, np.ndarray]], list[np.ndarray]], names: list[str], state: list[np.ndarray],
        x: np.ndarray,
    ) -> None:  # fmt: skip
        self._call, self._names, self._state, self._x = call, names, state, x

    @property
    def state(self) -> list[np.ndarray]:
        return self._state

    def step(self) -> np.ndarray:
        out = self._call("step", {**dict(zip(self._names, self._state)), "x": self._x})
        self._state = out[:-1]
        return out[-1]

    def compact(self, keep: np.ndarray) -> None:
        self._state, self._x = [s[keep] for s in self._state], self._x[keep]


class BoundStep:
    """Step-graph state in two preallocated buffer sets, run through IO binding. `state` and the signal
    `step` returns are views of the buffers: valid until the next `step` or `compact`."""

    def __init__(
        self, session: Any, run: Callable[[Any, int], None], names: list[str], tails: list[tuple[int, ...]],
        dtype: np.dtype, x_tail: tuple[int, ...], signal_tail: tuple[int, ...], signal_dtype: np.dtype,
        capacity: int,
    ) -> None:  # fmt: skip
        self.session, self._run, self._names = session, run, names
        self._wanted = {i.name for i in session.get_inputs()}
        self._outputs = [o.name for o in session.get_outputs()]
        self.capacity = self.n = capacity
        self._bufs = tuple([np.empty((capacity, *t), dtype) for t in tails] for _ in range(2))
        self._sig = tuple(np.empty((capacity, *signal_tail), signal_dtype) for _ in range(2))
        self._xs = tuple(np.empty((capacity, *x_tail), dtype) for _ in range(2))
        self._x = self._xs[0]
        self._cur = 0  # the buffer set holding the current state
        self._bind()

    @classmethod
    def for_session(
        cls, session: Any, run: Callable[[Any, int], None], names: list[str], x: np.ndarray,
        state: list[np.ndarray],
    ) -> BoundStep | None:  # fmt: skip
        """A bound stepper sized like `state`, or None where the graph's declared outputs do not pin the buffers
        (then the plain path runs): state outputs of the state's dtype, a signal of known dtype and fixed tail."""
        outs = session.get_outputs()
        if len(outs) != len(names) + 1:
            return None
        for o, s in zip(outs, state):
            if _DTYPES.get(o.type) != s.dtype:
                return None
        sig_dtype, sig_shape = _DTYPES.get(outs[-1].type), list(outs[-1].shape or [])
        if sig_dtype is None or not sig_shape or not all(isinstance(d, int) and d > 0 for d in sig_shape[1:]):
            return None
        tails = [tuple(s.shape[1:]) for s in state]
        stepper = cls(
            session, run, names, tails, x.dtype, tuple(x.shape[1:]), tuple(sig_shape[1:]), np.dtype(sig_dtype), len(x)
        )
        stepper.load(x, state)
        return stepper

    def _bind(self) -> None:
        n, ov = self.n, ort.OrtValue.ortvalue_from_numpy
        x = ov(self._x[:n])
        self._io, self._keep_alive = [], [x]
        for src in (0, 1):
            io = self.session.io_binding()
            dst = 1 - src
            for name, b in zip(self._names, self._bufs[src]):
                if name in self._wanted:
                    v = ov(b[:n])
                    self._keep_alive.append(v)
                    io.bind_ortvalue_input(name, v)
            if "x" in self._wanted:
                io.bind_ortvalue_input("x", x)
            for name, b in zip(self._outputs, [*self._bufs[dst], self._sig[dst]]):
                v = ov(b[:n])
                self._keep_alive.append(v)
                io.bind_ortvalue_output(name, v)
            self._io.append(io)

    def load(self, x: np.ndarray, state: list[np.ndarray]) -> None:
        """Start a batch of up to `capacity` samples (state broadcast into the buffers, no allocation)."""
        n = len(x)
        assert 0 < n <= self.capacity, "a batch larger than the buffers"
        if n != self.n:
            self.n = n
            self._bind()
        self._x[:n] = x
        for b, s in zip(self._bufs[self._cur], state):
            b[:n] = s

    @property
    def state(self) -> list[np.ndarray]:
        return [b[: self.n] for b in self._bufs[self._cur]]

    def step(self) -> np.ndarray:
        self._run(self._io[self._cur], self.n)
        self._cur ^= 1
        return self._sig[self._cur][: self.n]

    def compact(self, keep: np.ndarray) -> None:
        n, rows = self.n, np.flatnonzero(keep)
        k = len(rows)
        src, dst = self._bufs[self._cur], self._bufs[1 - self._cur]
        x = self._xs[1] if self._x is self._xs[0] else self._xs[0]
        # take(mode="clip") writes straight into `out`; the default mode buffers it first (3.5x slower here)
        for s, d in zip([*src, self._x], [*dst, x]):
            np.take(s[:n], rows, axis=0, out=d[:k], mode="clip")
        self._x = x
        self._cur ^= 1
        self.n = k
        self._bind()
