"""Run an edgekit artefact on a device: numpy + onnxruntime only, no torch.

The manifest says which graphs exist (per precision variant), their state layout and the input contract
(dtype, shape, token range), so the runner needs no model-specific code. Three ways to run the recursion:

- ``host``: encode once, call the step graph from a Python loop with per-sample early halting; halted samples
  leave the batch (batch compaction), so compute falls as samples finish. DEQs stop per sample at the
  solver tolerance; Anderson acceleration runs its small least-squares step in numpy.
- ``loop``: the single-graph ONNX Loop form (same per-sample semantics, inside onnxruntime).
- ``unrolled``: a fixed budget of steps in one graph, no halting.

`run` is the validation path: every step for every sample, recording per-step predictions.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

from .host_loop import anderson_mix, push_history


class RuntimeInputError(ValueError):
    """Inputs that do not match the artefact's input contract (one-line message)."""


class ArtefactError(ValueError):
    """An artefact folder that is missing, incomplete or does not match this runtime (one-line message)."""


@dataclass
class RunResult:
    """Per-step predictions (argmax) and halting logits / residuals, plus the steps each sample ran."""

    preds: list[np.ndarray] = field(default_factory=list)
    halt: list[np.ndarray] = field(default_factory=list)
    residual: list[np.ndarray] = field(default_factory=list)
    steps: np.ndarray | None = None
    logits: np.ndarray | None = None


@dataclass
class Solution:
    """The deployed answer: logits and predictions at each sample's halting step (or fixed point), the steps
    (f-evaluations for DEQs) each sample took, and whether it halted / converged before the cap."""

    logits: np.ndarray
    steps: np.ndarray
    done: np.ndarray
    halt: np.ndarray | None = None
    state: np.ndarray | None = None   # first state tensor at the answer (DEQ: the returned fixed point); loop mode

    @property
    def preds(self) -> np.ndarray:
        return self.logits.argmax(-1)


MODES = ("host", "loop", "unrolled")


