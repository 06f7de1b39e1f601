"""The onnxruntime backend of the host loop (runtime/base.py): one InferenceSession per graph of a variant, on the
execution providers asked for, and the CPU provider's IO-bound step loop (runtime/stepper.py).

A requested provider either runs or fails loudly: after each session is created the providers it really got are
checked (runtime/providers.py), never assumed.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from ..errors import first_line
from .base import DEFAULT_CHUNK, MODES, HostRunner, RunResult, Solution
from .errors import ArtefactError, RuntimeInputError
from .memory import DEFAULT_MEMORY_BUDGET
from .providers import ProviderError, ProviderSettings, artefact_key, check_session, options_for_graph, resolve
from .stepper import BoundStep, PlainStep, Stepper

__all__ = ["DEFAULT_CHUNK", "MODES", "RunResult", "Runner", "Solution"]


class Runner(HostRunner):
    """One artefact variant on onnxruntime. `providers` takes short names ("cpu", "cuda", "tensorrt"; see
    `edgekit.runtime.providers`) or onnxruntime provider names; a requested provider that onnxruntime cannot
    create is an error (`allow_fallback=True`: a warning in `self.warnings`)."""

    backend = "onnxruntime"

    def __init__(
        self,
        artefact: str | Path,
        variant: str | None = None,
        threads: int | None = None,
        providers: list[str] | None = None,
        device_id: int = 0,
        fp16: bool = False,
        cache_dir: str | Path | None = None,
        chunk_size: int = DEFAULT_CHUNK,
        complete: bool = True,
        allow_fallback: bool = False,
        tf32: bool | None = None,
        memory_budget: int = DEFAULT_MEMORY_BUDGET,
    ) -> None:
        super().__init__(artefact, variant, chunk_size, complete, memory_budget)
        raw = (self.folder / "manifest.json").read_bytes()
        self.opts = ort.SessionOptions()
        self.opts.log_severity_level = 3  # the Loop form's overridable defaults trigger a harmless warning
        # The host loop alternates between sessions (encode, step, readout), each with its own intra-op pool; a pool
        # that keeps spin-waiting after its call steals the cores the next session needs. Spinning inside a call
        # (between its ops) is kept, and stopped when the call returns: on a 2-core CPU the deployed host loop at
        # batch 1 is 1.58x faster than onnxruntime's default, and the step graph alone as fast
        # (benchmarks/runtime_limits.py; turning spinning off altogether slows the step graph alone 1.45x).
        self.opts.add_session_config_entry("session.force_spinning_stop", "1")
        # The memory pattern plans a block per input shape beside the arena's own: solving two chunks of 256 demo
        # puzzles peaked at 1,151 MB with it, 657 MB without, and it bought no speed (batch 1 and 64, step graph
        # and host loop: benchmarks/mem_pattern.py).
        self.opts.enable_mem_pattern = False
        if threads:
            self.opts.intra_op_num_threads = threads
        self.settings = ProviderSettings(
            device_id=device_id,
            fp16=fp16,
            cache_dir=Path(cache_dir) if cache_dir else None,
            artefact_key=artefact_key(raw),
            allow_fallback=allow_fallback,
            tf32=tf32,
        )
        try:
            self.providers, self.provider_options = resolve(providers, self.settings)
        except ProviderError as e:
            raise RuntimeInputError(str(e)) from None
        self._sessions: dict[str, ort.InferenceSession] = {}
        # The host loop's step calls go through IO binding on the CPU provider (runtime/stepper.py); False runs
        # them through session.run as other providers do (benchmarks compare the two).
        self.bind_steps = True
        self._bound: dict[int, Any] = {}  # IO-bound steppers per starting batch size, reused across solve calls
        self._inputs: dict[str, set[str]] = {}
        self.warnings: list[str] = []  # a requested provider that did not start, with --allow-fallback
        self.on_warning: Callable[[str], None] | None = None  # told each new warning as it arises (the CLI prints)

    # -- sessions -------------------------------------------------------------------------------------------------
    def session(self, graph: str) -> ort.InferenceSession:
        if graph not in self._sessions:
            path = self.graph_path(graph)
            self._open(graph, str(path), path.name)
        return self._sessions[graph]

    def _open(self, graph: str, model: str | bytes, name: str) -> None:
        sess = self._sessions[graph] = self._create(model, name, self._declared_inputs(model))
        # Exporters drop unused inputs (TRM's readout reads z_H only), so feed each graph just what it declares; the
        # Loop form's step cap and threshold are inputs with defaults (overridable initializers), fed when given.
        self._inputs[graph] = {i.name for i in sess.get_inputs()} | {
            i.name for i in sess.get_overridable_initializers()
        }

    def _declared_inputs(self, model: str | bytes) -> dict[str, list[int | str]]:
        """Input name -> declared shape, read only where a provider needs the shapes before the session exists (the
        TensorRT provider's optimization profiles): a CPU session with graph optimizations off, for its metadata."""
        if "TensorrtExecutionProvider" not in self.providers:
            return {}
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        meta = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
        return {i.name: list(i.shape) for i in meta.get_inputs()}

    def _create(self, model: str | bytes, name: str, inputs: dict[str, list[int | str]]) -> ort.InferenceSession:
        """A session on the requested providers, then the check that it got them (never a silent fallback)."""
        options = options_for_graph(self.providers, self.provider_options, inputs, self.max_batch or self.chunk_size)
        try:
            with warnings.catch_warnings():  # onnxruntime's own fallback warning: check_session says it in one line
                warnings.simplefilter("ignore")
                sess = ort.InferenceSession(model, self.opts, providers=self.providers, provider_options=options)
        except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
            raise ArtefactError(
                f"{name} cannot be loaded by onnxruntime ({first_line(e)}): re-run `edgekit export`"
            ) from None
        try:
            for w in check_session(sess, self.providers, self.settings):
                if w not in self.warnings:
                    self.warnings.append(w)
                    if self.on_warning is not None:
                        self.on_warning(w)
        except ProviderError as e:
            raise RuntimeInputError(str(e)) from None
        return sess

    def override(self, graph: str, model: bytes) -> None:
        """Use an in-memory graph in place of the artefact's (e.g. a candidate step graph being scored)."""
        self._open(graph, model, f"the {graph} graph given")
        self._bound.clear()

    def _call(self, graph: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        sess = self.session(graph)
        wanted = self._inputs[graph]
        out: list[np.ndarray] = sess.run(None, {k: v for k, v in feeds.items() if k in wanted})
        return out

    def inputs_of(self, graph: str) -> set[str]:
        self.session(graph)
        return self._inputs[graph]

    def outputs_of(self, graph: str) -> list[str]:
        return [o.name for o in self.session(graph).get_outputs()]

    @property
    def max_batch(self) -> int | None:
        """With the TensorRT provider every call stays within its optimization profiles (batch 1..chunk_size), so
        no batch size ever makes it build another engine; onnxruntime's own providers take any batch."""
        return self.chunk_size if "TensorrtExecutionProvider" in self.providers else None

    def _run_bound(self, binding: Any, n: int) -> None:
        """One step-graph call on `n` samples through an IO binding (the bound host loop's only graph call)."""
        self._sessions["step"].run_with_iobinding(binding)

    def _stepper(self, x: np.ndarray) -> tuple[Stepper, int | None]:
        """The step calls for a batch starting at `x`: a cached bound stepper where the CPU provider runs the step
        graph (taken out of the cache while in use, so concurrent solves never share buffers), else plain."""
        sess = self.session("step")
        n = len(x)
        bound = self._bound.pop(n, None) if self.bind_steps else None
        if bound is not None and bound.session is sess:
            bound.load(x, self._initial_parts(x))
            return bound, n
        kind = self._bound_kind(sess)
        if kind is not None:
            bound = kind.for_session(  # the run hook looked up per call, so a wrapper added later sees it
                sess, lambda io, n: self._run_bound(io, n), self.state_names, x, self.initial_state(x)
            )
            if bound is not None:
                return bound, n
        return PlainStep(self._call, self.state_names, self.initial_state(x), x), None

    def _bound_kind(self, sess: ort.InferenceSession) -> Any:
        """Which IO-bound stepper fits the provider running the step graph: host buffers on the CPU provider,
        device buffers on the CUDA provider (the state never leaves the GPU between steps); None: plain calls."""
        if not self.bind_steps:
            return None
        got = sess.get_providers()
        if got == ["CPUExecutionProvider"]:
            return BoundStep
        if got[0] == "CUDAExecutionProvider":
            from .device_step import DeviceBoundStep

            return DeviceBoundStep
        return None

    def _release(self, stepper: Stepper, key: int | None) -> None:
        if key is not None:  # only IO-bound steppers have a key: their buffers serve the next batch of that size
            self._bound[key] = stepper
            while len(self._bound) > 2:  # a few batch sizes' buffers at most
                self._bound.pop(next(iter(self._bound)))
