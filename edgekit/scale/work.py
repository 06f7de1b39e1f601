"""What a worker holds and computes: one onnxruntime Runner or one PyTorch model, and the rollout of a shard.

A worker is built once from a spec (sent once per worker, not per shard) and then answers shards. The spec of an
ONNX variant carries the bytes of the files it runs and their sha256, so a worker on another machine needs no
shared folder, and a worker on this one reads the artefact folder in place after checking the same hashes. A
shard's record is every step's argmax, every step's halting logit and the last step's logits of its examples,
computed batch by batch exactly as the serial loop does.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EdgekitError, first_line
from ..manifest import Manifest

RUNNER_KEYS = ("encode", "step", "readout")
EXTRA_KEYS = ("initial_state", "puzzle_ids")


@dataclass
class ShardRecord:
    """preds [steps, n, ...] (argmax after each step), halts [steps, n] ([0, n] for models without halting),
    last [n, ...] (the last step's logits); `where` names the node and process that computed it."""

    preds: np.ndarray
    halts: np.ndarray
    last: np.ndarray
    where: str = ""
    seconds: float = 0.0


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class OnnxSpec:
    """An artefact variant's host loop: manifest, the files it runs (relative path -> sha256) and, for workers
    elsewhere, their bytes."""

    folder: str
    variant: str
    manifest: Manifest
    digests: dict[str, str]
    providers: list[str] | None = None
    payload: dict[str, bytes] | None = None  # relative path -> bytes; None: read `folder` in place
    steps: int | None = None  # recorded steps per example; None: the step budget (more: test-time depth)
    tf32: bool | None = None  # the CUDA provider's TF32 setting (validation turns it off)

    @staticmethod
    def of(runner: Any, ship: bool, steps: int | None = None) -> OnnxSpec:
        files = runner.manifest.files
        keys = [runner.graphs[g] for g in RUNNER_KEYS] + [k for k in EXTRA_KEYS if k in files]
        rels = [files[k] for k in keys]
        data = [rel + ".data" for rel in rels if (runner.folder / (rel + ".data")).is_file()]  # ONNX external data
        digests = {rel: _digest(runner.folder / rel) for rel in rels + data}
        payload = {rel: (runner.folder / rel).read_bytes() for rel in digests} if ship else None
        providers = None if list(runner.providers) == ["CPUExecutionProvider"] else list(runner.providers)
        tf32 = getattr(getattr(runner, "settings", None), "tf32", None)
        return OnnxSpec(str(runner.folder), runner.variant, runner.manifest, digests, providers, payload, steps, tf32)


@dataclass
class TorchSpec:
    """A PyTorch model (pickled with the spec) and the device its rollouts run on."""

    model: Any
    device: str = "cpu"
    label: str = "reference"


@dataclass
class Worker:
    """One session or one model answering shards (built once per worker process or actor)."""

    spec: OnnxSpec | TorchSpec
    threads: int | None = None
    _solve: Any = field(default=None, repr=False)
    _tmp: str | None = field(default=None, repr=False)

    @classmethod
    def around(cls, solve: Any) -> Worker:
        """The driver's own Runner or model as a worker (the serial executor)."""
        return cls(TorchSpec(None), None, solve)

    def where(self) -> str:
        node = socket.gethostname()
        try:
            import ray

            if ray.is_initialized():
                node = ray.get_runtime_context().get_node_id()
        except ImportError:
            pass
        return f"{node}/{os.getpid()}"

    def open(self) -> None:
        if self._solve is not None:
            return
        if isinstance(self.spec, OnnxSpec):
            self._solve = _onnx_solver(self._folder(self.spec), self.spec, self.threads)
        else:
            self._solve = torch_solver(self.spec.model, self.spec.device, self.threads)

    def _folder(self, spec: OnnxSpec) -> Path:
        """The artefact files, checked against the spec's digests: in place, or written into a private folder."""
        here = Path(spec.folder)
        if spec.payload is None:
            for rel, want in spec.digests.items():
                if _digest(here / rel) != want:
                    raise EdgekitError(f"{rel} changed while validating", "re-run the validation")
            return here
        self._tmp = tempfile.mkdtemp(prefix="edgekit-shard-")  # 0700
        root = Path(self._tmp)
        for rel, blob in spec.payload.items():
            if hashlib.sha256(blob).hexdigest() != spec.digests.get(rel):
                raise EdgekitError(f"{rel} arrived damaged at a worker", "re-run the validation")
            dest = (root / rel).resolve()
            if root.resolve() not in dest.parents:
                raise EdgekitError(f"{rel} is outside the artefact folder")
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(blob)
        (root / "manifest.json").write_text(spec.manifest.dumps())
        return root

    def run(self, x: np.ndarray, ids: np.ndarray | None, batch: int) -> ShardRecord:
        self.open()
        t0 = time.perf_counter()
        preds, halts, last = self._solve(x, ids, batch)
        return ShardRecord(preds, halts, last, self.where(), time.perf_counter() - t0)

    def close(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


def _onnx_solver(folder: Path, spec: OnnxSpec, threads: int | None) -> Any:
    from ..runtime import Runner

    runner = Runner(
        folder, variant=spec.variant, threads=threads, providers=spec.providers, complete=False, tf32=spec.tf32
    )
    return onnx_solver(runner, spec.steps)


def onnx_solver(runner: Any, steps: int | None = None) -> Any:
    """A shard through the variant's step graphs, batch by batch, every step recorded (Runner.run): `steps` steps
    (None: the step budget)."""

    def solve(x: np.ndarray, ids: np.ndarray | None, batch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        parts = [
            runner.run(x[i : i + batch], steps, puzzle_ids=None if ids is None else ids[i : i + batch])
            for i in range(0, len(x), batch)
        ]
        n = len(parts[0].preds)
        preds = np.stack([np.concatenate([p.preds[s] for p in parts]) for s in range(n)])
        halts = (
            np.stack([np.concatenate([p.halt[s] for p in parts]) for s in range(n)])
            if parts[0].halt
            else np.zeros((0, len(x)), np.float32)
        )
        return preds, halts, np.concatenate([p.logits for p in parts])

    return solve


def torch_solver(model: Any, device: str, threads: int | None) -> Any:
    """A shard through the PyTorch model's rollout (tasks/evaluate.py), on `device`; on a GPU in float32 with
    TF32 off (cuBLAS and cuDNN), so the only difference from the CPU is the kernels' order of operations."""
    import torch

    from .. import progress
    from ..tasks.evaluate import rollout_predictions

    if threads:
        torch.set_num_threads(threads)
    if device == "cuda":
        import copy

        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        model = copy.deepcopy(model).to("cuda")

    def solve(x: np.ndarray, ids: np.ndarray | None, batch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        with progress.reporting(progress.Reporter()):  # the shard's own bar stays quiet: the driver counts shards
            p, h, last = rollout_predictions(model, x, batch_size=batch, puzzle_ids=ids)
        halts = np.stack(h) if h else np.zeros((0, len(x)), np.float32)
        return np.stack(p), halts, last

    return solve


class ShardActor:
    """The Ray actor (and the process pool's per-process state): one Worker, shards in, records out."""

    def __init__(self, spec: OnnxSpec | TorchSpec, threads: int | None) -> None:
        self.worker = Worker(spec, threads)
        self.error: str | None = None
        try:
            self.worker.open()
        except EdgekitError as e:  # reported with the first shard (an actor's constructor error is not a result)
            self.error = str(e)
        except Exception as e:
            self.error = f"a worker could not start: {first_line(e)}"

    def run(self, x: np.ndarray, ids: np.ndarray | None, batch: int) -> ShardRecord:
        if self.error is not None:
            raise EdgekitError(self.error)
        return self.worker.run(x, ids, batch)

    def pid(self) -> int:
        return os.getpid()