class Runner:
    def __init__(self, artefact: str | Path, variant: str = "float32", threads: int | None = None,
                 providers: list[str] | None = None) -> None:
        self.folder = Path(artefact)
        manifest = self.folder / "manifest.json"
        if not manifest.is_file():
            raise ArtefactError(f"{self.folder} has no manifest.json: pass an artefact folder written by `edgekit export`")
        try:
            self.manifest = json.loads(manifest.read_text())
            self.graph = self.manifest["graph"]
            self.family: str = self.manifest["model"]["family"]
        except (json.JSONDecodeError, KeyError) as e:
            raise ArtefactError(f"{manifest} is corrupt ({e}): re-run `edgekit export`") from None
        variants = self.manifest.get("variants") or {"float32": {k: k for k in ("encode", "step", "readout", "loop", "unrolled")}}
        if variant not in variants:
            raise ArtefactError(f"artefact has no variant {variant!r}; it has: {', '.join(variants)}")
        self.variant = variant
        self.graphs: dict[str, str] = {g: key for g, key in variants[variant].items() if key in self.manifest["files"]}
        self.opts = ort.SessionOptions()
        self.opts.log_severity_level = 3  # the Loop form's overridable defaults trigger a harmless warning
        if threads:
            self.opts.intra_op_num_threads = threads
        self.providers = providers or ["CPUExecutionProvider"]
        self._sessions: dict[str, ort.InferenceSession] = {}
        self._inputs: dict[str, set[str]] = {}
        self.state_names: list[str] = self.graph["state_names"]
        self.solver: dict = self.manifest["model"].get("config", {}).get("solver", {}) if self.family == "deq" else {}

    # -- sessions -------------------------------------------------------------------------------------------------
    def session(self, graph: str) -> ort.InferenceSession:
        if graph not in self._sessions:
            if graph not in self.graphs:
                raise ArtefactError(f"artefact variant {self.variant!r} has no {graph} graph; re-export with `export.forms` including it")
            path = self.folder / self.manifest["files"][self.graphs[graph]]
            if not path.is_file():
                raise ArtefactError(f"{path} is missing: the artefact is incomplete, re-run `edgekit export`")
            try:
                self._sessions[graph] = ort.InferenceSession(str(path), self.opts, providers=self.providers)
            except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
                raise ArtefactError(f"{path.name} cannot be loaded by onnxruntime ({str(e).splitlines()[0][:160]}): re-run `edgekit export`") from None
            # Exporters drop unused inputs (TRM's readout reads z_H only), so feed each graph just what it declares.
            self._inputs[graph] = {i.name for i in self._sessions[graph].get_inputs()}
        return self._sessions[graph]

    def override(self, graph: str, model: bytes) -> None:
        """Use an in-memory graph in place of the artefact's (e.g. a candidate step graph being scored)."""
        self._sessions[graph] = ort.InferenceSession(model, self.opts, providers=self.providers)
        self._inputs[graph] = {i.name for i in self._sessions[graph].get_inputs()}

    def _call(self, graph: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        sess = self.session(graph)
        wanted = self._inputs[graph]
        return sess.run(None, {k: v for k, v in feeds.items() if k in wanted})

    # -- input contract -----------------------------------------------------------------------------------------
    def check_inputs(self, inputs: np.ndarray) -> np.ndarray:
        spec = self.graph["input"]
        try:
            inputs = np.asarray(inputs)
        except (ValueError, TypeError):
            raise RuntimeInputError("inputs are not a rectangular array of numbers") from None
        if inputs.ndim == len(spec["shape"]) - 1:
            inputs = inputs[None]
        want = spec["shape"][1:]
        if inputs.ndim != len(spec["shape"]) or list(inputs.shape[1:]) != want or inputs.shape[0] == 0:
            raise RuntimeInputError(f"inputs have shape {list(inputs.shape)}, expected [batch >= 1, {', '.join(map(str, want))}]")
        if spec["dtype"] == "int64":
            if inputs.dtype == bool or not np.issubdtype(inputs.dtype, np.integer):
                raise RuntimeInputError(f"inputs have dtype {inputs.dtype}, expected integer token ids")
            lo, hi = spec["range"]
            if inputs.min() < lo or inputs.max() > hi:
                raise RuntimeInputError(f"token ids must lie in [{lo}, {hi}], got values in [{inputs.min()}, {inputs.max()}]")
            return inputs.astype(np.int64)
        if inputs.dtype == bool or not (np.issubdtype(inputs.dtype, np.floating) or np.issubdtype(inputs.dtype, np.integer)):
            raise RuntimeInputError(f"inputs have dtype {inputs.dtype}, expected numbers")
        inputs = inputs.astype(np.float32)
        if not np.isfinite(inputs).all():
            raise RuntimeInputError("inputs contain NaN or Inf")
        return inputs

    # -- validation path: every step, recorded --------------------------------------------------------------------
    def run(self, inputs: np.ndarray, steps: int | None = None, record: bool = True) -> RunResult:
        """Run `steps` steps (default: the model's budget) for every sample, recording per-step outputs;
        early halting is then a choice made on the recorded halting logits, exactly as validation does."""
        x_in = self.check_inputs(inputs)
        steps = steps or self.graph["step_budget"]
        x = self._call("encode", {"inputs": x_in})[0]
        state = self.initial_state(x)
        res = RunResult()
        for _ in range(steps):
            out = self._call("step", {**dict(zip(self.state_names, state)), "x": x})
            state, extra = out[:-1], out[-1]
            (res.residual if self.family == "deq" else res.halt).append(extra)
            if record:
                logits = self._call("readout", dict(zip(self.state_names, state)))[0]
                res.preds.append(logits.argmax(-1))
                res.logits = logits
        res.steps = np.full(x_in.shape[0], steps)
        return res

    # -- deployment path --------------------------------------------------------------------------------------------
    def solve(self, inputs: np.ndarray, mode: str = "host", max_steps: int | None = None, threshold: float | None = None,
              compact: bool = True) -> Solution:
        """Answer a batch. `threshold` is the halting-logit threshold (ACT, default 0) or the residual
        tolerance (DEQ, default the solver's); `max_steps` caps the recursion (default: the budget)."""
        if mode not in MODES:
            raise RuntimeInputError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
        x_in = self.check_inputs(inputs)
        cap = int(max_steps or self.graph["step_budget"])
        if threshold is None:
            threshold = float(self.solver.get("tol", 1e-4)) if self.family == "deq" else float(self.graph.get("halt_threshold", 0.0))
        if mode == "loop":
            return self._solve_loop(x_in, cap, threshold)
        if mode == "unrolled":
            out = self._call("unrolled", {"inputs": x_in})
            return Solution(out[0], np.full(len(x_in), self.graph.get("unrolled_steps", cap)), np.zeros(len(x_in), bool),
                            out[1] if len(out) > 1 else None)
        if self.family == "deq" and self.solver.get("name") == "anderson":
            return self._solve_host_anderson(x_in, cap, threshold)
        return self._solve_host(x_in, cap, threshold, compact)

    def _solve_loop(self, x_in: np.ndarray, cap: int, threshold: float) -> Solution:
        limit = "tol" if self.family == "deq" else "halt_threshold"
        sess = self.session("loop")
        names = [o.name for o in sess.get_outputs()]
        out = dict(zip(names, sess.run(None, {"inputs": x_in, "max_steps": np.array(cap, np.int64), limit: np.array(threshold, np.float32)})))
        state = out.get("best", out.get(f"{self.state_names[0]}_final"))
        return Solution(out["logits"], out["steps"], out["done"], out.get("halt"), state)

    def _stops(self, signal: np.ndarray, threshold: float) -> np.ndarray:
        return signal <= threshold if self.family == "deq" else signal > threshold

    def _solve_host(self, x_in: np.ndarray, cap: int, threshold: float, compact: bool) -> Solution:
        x = self._call("encode", {"inputs": x_in})[0]
        state = self.initial_state(x)
        n = len(x_in)
        steps = np.zeros(n, np.int64)
        done = np.zeros(n, bool)
        logits: np.ndarray | None = None
        halt = np.zeros(n, np.float32) if self.family != "deq" else None
        idx = np.arange(n)                       # samples still in the batch
        for t in range(1, cap + 1):
            out = self._call("step", {**dict(zip(self.state_names, state)), "x": x})
            new, signal = out[:-1], out[-1]
            stop = self._stops(signal, threshold)
            if compact:
                steps[idx] = t
                finish = stop | (t == cap)
                if finish.any():
                    head = self._call("readout", dict(zip(self.state_names, [s[finish] for s in new])))
                    if logits is None:
                        logits = np.empty((n, *head[0].shape[1:]), np.float32)
                    logits[idx[finish]] = head[0]
                    if halt is not None:
                        halt[idx[finish]] = head[1]
                    done[idx[stop]] = True
                    keep = ~finish
                    idx, x, new = idx[keep], x[keep], [s[keep] for s in new]
                state = new
                if not len(idx):
                    break
            else:  # freeze halted samples in place: same answers, no compute saved (for comparison)
                active = ~done
                state = [np.where(active.reshape(-1, *[1] * (s.ndim - 1)), ns, s) for s, ns in zip(state, new)]
                steps = np.where(active, t, steps)
                done = done | (stop & active)
                if done.all():
                    break
        if not compact:
            head = self._call("readout", dict(zip(self.state_names, state)))
            logits = head[0]
            halt = head[1] if halt is not None else None
        return Solution(logits, steps, done, halt)

    def _solve_host_anderson(self, x_in: np.ndarray, cap: int, tol: float) -> Solution:
        """Anderson acceleration with per-sample convergence and compaction; the answer is f(z) at the first
        iterate within tolerance, as in the PyTorch solver."""
        s = self.solver
        m, lam, beta = int(s.get("anderson_m", 5)), float(s.get("anderson_lam", 1e-4)), float(s.get("anderson_beta", 1.0))
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

    def initial_state(self, x: np.ndarray) -> list[np.ndarray]:
        """Initial states in the step graph's state dtype (float16 variants carry float16 states)."""
        init = self.graph["initial_state"]
        dtype = x.dtype
        if init["kind"] == "zeros":
            return [np.zeros((x.shape[0], *init["shape"]), dtype=dtype)]
        vecs = np.load(self.folder / self.manifest["files"]["initial_state"])
        return [np.ascontiguousarray(np.broadcast_to(vecs[n].astype(dtype), x.shape)) for n in self.state_names]
