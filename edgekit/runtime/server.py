"""Serving with slot refill (continuous batching) on the step graph.

A batch of B slots runs the step graph together; when a sample halts (halting logit above the threshold, DEQ
residual within tolerance, or the step cap) its answer is read out and its slot is refilled at once from the
request queue: the newcomer is encoded and joins at its first step while the others keep their state. The batch
never drains and never waits for its slowest member, which is where early halting pays on a stream of requests
of mixed difficulty (a fixed batch, even with compaction, runs as long as its hardest member).

- `SlotScheduler.run(requests)`: the synchronous core; pulls (request_id, example) pairs from an iterable only
  when a slot is free and yields an `Answer` per request as soon as it is ready (completion order).
- `Server`: the same loop on a worker thread behind a bounded queue: `submit(example)` returns a Future and blocks
  (back-pressure) while the queue is full. A request that fails validation gets its own error; the others go on.

Every sample's trajectory is the one `Runner.solve(mode="host")` computes for it: the same answer and step count.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import RuntimeInputError
from .runner import Runner


@dataclass
class Answer:
    """One request's answer: predictions and logits at its halting step, the steps it ran, whether it halted
    before the cap, and its service time (from entering a slot to the answer), or the error that refused it."""

    request_id: Any
    prediction: np.ndarray | None
    logits: np.ndarray | None
    steps: int
    halted: bool
    service_s: float
    error: str | None = None


class RequestSource:
    """Where a scheduler gets requests: `poll(block)` returns (request_id, example), None when nothing is waiting
    (only when block is False), and raises StopIteration when no request will come any more."""

    def poll(self, block: bool) -> tuple[Any, np.ndarray] | None:
        raise NotImplementedError


class _IterSource(RequestSource):
    def __init__(self, items: Iterable[tuple[Any, np.ndarray]]) -> None:
        self._it = iter(items)

    def poll(self, block: bool) -> tuple[Any, np.ndarray] | None:
        return next(self._it)


class _QueueSource(RequestSource):
    def __init__(self, q: queue.Queue[Any], stop: object) -> None:
        self._q, self._stop, self._done = q, stop, False

    def poll(self, block: bool) -> tuple[Any, np.ndarray] | None:
        if self._done:
            raise StopIteration
        try:
            item = self._q.get(block=block)
        except queue.Empty:
            return None
        if item is self._stop:
            self._done = True
            raise StopIteration
        return item  # type: ignore[no-any-return]


class SlotScheduler:
    """B slots on one runner's step graph, refilled as samples halt."""

    def __init__(
        self, runner: Runner, slots: int = 16, max_steps: int | None = None, threshold: float | None = None
    ) -> None:
        if isinstance(slots, bool) or not isinstance(slots, int) or not 1 <= slots <= 65536:
            raise RuntimeInputError(f"slots must be an integer in [1, 65536], got {slots!r}")
        if runner.family == "deq" and runner.solver.get("name") == "anderson":
            raise RuntimeInputError(
                "slot-refill serving runs one state per sample; an Anderson DEQ carries a "
                "history: answer it with Runner.solve"
            )
        if runner.takes_puzzle_ids:
            raise RuntimeInputError(
                "this artefact takes puzzle identifiers (ARC); the slot-refill server does not carry them yet: "
                "answer it with Runner.solve(x, puzzle_ids=...) or Runner.solve_arc"
            )
        self.runner = runner
        self.slots = slots
        self.cap, self.threshold = runner.limits(max_steps, threshold)

    def _admit(self, pending: list[tuple[Any, np.ndarray]]) -> tuple[list[tuple[Any, np.ndarray]], list[Answer]]:
        """Validate newcomers one by one: a bad request is answered with its error, the rest are admitted."""
        ok, refused = [], []
        for rid, example in pending:
            try:
                ok.append((rid, self.runner.check_inputs(np.asarray(example)[None])[0]))
            except RuntimeInputError as e:
                refused.append(Answer(rid, None, None, 0, False, 0.0, str(e)))
        return ok, refused

    def run(self, requests: Iterable[tuple[Any, np.ndarray]] | RequestSource) -> Iterator[Answer]:
        """Answers in completion order. `requests` is an iterable of (request_id, example), or a `RequestSource`
        whose `poll(block)` is asked without blocking while samples are running, so they never stall."""
        r, names = self.runner, self.runner.state_names
        source = requests if isinstance(requests, RequestSource) else _IterSource(requests)
        exhausted = False
        state: list[np.ndarray] = []
        x = np.empty(0)
        ids: list[Any] = []
        steps = np.zeros(0, np.int64)
        started = np.zeros(0)
        while True:
            free = self.slots - len(ids)
            pending: list[tuple[Any, np.ndarray]] = []
            while free > len(pending) and not exhausted:
                try:
                    item = source.poll(block=not ids and not pending)
                except StopIteration:
                    exhausted = True
                    break
                if item is None:
                    break
                pending.append(item)
            admitted, refused = self._admit(pending)
            yield from refused
            if admitted:
                xe = r.call("encode", {"inputs": np.stack([ex for _, ex in admitted])})[0]
                init = r.initial_state(xe)
                now = time.perf_counter()
                if ids:
                    state = [np.concatenate([s, i]) for s, i in zip(state, init)]
                    x = np.concatenate([x, xe])
                else:
                    state, x = init, xe
                ids += [rid for rid, _ in admitted]
                steps = np.concatenate([steps, np.zeros(len(admitted), np.int64)])
                started = np.concatenate([started, np.full(len(admitted), now)])
            if not ids:
                if exhausted:
                    return
                continue
            out = r.call("step", {**dict(zip(names, state)), "x": x})
            new, signal = out[:-1], out[-1]
            steps += 1
            stop = r.stops(signal, self.threshold)
            finish = stop | (steps >= self.cap)
            if finish.any():
                head = r.call("readout", dict(zip(names, [s[finish] for s in new])))
                now = time.perf_counter()
                for j, i in enumerate(np.flatnonzero(finish)):
                    logits = head[0][j]
                    yield Answer(
                        ids[i],
                        np.asarray(logits.argmax(-1)),
                        logits,
                        int(steps[i]),
                        bool(stop[i]),
                        now - float(started[i]),
                    )
                keep = ~finish
                ids = [rid for rid, k in zip(ids, keep) if k]
                new, x, steps, started = [s[keep] for s in new], x[keep], steps[keep], started[keep]
            state = new


