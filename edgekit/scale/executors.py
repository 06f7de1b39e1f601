"""Executors: where the shards of a rollout run, behind one small interface, registered by name.

- `serial` (the default): in this process, on the driver's own Runner or model; needs nothing new.
- `processes`: a pool of this machine's processes (spawned, one Worker each, threads split between them).
- `ray`: Ray actors, each holding one Worker, on a local Ray instance or a cluster (`validate.ray_address`,
  `RAY_ADDRESS`); the variant's files travel once per actor through Ray's object store.

An executor changes where a shard runs, never what is in it (edgekit/scale/plan.py). Records stream back to the
driver, which caches and counts them as they arrive. A worker that dies has its shard sent again, to a fresh
worker, up to SHARD_RETRIES times; then the run stops with one line, and no merged result is made.
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from ..errors import EdgekitError, first_line
from .plan import Shard
from .settings import ScaleError, ScaleSettings, check_address, import_ray
from .work import OnnxSpec, ShardActor, ShardRecord, TorchSpec, Worker

SHARD_RETRIES = 2  # a shard whose worker died is sent again this many times before the run stops
IN_FLIGHT = 2  # shards queued per Ray actor: the next one is there when the current one ends

Done = Callable[[Shard, ShardRecord], None]
SpecFn = Callable[[bool], OnnxSpec | TorchSpec]  # the worker spec; True: with the files' bytes (other machines)
LocalFn = Callable[[], Worker]  # the driver's own worker (serial)


class Executor:
    """Runs `shards` of `inputs` (and puzzle ids) on workers built from `spec`, calling `done` per record, in any
    order. `local` is the driver's own solver (serial only). `workers` / `threads` say what it used."""

    name: ClassVar[str] = ""
    workers: int = 1
    threads: int | None = None

    def __init__(self, settings: ScaleSettings) -> None:
        self.settings = settings

    def run(
        self,
        spec: SpecFn,
        local: LocalFn,
        shards: list[Shard],
        inputs: np.ndarray,
        ids: np.ndarray | None,
        batch: int,
        done: Done,
    ) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the executor started (its workers; a Ray instance it started stays for the process)."""


EXECUTORS: dict[str, type[Executor]] = {}


def register(cls: type[Executor]) -> type[Executor]:
    EXECUTORS[cls.name] = cls
    return cls


def get_executor(settings: ScaleSettings) -> Executor:
    return EXECUTORS[settings.executor](settings)


def _part(a: np.ndarray | None, s: Shard) -> np.ndarray | None:
    return None if a is None else np.ascontiguousarray(a[s.start : s.stop])


@register
class SerialExecutor(Executor):
    name = "serial"

    def run(
        self,
        spec: SpecFn,
        local: LocalFn,
        shards: list[Shard],
        inputs: np.ndarray,
        ids: np.ndarray | None,
        batch: int,
        done: Done,
    ) -> None:
        worker = local()
        for s in shards:
            x = inputs[s.start : s.stop]
            done(s, worker.run(x, _part(ids, s), batch))


_pool_actor: ShardActor | None = None


def _pool_init(spec: OnnxSpec | TorchSpec, threads: int | None) -> None:
    global _pool_actor
    _pool_actor = ShardActor(spec, threads)


def _pool_run(x: np.ndarray, ids: np.ndarray | None, batch: int) -> ShardRecord:
    assert _pool_actor is not None
    return _pool_actor.run(x, ids, batch)


@register
class ProcessesExecutor(Executor):
    """A spawned process pool on this machine: `workers` processes (default: one per CPU) with the CPUs split
    between them (intra-op threads of onnxruntime and PyTorch)."""

    name = "processes"

    def __init__(self, settings: ScaleSettings) -> None:
        super().__init__(settings)
        cpus = os.cpu_count() or 1
        self.workers = settings.workers or cpus
        self.threads = max(1, cpus // self.workers)

    def run(
        self,
        spec: SpecFn,
        local: LocalFn,
        shards: list[Shard],
        inputs: np.ndarray,
        ids: np.ndarray | None,
        batch: int,
        done: Done,
    ) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed
        from concurrent.futures.process import BrokenProcessPool

        the_spec = spec(False)  # same machine: the folder is read in place, after its hashes are checked
        todo = list(shards)
        tries: dict[int, int] = {}
        while todo:
            pool = ProcessPoolExecutor(
                max_workers=min(self.workers, len(todo)),
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_pool_init,
                initargs=(the_spec, self.threads),
            )
            futures = {pool.submit(_pool_run, inputs[s.start : s.stop], _part(ids, s), batch): s for s in todo}
            todo = []
            try:
                for f in as_completed(futures):
                    s = futures[f]
                    try:
                        rec = f.result()
                    except BrokenProcessPool:  # a process died: its shard, and every shard not back, again
                        _retry(s, tries)
                        todo.append(s)
                        continue
                    except EdgekitError:
                        raise
                    except Exception as e:  # a worker's own error, pickled back: one line
                        raise ScaleError(f"a worker failed: {first_line(e)}") from None
                    done(s, rec)
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
            todo.sort(key=lambda s: s.index)


def _retry(s: Shard, tries: dict[int, int]) -> None:
    tries[s.index] = tries.get(s.index, 0) + 1
    if tries[s.index] > SHARD_RETRIES:
        raise ScaleError(
            f"workers died {tries[s.index]} times on examples {s.start}-{s.stop - 1}; nothing was merged",
            "look at the workers' memory and logs (Ray: `ray logs`), then run again (finished shards are cached)",
        )


_ray_started: bool = False


def ray_connect(address: str | None, cpus: int | None) -> Any:
    """Ray, connected once per process: to `address` (checked to answer first), else a local instance of `cpus`."""
    global _ray_started
    ray = import_ray()
    if ray.is_initialized():
        return ray
    check_address(address)
    try:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as e:
        raise ScaleError(
            f"cannot connect to Ray at {address or 'a new local instance'} ({first_line(e, 120)})",
            "start the cluster (`ray start --head`) or fix validate.ray_address / RAY_ADDRESS; a cluster with token "
            "authentication (the default of `ray start`) also needs RAY_AUTH_MODE=token and its token here",
        ) from None
    _ray_started = True
    return ray


@register
class RayExecutor(Executor):
    """Actors holding one Worker each. `workers` defaults to the cluster's CPUs (one thread per worker); with
    validate.device cuda each actor asks for a quarter of a GPU (four small models share one)."""

    name = "ray"
    threads = 1

    def __init__(self, settings: ScaleSettings) -> None:
        super().__init__(settings)
        self.nodes: set[str] = set()

    def run(
        self,
        spec: SpecFn,
        local: LocalFn,
        shards: list[Shard],
        inputs: np.ndarray,
        ids: np.ndarray | None,
        batch: int,
        done: Done,
    ) -> None:
        ray = ray_connect(self.settings.ray_address, self.settings.workers)
        from ray.exceptions import RayActorError, RayTaskError, WorkerCrashedError

        cluster_cpus = int(ray.cluster_resources().get("CPU", 1))
        self.workers = min(self.settings.workers or max(1, cluster_cpus), len(shards))
        sp = spec(True)
        gpu = 0.25 if isinstance(sp, TorchSpec) and sp.device == "cuda" else 0
        the_spec = ray.put(sp)
        actor_cls = ray.remote(num_cpus=self.threads, num_gpus=gpu, max_restarts=0)(ShardActor)
        actors = [actor_cls.remote(the_spec, self.threads) for _ in range(self.workers)]
        gen = [0] * len(actors)  # bumped when an actor is replaced: late failures of the old one are not counted
        load = [0] * len(actors)
        todo = deque(shards)
        flight: dict[Any, tuple[Shard, int, int]] = {}
        tries: dict[int, int] = {}
        try:
            while todo or flight:
                for level in range(1, IN_FLIGHT + 1):  # every actor one shard before any gets a second
                    for a in range(len(actors)):
                        if todo and load[a] < level:
                            s = todo.popleft()
                            ref = actors[a].run.remote(inputs[s.start : s.stop], _part(ids, s), batch)
                            flight[ref] = (s, a, gen[a])
                            load[a] += 1
                ready, _ = ray.wait(list(flight), num_returns=1)
                for ref in ready:
                    s, a, g = flight.pop(ref)
                    if g == gen[a]:
                        load[a] -= 1
                    try:
                        rec = ray.get(ref)
                    except (RayActorError, WorkerCrashedError):
                        _retry(s, tries)
                        todo.appendleft(s)
                        if g == gen[a]:  # the actor died: a fresh one takes its place
                            ray.kill(actors[a], no_restart=True)
                            actors[a] = actor_cls.remote(the_spec, self.threads)
                            gen[a] += 1
                            load[a] = 0
                        continue
                    except RayTaskError as e:
                        cause = getattr(e, "cause", None)
                        if isinstance(cause, EdgekitError):
                            raise ScaleError(cause.problem, cause.fix) from None
                        raise ScaleError(f"a worker failed: {first_line(cause or e)}") from None
                    self.nodes.add(rec.where.split("/")[0])
                    done(s, rec)
        finally:
            for actor in actors:
                with contextlib.suppress(Exception):  # an actor already gone
                    ray.kill(actor, no_restart=True)
