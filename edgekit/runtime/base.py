"""The one host loop every runtime backend shares: numpy only, no torch, no graph runtime.

The manifest says which graphs exist (per precision variant), their state layout and the input contract
(dtype, shape, token range), so the loop needs no model-specific code. A backend (onnxruntime sessions in
`runner.py`, TensorRT engines in `tensorrt_backend.py`) implements only the graph calls: `_call` (host arrays in
and out), `inputs_of` (what a graph takes) and optionally `_stepper` (a faster step loop that keeps the state in
its own buffers) and `max_batch` (the largest batch its graphs accept). Everything else lives here once: input
checks, limits, the stopping rule, early halting, batch compaction, chunking, puzzle identifiers and the three ways
to run the recursion:

- ``host``: encode once, call the step graph from a Python loop with per-sample early halting; halted samples
  leave the batch (batch compaction), so compute falls as samples finish. DEQs stop per sample at the
  solver tolerance; Anderson acceleration runs its small least-squares step in numpy.
- ``loop``: the single-graph ONNX Loop form (same per-sample semantics, inside the backend).
- ``unrolled``: a fixed budget of steps in one graph, no halting.

`run` is the validation path: every step for every sample, recording per-step predictions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..manifest import MAX_STEPS, GraphInfo, Manifest, RuntimeDefaults
from ..npyio import load_npz
from ..stopping import Stopping
from .errors import ArtefactError, RuntimeInputError
from .host_loop import anderson_mix, push_history
from .manifest import load_manifest, safe_path
from .memory import DEFAULT_MEMORY_BUDGET, check_graph_file, chunk_for_memory
from .puzzles import PuzzleMap
from .stepper import PlainStep, Stepper


@dataclass
class RunResult:
    """Per-step predictions (argmax) and halting logits / residuals, plus the steps each sample ran."""

    preds: list[np.ndarray] = field(default_factory=list)
    halt: list[np.ndarray] = field(default_factory=list)
    residual: list[np.ndarray] = field(default_factory=list)
    steps: np.ndarray | None = None
    logits: np.ndarray | None = None

    @staticmethod
    def concatenate(parts: list[RunResult]) -> RunResult:
        """One RunResult from consecutive chunks of the same run (same steps per chunk)."""

        def per_step(name: str) -> list[np.ndarray]:
            return [np.concatenate(s) for s in zip(*(getattr(p, name) for p in parts))]

        def cat(name: str) -> np.ndarray | None:
            arrays = [getattr(p, name) for p in parts]
            return None if any(a is None for a in arrays) else np.concatenate(arrays)

        return RunResult(per_step("preds"), per_step("halt"), per_step("residual"), cat("steps"), cat("logits"))


@dataclass
class Solution:
    """The deployed answer: logits and predictions at each sample's halting step (or fixed point), the steps
    (f-evaluations for DEQs) each sample took, and whether it halted / converged before the cap."""

    logits: np.ndarray
    steps: np.ndarray
    done: np.ndarray
    halt: np.ndarray | None = None
    state: np.ndarray | None = None  # first state tensor at the answer (DEQ: the returned fixed point); loop mode

    @property
    def preds(self) -> np.ndarray:
        return np.asarray(self.logits.argmax(-1))

    @staticmethod
    def concatenate(parts: list[Solution]) -> Solution:
        """One Solution from the answers of consecutive chunks."""

        def cat(name: str) -> np.ndarray | None:
            arrays = [getattr(p, name) for p in parts]
            return None if any(a is None for a in arrays) else np.concatenate(arrays)

        logits, steps, done = cat("logits"), cat("steps"), cat("done")
        assert logits is not None and steps is not None and done is not None  # always set by every solve path
        return Solution(logits, steps, done, cat("halt"), cat("state"))


MODES = ("host", "loop", "unrolled")


DEFAULT_CHUNK = 1024  # samples per `solve` call inside one request: bounds memory for large inputs


class HostRunner:
    """One artefact variant behind one host loop; subclasses run the graphs (see the module docstring)."""

    backend = "none"

    def __init__(
        self,
        artefact: str | Path,
        variant: str | None = None,
        chunk_size: int = DEFAULT_CHUNK,
        complete: bool = True,
        memory_budget: int = DEFAULT_MEMORY_BUDGET,
    ) -> None:
        self.folder = Path(artefact)
        self.manifest: Manifest = load_manifest(self.folder, complete=complete)
        self.graph: GraphInfo = self.manifest.graph
        self.family: str = self.manifest.family
        self.state_names: list[str] = list(self.graph.state_names)
        files = self.manifest.files
        variants = self.manifest.variants
        # the artefact's runtime default (written by `edgekit tune --apply`), else the float32 export
        self.defaults: RuntimeDefaults | None = self.manifest.runtime_defaults
        variant = variant or (self.defaults.variant if self.defaults else "float32")
        if self.defaults is not None and self.defaults.variant != variant:
            self.defaults = None  # tuned threshold and cap belong to the tuned variant only
        if variant not in variants:
            raise ArtefactError(f"artefact has no variant {variant!r}; it has: {', '.join(map(str, variants))}")
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise RuntimeInputError(f"chunk_size must be >= 1, got {chunk_size}")
        self.variant = variant
        # samples per graph call: at most `chunk_size`, and few enough that one call's activations stay within
        # `memory_budget` (runtime/memory.py estimates bytes per sample from the manifest: 1 GiB by default, so the
        # ARC demo's 900-cell HRM runs ~27 samples a call where 1,024 would take ~35 GB on an 8 GB Jetson)
        if isinstance(memory_budget, bool) or not isinstance(memory_budget, int) or memory_budget < 1:
            raise RuntimeInputError(f"memory_budget must be a positive number of bytes, got {memory_budget!r}")
        self.chunk_size = min(chunk_size, chunk_for_memory(self.manifest, memory_budget))
        self.graphs: dict[str, str] = {g: key for g, key in variants[variant].roles.items() if key in files}
        self._puzzles: PuzzleMap | None = None
        if self.graph.puzzle_ids is not None and "puzzle_ids" not in files:
            raise ArtefactError("the manifest declares puzzle identifiers but lists no puzzle_ids file")
        self._init_parts: dict[np.dtype, list[np.ndarray]] = {}
        # the one dispatch on how the recursion stops, at the variant's own validated threshold
        self.stopping: Stopping = self.manifest.stopping_of(variant)
        self.solver: dict[str, Any] = self.stopping.settings

    # -- what a backend implements --------------------------------------------------------------------------------
    def _call(self, graph: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run one of the variant's graphs on host arrays (each graph fed only the inputs it declares); outputs in
        the graph's declared order."""
        raise NotImplementedError

    def inputs_of(self, graph: str) -> set[str]:
        """Names of the inputs `graph` takes (a Loop built with its limits inside takes neither)."""
        raise NotImplementedError

    def outputs_of(self, graph: str) -> list[str]:
        """Names of `graph`'s outputs, in the order `_call` returns them."""
        raise NotImplementedError

    @property
    def max_batch(self) -> int | None:
        """The largest batch the backend's graphs accept (a TensorRT profile's maximum), None for no limit."""
        return None

    def _stepper(self, x: np.ndarray) -> tuple[Stepper, Any]:
        """The step calls for a batch starting at `x`, and a key for `_release` (default: plain calls)."""
        return PlainStep(self._call, self.state_names, self.initial_state(x), x), None

    def _release(self, stepper: Stepper, key: Any) -> None:
        """Hand a stepper back after a solve (a backend may keep its buffers for the next batch)."""

    # -- shared -----------------------------------------------------------------------------------------------------
    def validated_settings(self) -> HostRunner:
        """Ignore the artefact's tuned runtime defaults: answer at the threshold and budget validation used (what
        golden answers were recorded at)."""
        self.defaults = None
        return self

    def file(self, key: str) -> Path:
        """The artefact file a manifest key names, confined to the folder."""
        if key not in self.manifest.files:
            raise ArtefactError(f"the manifest lists no {key!r} file: re-run `edgekit export`")
        return safe_path(self.folder, self.manifest.files[key])

    def graph_path(self, graph: str) -> Path:
        """The ONNX file of one of the variant's graphs, checked before a backend parses it: present, a regular file
        inside the artefact, and within the node / initializer counts a real graph has (a file of 300,000 tiny
        initializers would stall session creation for minutes)."""
        if graph not in self.graphs:
            raise ArtefactError(
                f"artefact variant {self.variant!r} has no {graph} graph; re-export with `export.forms` including it"
            )
        path = self.file(self.graphs[graph])
        if not path.is_file():
            raise ArtefactError(f"{path} is missing: the artefact is incomplete, re-run `edgekit export`")
        check_graph_file(path)
        return path

    def call(self, graph: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run one of the variant's graphs, feeding each only the inputs it declares."""
        return self._call(graph, feeds)

    # -- input contract -----------------------------------------------------------------------------------------
    def check_inputs(self, inputs: np.ndarray) -> np.ndarray:
        spec = self.graph.input
        try:
            inputs = np.asarray(inputs)
        except (ValueError, TypeError):
            raise RuntimeInputError("inputs are not a rectangular array of numbers") from None
        if inputs.ndim == len(spec.shape) - 1:
            inputs = inputs[None]
        want = list(spec.sample_shape)
        if inputs.ndim != len(spec.shape) or list(inputs.shape[1:]) != want or inputs.shape[0] == 0:
            raise RuntimeInputError(
                f"inputs have shape {list(inputs.shape)}, expected [batch >= 1, {', '.join(map(str, want))}]"
            )
        if spec.tokens:
            if inputs.dtype == bool or not np.issubdtype(inputs.dtype, np.integer):
                raise RuntimeInputError(f"inputs have dtype {inputs.dtype}, expected integer token ids")
            lo, hi = spec.range or (0, 0)  # checked: a token contract has its range
            if inputs.min() < lo or inputs.max() > hi:
                raise RuntimeInputError(
                    f"token ids must lie in [{lo}, {hi}], got values in [{inputs.min()}, {inputs.max()}]"
                )
            return np.ascontiguousarray(inputs, dtype=np.int64)
        if inputs.dtype == bool or not (
            np.issubdtype(inputs.dtype, np.floating) or np.issubdtype(inputs.dtype, np.integer)
        ):
            raise RuntimeInputError(f"inputs have dtype {inputs.dtype}, expected numbers")
        inputs = inputs.astype(np.float32)
        if not np.isfinite(inputs).all():
            raise RuntimeInputError("inputs contain NaN or Inf")
        return inputs

    @property
    def takes_puzzle_ids(self) -> bool:
        return self.graph.puzzle_ids is not None

    @property
    def puzzles(self) -> PuzzleMap:
        """The artefact's puzzle-identifier map (models with a puzzle-embedding table only)."""
        if self._puzzles is None:
            if not self.takes_puzzle_ids:
                raise RuntimeInputError("this model takes no puzzle identifiers")
            assert self.graph.puzzle_ids is not None
            self._puzzles = PuzzleMap(self.graph.puzzle_ids, self.file("puzzle_ids"))
        return self._puzzles

    def puzzle_rows(self, puzzle_ids: Any, n: int) -> np.ndarray | None:
        """Rows of the exported puzzle table for `n` samples (None for models without one; ids given to such a
        model are refused, not ignored)."""
        if not self.takes_puzzle_ids:
            if puzzle_ids is not None:
                raise RuntimeInputError("this model takes no puzzle identifiers; do not pass puzzle_ids")
            return None
        return self.puzzles.to_rows(puzzle_ids, n)

    def feeds(self, x_in: np.ndarray, rows: np.ndarray | None) -> dict[str, np.ndarray]:
        """What the encode graph (and the single-graph forms) take: inputs, and puzzle-table rows."""
        return {"inputs": x_in} if rows is None else {"inputs": x_in, "puzzle_ids": rows}

    def encode(self, x_in: np.ndarray, puzzle_ids: Any = None) -> np.ndarray:
        """The encode graph on checked inputs and their puzzle identifiers (ids or names)."""
        return self._call("encode", self.feeds(x_in, self.puzzle_rows(puzzle_ids, len(x_in))))[0]

    # -- validation path: every step, recorded --------------------------------------------------------------------
    def run(
        self, inputs: np.ndarray, steps: int | None = None, record: bool = True, puzzle_ids: Any = None
    ) -> RunResult:
        """Run `steps` steps (default: the model's budget; more for test-time depth) for every sample, recording
        per-step outputs; early halting is then a choice made on the recorded halting logits, exactly as validation
        does."""
        x_in = self.check_inputs(inputs)
        if steps is None:
            steps = int(self.graph.step_budget)
        elif isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 1 <= steps <= MAX_STEPS:
            raise RuntimeInputError(f"steps must be an integer in [1, {MAX_STEPS}], got {steps!r}")
        rows = self.puzzle_rows(puzzle_ids, len(x_in))
        c = min(self.chunk_size, self.max_batch or self.chunk_size)  # as `solve` chunks: memory and profile bounds
        parts = [
            self._run_chunk(x_in[i : i + c], None if rows is None else rows[i : i + c], steps, record)
            for i in range(0, len(x_in), c)
        ]
        return parts[0] if len(parts) == 1 else RunResult.concatenate(parts)

    def _run_chunk(self, x_in: np.ndarray, rows: np.ndarray | None, steps: int, record: bool) -> RunResult:
        x = self._call("encode", self.feeds(x_in, rows))[0]
        state = self.initial_state(x)
        res = RunResult()
        for _ in range(steps):
            out = self._call("step", {**dict(zip(self.state_names, state)), "x": x})
            state, extra = out[:-1], out[-1]
            getattr(res, self.stopping.signal).append(extra)
            if record:
                logits = self._call("readout", dict(zip(self.state_names, state)))[0]
                res.preds.append(logits.argmax(-1))
                res.logits = logits
        res.steps = np.full(x_in.shape[0], steps)
        return res

    # -- deployment path --------------------------------------------------------------------------------------------
    def solve(
        self,
        inputs: np.ndarray,
        mode: str = "host",
        max_steps: int | None = None,
        threshold: float | None = None,
        compact: bool = True,
        puzzle_ids: Any = None,
    ) -> Solution:
        """Answer a batch. `threshold` is the halting-logit threshold (ACT, default the artefact's) or the residual
        tolerance (DEQ, default the solver's); `max_steps` caps the recursion (default: the budget). Inputs larger
        than `chunk_size` are answered chunk by chunk, so memory stays bounded whatever the input size."""
        if mode not in MODES:
            raise RuntimeInputError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
        cap, threshold = self.limits(max_steps, threshold)
        x_all = self.check_inputs(inputs)
        rows = self.puzzle_rows(puzzle_ids, len(x_all))
        # chunks bound memory, and never exceed what the backend's graphs accept (a TensorRT profile's maximum)
        c = min(self.chunk_size, self.max_batch or self.chunk_size)
        parts = [
            self._solve_chunk(
                x_all[i : i + c], None if rows is None else rows[i : i + c], mode, cap, threshold, compact
            )
            for i in range(0, len(x_all), c)
        ]
        return parts[0] if len(parts) == 1 else Solution.concatenate(parts)

    def limits(self, max_steps: int | None, threshold: float | None) -> tuple[int, float]:
        """(step cap, threshold) with the artefact's defaults; out-of-range values are one-line errors."""
        budget = int(self.graph.step_budget)
        tuned = self.defaults.threshold if self.defaults is not None else None
        if max_steps is None:
            cap = int(self.defaults.max_steps if self.defaults is not None else budget)
        elif (
            isinstance(max_steps, bool)
            or not isinstance(max_steps, (int, np.integer))
            or not 1 <= max_steps <= MAX_STEPS
        ):
            raise RuntimeInputError(f"max_steps must be an integer in [1, {MAX_STEPS}], got {max_steps!r}")
        else:
            cap = int(max_steps)
        if threshold is None and tuned is not None:
            threshold = tuned  # +inf: a tuned null, never halt before the cap
        elif threshold is None:
            threshold = self._default_threshold()
        elif isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.number)) or math.isnan(threshold):
            raise RuntimeInputError(f"threshold must be a number, got {threshold!r}")
        return cap, float(threshold)

    def _solve_chunk(
        self, x_in: np.ndarray, rows: np.ndarray | None, mode: str, cap: int, threshold: float, compact: bool
    ) -> Solution:
        if mode == "loop":
            return self._solve_loop(self.feeds(x_in, rows), cap, threshold)
        if mode == "unrolled":
            out = self._call("unrolled", self.feeds(x_in, rows))
            return Solution(
                out[0],
                np.full(len(x_in), cap if self.graph.unrolled_steps is None else self.graph.unrolled_steps),
                np.zeros(len(x_in), bool),
                out[1] if len(out) > 1 else None,
            )
        if self.stopping.solver == "anderson":
            return self._solve_host_anderson(x_in, cap, threshold)
        return self._solve_host(x_in, cap, threshold, compact, rows)

    def _solve_loop(self, feeds: dict[str, np.ndarray], cap: int, threshold: float) -> Solution:
        """The Loop form in one call. Its step cap and threshold are inputs with defaults; a backend that builds
        them in (TensorRT bakes an ONNX input with a default into the engine) answers only at the built-in values,
        so asking for others is refused, never ignored."""
        limit = self.stopping.limit
        takes = self.inputs_of("loop")
        built_in = {"max_steps": int(self.graph.step_budget), limit: self._default_threshold()}
        asked = {"max_steps": cap, limit: threshold}
        for name, value in asked.items():
            if name not in takes and float(value) != float(built_in[name]):
                raise RuntimeInputError(
                    f"this {self.backend} loop graph has {name} built in ({built_in[name]}), asked for {value}: use "
                    "mode='host' to choose it per call"
                )
        controls: dict[str, np.ndarray] = {"max_steps": np.array(cap, np.int64), limit: np.array(threshold, np.float32)}
        out = dict(zip(self.outputs_of("loop"), self._call("loop", {**feeds, **controls})))
        steps = np.asarray(out["steps"])
        if steps.size and int(steps.max()) > cap:  # a backend that ran past the cap would answer from other steps
            raise ArtefactError(
                f"the {self.backend} loop graph ran {int(steps.max())} steps, past the cap {cap}: rebuild it"
            )
        state = out.get("best", out.get(f"{self.state_names[0]}_final"))
        return Solution(out["logits"], steps, out["done"], out.get("halt"), state)

    def _default_threshold(self) -> float:
        """The threshold the graphs were exported with (the Loop form's default input value)."""
        return float(self.stopping.value)

    def stops(self, signal: np.ndarray, threshold: float) -> np.ndarray:
        return np.asarray(self.stopping.stops(signal, threshold))

    def _solve_host(
        self, x_in: np.ndarray, cap: int, threshold: float, compact: bool, rows: np.ndarray | None = None
    ) -> Solution:
        x = self._call("encode", self.feeds(x_in, rows))[0]
        n = len(x_in)
        act = self.stopping.halting_head
        if compact:
            return self._solve_compacted(x, cap, threshold, act)
        steps = np.zeros(n, np.int64)
        done = np.zeros(n, bool)
        # freeze halted samples in place: same answers, no compute saved (for comparison)
        state = self.initial_state(x)
        for t in range(1, cap + 1):
            out = self._call("step", {**dict(zip(self.state_names, state)), "x": x})
            new, stop = out[:-1], self.stops(out[-1], threshold)
            active = ~done
            state = [np.where(active.reshape(-1, *[1] * (s.ndim - 1)), ns, s) for s, ns in zip(state, new)]
            steps = np.where(active, t, steps)
            done = done | (stop & active)
            if done.all():
                break
        head = self._call("readout", dict(zip(self.state_names, state)))
        return Solution(head[0], steps, done, head[1] if act else None)

    def _solve_compacted(self, x: np.ndarray, cap: int, threshold: float, act: bool) -> Solution:
        """Early halting with batch compaction: samples that halt are read out and leave the batch. The bookkeeping
        is kept to a few numpy calls per step: at batch 1 each one costs several microseconds, the caches being
        cold after a step graph call, so the loop's share of the time outside onnxruntime comes from their count."""
        n, names = len(x), self.state_names
        stepper, key = self._stepper(x)
        idx: np.ndarray | None = None  # original rows of the samples still in the batch; None: all, in order
        acc: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None] | None = None  # logits, steps, done, halt
        out: Solution | None = None
        for t in range(1, cap + 1):
            stop = self.stops(stepper.step(), threshold)
            k = np.count_nonzero(stop)  # one call, not all() and any(): each costs microseconds here
            every = t == cap or k == len(stop)  # every sample left finishes now
            if not k and not every:
                continue
            state = stepper.state
            head = self._call("readout", dict(zip(names, state if every else [s[stop] for s in state])))
            if every and idx is None:  # the whole batch at once (always so at batch 1): the answers as they come
                out = Solution(
                    head[0].astype(np.float32, copy=False), np.full(n, t, np.int64), stop,
                    head[1].astype(np.float32, copy=False) if act else None,
                )  # fmt: skip
                break
            if acc is None:
                acc = (np.empty((n, *head[0].shape[1:]), np.float32), np.zeros(n, np.int64), np.zeros(n, bool),
                       np.zeros(n, np.float32) if act else None)  # fmt: skip
            logits, steps, done, halt = acc
            rows = np.arange(n) if idx is None else idx
            fin = rows if every else rows[stop]
            logits[fin] = head[0]
            steps[fin] = t
            done[fin] = stop if every else True
            if halt is not None:
                halt[fin] = head[1]
            if every:
                break
            idx = rows[~stop]
            stepper.compact(~stop)
        self._release(stepper, key)
        if out is None:
            assert acc is not None, "every sample finishes by the step cap"
            out = Solution(*acc)
        return out

    def _solve_host_anderson(self, x_in: np.ndarray, cap: int, tol: float) -> Solution:
        """Anderson acceleration with per-sample convergence and compaction; the answer is f(z) at the first
        iterate within tolerance, as in the PyTorch solver."""
        s = self.solver
        m, lam, beta = (
            int(s.get("anderson_m", 5)),
            float(s.get("anderson_lam", 1e-4)),
            float(s.get("anderson_beta", 1.0)),
        )
        x = self._call("encode", {"inputs": x_in})[0]
        z = self.initial_state(x)[0]
        n = len(x_in)
        steps = np.full(n, cap, np.int64)
        done = np.zeros(n, bool)
        best = np.empty_like(z)
        idx = np.arange(n)
        X = np.zeros((n, 0, z.shape[1]), np.float32)
        F = X.copy()
        for t in range(1, cap + 1):
            fz, r = self._call("step", {"z": z, "x": x})
            X, F = push_history(X, z, m), push_history(F, fz, m)
            stop = r <= tol
            finish = stop | (t == cap)
            best[idx[finish]] = fz[finish]
            steps[idx[stop]] = t
            done[idx[stop]] = True
            z = anderson_mix(X, F, lam, beta)
            keep = ~finish
            idx, x, z, X, F = idx[keep], x[keep], z[keep], X[keep], F[keep]
            if not len(idx):
                break
        logits = self._call("readout", {"z": best})[0]
        return Solution(logits, steps, done, None, best)

    def solve_arc(self, task: str, test_inputs: list[Any], **solve_kw: Any) -> list[Any]:
        """ARC: every augmented copy of `task` in the puzzle table on each test input grid, answers undone and
        voted; returns per test input its ranked candidates (`.top(2)` are the two attempts). See runtime/arc.py."""
        from .arc_solver import solve_arc

        return solve_arc(self, task, test_inputs, **solve_kw)

    def initial_state(self, x: np.ndarray) -> list[np.ndarray]:
        """Initial states in the step graph's state dtype (float16 variants carry float16 states)."""
        init = self.graph.state.initial
        shape = (x.shape[0], *init.shape) if init.kind == "zeros" and init.shape is not None else x.shape
        return [np.ascontiguousarray(np.broadcast_to(v, shape)) for v in self._initial_parts(x)]

    def _initial_parts(self, x: np.ndarray) -> list[np.ndarray]:
        """Per state tensor, what broadcasts over the batch to its initial value, in the state dtype (read,
        checked and cast once per Runner and dtype, not once per call)."""
        if x.dtype in self._init_parts:
            return self._init_parts[x.dtype]
        init = self.graph.state.initial
        if init.kind == "zeros" and init.shape is not None:
            parts = [np.zeros(init.shape, dtype=x.dtype)]
        else:
            vecs = load_npz(  # header-checked and bounded before anything is inflated (edgekit/npyio.py)
                self.file("initial_state"), 64 << 20, self.state_names, error=ArtefactError,
                what="initial_state.npz", nofollow=True,
            )  # fmt: skip
            missing = [n for n in self.state_names if n not in vecs]
            if missing:
                raise ArtefactError(f"initial_state.npz holds no {missing[0]}: re-run `edgekit export`")
            loaded = [vecs[n] for n in self.state_names]
            one = (1, *x.shape[1:])
            for n, v in zip(self.state_names, loaded):
                try:
                    fits = np.broadcast_shapes(v.shape, one) == one
                except ValueError:
                    fits = False
                if not fits:
                    raise ArtefactError(
                        f"initial_state.npz: {n} has shape {list(v.shape)}, which does not broadcast to the state "
                        f"{list(x.shape[1:])}: re-run `edgekit export`"
                    )
            parts = [v.astype(x.dtype) for v in loaded]
        self._init_parts[x.dtype] = parts
        return parts
