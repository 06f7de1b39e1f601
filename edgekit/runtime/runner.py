"""Run an edgekit artefact: encode once, loop the step graph on the host, read out.

Imports numpy and onnxruntime only. The manifest says which graphs exist, their input names, the state layout
and the input contract (dtype, shape, token range), so the runner needs no model-specific code.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort


class RuntimeInputError(ValueError):
    """Inputs that do not match the artefact's input contract (one-line message)."""


@dataclass
class RunResult:
    """Per-step predictions (argmax) and halting logits / residuals, plus the steps each sample ran."""

    preds: list[np.ndarray] = field(default_factory=list)
    halt: list[np.ndarray] = field(default_factory=list)
    residual: list[np.ndarray] = field(default_factory=list)
    steps: np.ndarray | None = None
    logits: np.ndarray | None = None


class Runner:
    def __init__(self, artefact: str | Path, threads: int | None = None) -> None:
        self.folder = Path(artefact)
        manifest = self.folder / "manifest.json"
        if not manifest.is_file():
            raise FileNotFoundError(f"{self.folder} has no manifest.json: pass an artefact folder written by `edgekit export`")
        self.manifest = json.loads(manifest.read_text())
        self.graph = self.manifest["graph"]
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        self.sessions = {name: ort.InferenceSession(str(self.folder / rel), opts, providers=["CPUExecutionProvider"])
                         for name, rel in self.manifest["files"].items() if rel.endswith(".onnx")}
        self.state_names: list[str] = self.graph["state_names"]
        # Exporters drop unused inputs (TRM's readout reads z_H only), so feed each graph just what it declares.
        self.input_names = {name: {i.name for i in sess.get_inputs()} for name, sess in self.sessions.items()}
        self.family: str = self.manifest["model"]["family"]

    # -- input contract -----------------------------------------------------------------------------------------
    def check_inputs(self, inputs: np.ndarray) -> np.ndarray:
        spec = self.graph["input"]
        inputs = np.asarray(inputs)
        if inputs.ndim == len(spec["shape"]) - 1:
            inputs = inputs[None]
        want = spec["shape"][1:]
        if inputs.ndim != len(spec["shape"]) or list(inputs.shape[1:]) != want:
            raise RuntimeInputError(f"inputs have shape {list(inputs.shape)}, expected [batch, {', '.join(map(str, want))}]")
        if spec["dtype"] == "int64":
            if not np.issubdtype(inputs.dtype, np.integer):
                raise RuntimeInputError(f"inputs have dtype {inputs.dtype}, expected integer token ids")
            lo, hi = spec["range"]
            if inputs.size and (inputs.min() < lo or inputs.max() > hi):
                raise RuntimeInputError(f"token ids must lie in [{lo}, {hi}], got values in [{inputs.min()}, {inputs.max()}]")
            return inputs.astype(np.int64)
        if not np.issubdtype(inputs.dtype, np.floating) and not np.issubdtype(inputs.dtype, np.integer):
            raise RuntimeInputError(f"inputs have dtype {inputs.dtype}, expected numbers")
        inputs = inputs.astype(np.float32)
        if not np.isfinite(inputs).all():
            raise RuntimeInputError("inputs contain NaN or Inf")
        return inputs

    # -- execution --------------------------------------------------------------------------------------------
    def run(self, inputs: np.ndarray, steps: int | None = None, record: bool = True) -> RunResult:
        """Run `steps` steps (default: the model's budget) for every sample, recording per-step outputs;
        early halting is then a choice made on the recorded halting logits, exactly as validation does."""
        x_in = self.check_inputs(inputs)
        steps = steps or self.graph["step_budget"]
        x = self.sessions["encode"].run(None, {"inputs": x_in})[0]
        state = self._initial_state(x)
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

    def _call(self, graph: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        wanted = self.input_names[graph]
        return self.sessions[graph].run(None, {k: v for k, v in feeds.items() if k in wanted})

    def _initial_state(self, x: np.ndarray) -> list[np.ndarray]:
        init = self.graph["initial_state"]
        if init["kind"] == "zeros":
            return [np.zeros((x.shape[0], *init["shape"]), dtype=np.float32)]
        vecs = np.load(self.folder / self.manifest["files"]["initial_state"])
        return [np.ascontiguousarray(np.broadcast_to(vecs[n].astype(np.float32), x.shape)) for n in self.state_names]