class Server:
    """`SlotScheduler` on a worker thread behind a bounded request queue."""

    _STOP = object()

    def __init__(
        self,
        runner: Runner,
        slots: int = 16,
        queue_size: int = 256,
        max_steps: int | None = None,
        threshold: float | None = None,
    ) -> None:
        if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 1:
            raise RuntimeInputError(f"queue_size must be an integer >= 1, got {queue_size!r}")
        self.scheduler = SlotScheduler(runner, slots, max_steps, threshold)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._futures: dict[int, Future[Answer]] = {}
        self._next = 0
        self._lock = threading.Lock()
        self._closed = False
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="edgekit-server", daemon=True)
        self._thread.start()

    def submit(self, example: np.ndarray, timeout: float | None = None) -> Future[Answer]:
        """Queue one example; blocks while the queue is full (raises queue.Full after `timeout` seconds)."""
        if self._closed:
            raise RuntimeInputError("the server is closed")
        fut: Future[Answer] = Future()
        with self._lock:
            rid, self._next = self._next, self._next + 1
            self._futures[rid] = fut
        try:
            self._queue.put((rid, example), timeout=timeout)
        except queue.Full:
            with self._lock:
                del self._futures[rid]
            raise
        return fut

    def _work(self) -> None:
        try:
            for ans in self.scheduler.run(_QueueSource(self._queue, self._STOP)):
                with self._lock:
                    fut = self._futures.pop(ans.request_id)
                fut.set_result(ans)
        except BaseException as e:  # a broken graph fails every waiting request instead of hanging them
            self._failure = e
            with self._lock:
                waiting, self._futures = list(self._futures.values()), {}
            for fut in waiting:
                fut.set_exception(e)

    def close(self) -> None:
        """Answer everything queued, then stop the worker."""
        if not self._closed:
            self._closed = True
            self._queue.put(self._STOP)
            self._thread.join()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
