"""Sharded, resumable rollouts: the driver side of validation's two big computations (the PyTorch reference and
each ONNX variant's host loop).

The shard plan (plan.py) comes from the data and the batch size; each shard's record is stored in the cache
(edgekit/cache.py: key, kind and content digest checked on read) under a key built from the whole rollout's key
(graph or weight hashes, examples, settings, versions, and for PyTorch the device) plus the batch size and the
shard's example range. A run that stops half way (killed, a worker lost for good) leaves its finished shards
there, and the next run computes only the missing ones. Records are checked for shape before they are used or
stored, and the merge refuses anything but every example exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import progress
from ..cache import entry, key_of, read_arrays, write_arrays
from .executors import get_executor
from .plan import Shard, plan_shards
from .settings import ScaleError, ScaleRun, ScaleSettings, settings_for
from .work import OnnxSpec, ShardRecord, TorchSpec, Worker, onnx_solver, torch_solver

SHARD_FORMAT = 1
MAX_SHARD_BYTES = 256 << 20  # larger shard records are used, not stored

Rollout = tuple[list[np.ndarray], list[np.ndarray], np.ndarray]


def begin(section: Any = None) -> ScaleRun:
    """The settings of one validation (the recipe's `validate:` section, command-line overrides), checked: what
    cannot run here is one line before any work."""
    from .settings import check, resolve_device, resolve_onnx_device

    s = settings_for(section)
    check(s)
    run = ScaleRun(s)
    run.device, run.device_name = resolve_device(s.device)
    run.onnx = resolve_onnx_device(s.device)
    return run


def shard_key(rollout_key: str, batch: int, s: Shard) -> str:
    return key_of("shard", SHARD_FORMAT, rollout_key, batch, s.start, s.stop)


def _store(key: str, s: Shard, rec: ShardRecord) -> None:
    arrays = {"preds": rec.preds, "halts": rec.halts, "last": rec.last, "range": np.array([s.start, s.stop])}
    if sum(a.nbytes for a in arrays.values()) <= MAX_SHARD_BYTES:
        write_arrays(entry("shard", key), arrays)


def _load(key: str, s: Shard) -> ShardRecord | None:
    def decode(z: dict[str, np.ndarray]) -> ShardRecord:
        if z["range"].tolist() != [s.start, s.stop]:
            raise ValueError("another range")
        rec = ShardRecord(z["preds"], z["halts"], z["last"], "cache")
        _check(rec, s)
        return rec

    return read_arrays(entry("shard", key), decode)


def _check(rec: ShardRecord, s: Shard) -> None:
    """A record answers exactly the shard's examples (a worker that answered fewer is never merged)."""
    n = s.size
    if rec.preds.ndim < 2 or rec.preds.shape[1] != n or len(rec.last) != n:
        raise ValueError(f"a record of {rec.preds.shape[1:2]} examples for a shard of {n}")
    if rec.halts.ndim != 2 or rec.halts.shape[1] != n or rec.halts.shape[0] not in (0, rec.preds.shape[0]):
        raise ValueError("halting logits of another shape")


def sharded(
    run: ScaleRun,
    name: str,
    spec: Any,
    local: Any,
    inputs: np.ndarray,
    ids: np.ndarray | None,
    batch: int,
    key: str | None,
    groups: Sequence[object] | None = None,
    on_shard: Any = None,
) -> Rollout:
    """Every shard of the plan, from the cache or computed by the run's executor; merged in example order."""
    shards = plan_shards(len(inputs), batch, groups)
    got: dict[int, ShardRecord] = {}
    if key is not None:
        for s in shards:
            rec = _load(shard_key(key, batch, s), s)
            if rec is not None:
                got[s.index] = rec
    missing = [s for s in shards if s.index not in got]
    where: dict[str, int] = {}
    t0 = time.time()
    executor = get_executor(run.settings)
    with progress.task(f"{name} ({run.settings.executor})", len(inputs)) as bar:
        bar.advance(sum(got[i].preds.shape[1] for i in got))

        def done(s: Shard, rec: ShardRecord) -> None:
            try:
                _check(rec, s)
            except ValueError as e:
                raise ScaleError(f"a worker returned a bad record for examples {s.start}-{s.stop - 1}: {e}") from None
            if key is not None:
                _store(shard_key(key, batch, s), s, rec)
            got[s.index] = rec
            node = rec.where.split("/")[0]
            where[node] = where.get(node, 0) + 1
            bar.advance(s.size)
            if on_shard is not None:
                on_shard(s, rec)

        if missing:
            try:
                executor.run(spec, local, missing, inputs, ids, batch, done)
            finally:
                executor.close()
    run.workers, run.threads = executor.workers, executor.threads
    run.rollouts.append(
        {
            "name": name,
            "examples": len(inputs),
            "shards": len(shards),
            "shards_from_cache": len(shards) - len(missing),
            "nodes": len(where),
            "shards_per_node": sorted(where.values(), reverse=True),
            "seconds": round(time.time() - t0, 3),
        }
    )
    return merge(shards, got)


def merge(shards: list[Shard], got: dict[int, ShardRecord]) -> Rollout:
    """The records in example order; a missing shard is an error, never a shorter result."""
    lost = [s for s in shards if s.index not in got]
    if lost:
        raise ScaleError(
            f"{len(lost)} of {len(shards)} shards have no record (first: examples {lost[0].start}-{lost[0].stop - 1})"
        )
    recs = [got[s.index] for s in shards]
    preds = np.concatenate([r.preds for r in recs], axis=1)
    halts = np.concatenate([r.halts for r in recs], axis=1)
    last = np.concatenate([r.last for r in recs])
    return list(preds), list(halts) if len(halts) else [], last


def groups_of(data: Any) -> list[str] | None:
    """The group of each example: ARC's task (every augmented copy of a task in one shard), else none."""
    augs = getattr(data, "augmentations", None)
    return None if augs is None else [a.task for a in augs]


def onnx_rollout(
    runner: Any,
    data: Any,
    batch: int,
    name: str,
    key: str | None,
    run: ScaleRun | None = None,
    steps: int | None = None,
) -> Rollout:
    """Runner.run over `data` in the shard plan's batches (validate/stage.py's ONNX rollout): `steps` steps per
    example (None: the step budget; tune's test-time depth records more)."""
    run = run or begin()
    ids = data.puzzle_ids if runner.takes_puzzle_ids else None

    def spec(ship: bool) -> OnnxSpec:
        return OnnxSpec.of(runner, ship, steps)

    def local() -> Worker:
        return Worker.around(onnx_solver(runner, steps))

    return sharded(run, name, spec, local, data.inputs, ids, batch, key, groups_of(data))


def reference_key(
    model: Any, data: Any, ids: np.ndarray | None, weights_sha256: str | None, run: ScaleRun
) -> str | None:
    """validate/reference.py's rollout key; on a GPU, the device joins it (GPU answers are not the CPU's)."""
    if not weights_sha256:
        return None
    from ..validate.reference import keyed, rollout_key

    key = rollout_key(model, keyed(data.inputs, ids), weights_sha256)
    return key if run.device == "cpu" else key_of(key, run.device_name, "tf32 off")


def reference_rollout(
    model: Any,
    data: Any,
    batch: int,
    name: str,
    weights_sha256: str | None,
    log: Any = None,
    run: ScaleRun | None = None,
) -> Rollout:
    """The PyTorch reference over `data`, sharded, on the run's device; the whole rollout cached as before
    (validate/reference.py), each shard cached on its own so a stopped run resumes."""
    from ..export.graphs import takes_puzzle_ids
    from ..validate.reference import cached_rollout

    run = run or begin()
    ids = data.puzzle_ids if takes_puzzle_ids(model) else None
    key = reference_key(model, data, ids, weights_sha256, run)
    device = run.device

    def spec(ship: bool) -> TorchSpec:
        return TorchSpec(model, device)

    def local() -> Worker:
        return Worker.around(torch_solver(model, device, None))

    def compute() -> Rollout:
        return sharded(run, name, spec, local, data.inputs, ids, batch, key, groups_of(data))

    if key is None:
        return compute()
    return cached_rollout("reference", key, compute, name, log)[0]


__all__ = ["ScaleRun", "ScaleSettings", "begin", "onnx_rollout", "reference_rollout", "sharded"]
