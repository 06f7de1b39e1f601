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
  A graph call that fails at run time stops the server: every waiting Future fails with `ServerFailed` and
  `submit` raises it, so no caller waits forever. `stop()` ends serving at once (between two graph calls) and
  answers nothing more; `close()` answers everything queued first.
- `LineReader`: lines of a byte stream (serve's stdin) with a per-line byte cap, without ever holding more than
  the cap and one read of the stream in memory.

Every sample's trajectory is the one `Runner.solve(mode="host")` computes for it: the same answer and step count.
"""

from __future__ import annotations

import os
import queue
import select
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import first_line
from .errors import ArtefactError, RuntimeInputError

if TYPE_CHECKING:
    from .runner import Runner

MAX_LINE_BYTES = 1 << 20  # serve: the longest stdin line read; a longer one is an error line, skipped unread
_POLL_S = 0.05  # how often a blocked worker or submit looks at the stop flag


class ServerFailed(ArtefactError):
    """A graph call failed at run time (a damaged graph, or the device out of memory): the server has stopped and
    every request it held fails with this error."""


class ServerStopped(RuntimeInputError):
    """The server was stopped (`Server.stop`) before this request was answered, or it takes no more requests."""


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
    """The server's queue; a blocking poll wakes every `_POLL_S` to see the halt flag."""

    def __init__(self, q: queue.Queue[Any], stop: object, halt: threading.Event) -> None:
        self._q, self._stop, self._halt, self._done = q, stop, halt, False

    def poll(self, block: bool) -> tuple[Any, np.ndarray] | None:
        while not self._done and not self._halt.is_set():
            try:
                item = self._q.get(block=block, timeout=_POLL_S if block else None)
            except queue.Empty:
                if block:
                    continue
                return None
            if item is self._stop:
                self._done = True
                break
            return item  # type: ignore[no-any-return]
        raise StopIteration


class SlotScheduler:
    """B slots on one runner's step graph, refilled as samples halt."""

    def __init__(
        self, runner: Runner, slots: int = 16, max_steps: int | None = None, threshold: float | None = None
    ) -> None:
        if isinstance(slots, bool) or not isinstance(slots, int) or not 1 <= slots <= 65536:
            raise RuntimeInputError(f"slots must be an integer in [1, 65536], got {slots!r}")
        if runner.stopping.solver == "anderson":
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

    def run(
        self, requests: Iterable[tuple[Any, np.ndarray]] | RequestSource, halt: threading.Event | None = None
    ) -> Iterator[Answer]:
        """Answers in completion order. `requests` is an iterable of (request_id, example), or a `RequestSource`
        whose `poll(block)` is asked without blocking while samples are running, so they never stall. Once `halt`
        is set the run ends before its next graph call, leaving the samples in flight unanswered."""
        r, names = self.runner, self.runner.state_names
        source = requests if isinstance(requests, RequestSource) else _IterSource(requests)
        exhausted = False
        state: list[np.ndarray] = []
        x = np.empty(0)
        ids: list[Any] = []
        steps = np.zeros(0, np.int64)
        started = np.zeros(0)
        while halt is None or not halt.is_set():
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
            if halt is not None and halt.is_set():
                return
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
    """`SlotScheduler` on a worker thread behind a bounded request queue. Answered requests are not kept: a
    request's Future is dropped by the server once it is resolved."""

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
        self._stop_sent = False
        self._halt = threading.Event()
        self._failure: ServerFailed | None = None
        self._thread = threading.Thread(target=self._work, name="edgekit-server", daemon=True)
        self._thread.start()

    @property
    def failure(self) -> ServerFailed | None:
        """Why the worker stopped serving (a graph call that failed at run time), or None while it serves."""
        return self._failure

    @property
    def pending(self) -> int:
        """Requests submitted and not answered yet (queued or in a slot)."""
        with self._lock:
            return len(self._futures)

    def submit(self, example: np.ndarray, timeout: float | None = None) -> Future[Answer]:
        """Queue one example; blocks while the queue is full (raises queue.Full after `timeout` seconds). Raises
        `ServerFailed` once the worker has failed and `ServerStopped` once the server is closed or stopped, also
        while blocked, so a caller never waits on a server that will not answer."""
        self._raise_if_stopped()
        fut: Future[Answer] = Future()
        with self._lock:
            rid, self._next = self._next, self._next + 1
            self._futures[rid] = fut
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = _POLL_S if deadline is None else min(_POLL_S, max(0.0, deadline - time.monotonic()))
            try:
                self._queue.put((rid, example), timeout=wait)
                break
            except queue.Full:
                stopped = self._failure is not None or self._halt.is_set() or self._closed
                if stopped or (deadline is not None and time.monotonic() >= deadline):
                    with self._lock:
                        self._futures.pop(rid, None)
                    self._raise_if_stopped()
                    raise
        if self._failure is not None or self._halt.is_set():  # stopped while the request went in: never hang it
            self._fail_waiting()
        return fut

    def _raise_if_stopped(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._closed or self._halt.is_set():
            raise ServerStopped("the server is closed; it takes no more requests")

    def _work(self) -> None:
        try:
            for ans in self.scheduler.run(_QueueSource(self._queue, self._STOP, self._halt), self._halt):
                if self._halt.is_set():  # stopped: answer nothing more
                    break
                with self._lock:
                    fut = self._futures.pop(ans.request_id, None)
                if fut is not None:  # None: failed by stop() meanwhile
                    fut.set_result(ans)
        except BaseException as e:  # a broken graph fails every waiting request instead of hanging them
            self._failure = ServerFailed(
                f"serving stopped: a graph call failed at run time ({first_line(e, 200)}); check the artefact "
                "with `edgekit verify` and the device's free memory"
            )
            self._failure.__cause__ = e
            self._halt.set()
        self._fail_waiting()

    def _fail_waiting(self) -> None:
        """Fail every request not answered: queued ones are taken off the queue (nothing computes them)."""
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        with self._lock:
            waiting, self._futures = list(self._futures.values()), {}
        err: BaseException = self._failure or ServerStopped("the server was stopped before this request was answered")
        for fut in waiting:
            fut.set_exception(err)

    def close(self, timeout: float | None = None) -> bool:
        """Answer everything queued, then stop the worker. With `timeout`, wait at most that long and return
        whether the worker has ended (call again to keep waiting); without, wait until it has."""
        self._closed = True
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._stop_sent and not self._halt.is_set():
            try:
                self._queue.put(self._STOP, timeout=_POLL_S)
                self._stop_sent = True
            except queue.Full:
                if deadline is not None and time.monotonic() >= deadline:
                    return False
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        self._thread.join(left)
        return not self._thread.is_alive()

    def stop(self, timeout: float = 1.0) -> bool:
        """Stop now: the worker ends before its next graph call, nothing more is answered, and every request
        not answered fails with `ServerStopped`. Returns whether the worker ended within `timeout` seconds
        (a graph call in progress is never interrupted)."""
        self._closed = True
        self._halt.set()
        self._thread.join(timeout)
        self._fail_waiting()
        return not self._thread.is_alive()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        """Leaving normally answers everything queued; leaving on an exception (a signal) stops at once."""
        if exc_type is None:
            self.close()
        else:
            self.stop()


class LineReader:
    """Lines of a file descriptor as bytes, numbered from 1, each at most `max_bytes` long (its newline not
    counted). A longer line comes back as None in place of its bytes, after skipping it unread: memory stays
    within the cap plus one read whatever the stream holds. `read(timeout)` waits at most `timeout` seconds
    for data (select) so the caller can look at other things between lines; it returns None at end of stream."""

    def __init__(self, fd: int, max_bytes: int = MAX_LINE_BYTES, chunk: int = 1 << 16) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
            raise RuntimeInputError(f"max_bytes must be an integer >= 1, got {max_bytes!r}")
        self.fd, self.max_bytes, self.chunk = fd, max_bytes, chunk
        self.number = 0
        self._buf = bytearray()
        self._too_long = False
        self._eof = False

    def _ready(self, timeout: float | None) -> bool:
        if timeout is None:
            return True
        try:
            return bool(select.select([self.fd], [], [], timeout)[0])
        except (OSError, ValueError):  # an fd select cannot watch: read blocking
            return True

    def read(self, timeout: float | None = None) -> list[tuple[int, bytes | None]] | None:
        """The complete lines that arrived (maybe none), or None once the stream has ended and all were given."""
        if self._eof:
            return None
        if not self._ready(timeout):
            return []
        data = os.read(self.fd, self.chunk)
        if not data:
            self._eof = True
            last = self._take(final=True)
            return last or None
        out: list[tuple[int, bytes | None]] = []
        start = 0
        while True:
            end = data.find(b"\n", start)
            piece = data[start:] if end < 0 else data[start:end]
            if not self._too_long:
                if len(self._buf) + len(piece) > self.max_bytes:
                    self._too_long, self._buf = True, bytearray()
                else:
                    self._buf += piece
            if end < 0:
                return out
            out += self._take(final=False)
            start = end + 1

    def _take(self, final: bool) -> list[tuple[int, bytes | None]]:
        if final and not self._buf and not self._too_long:
            return []  # the stream ended with a newline
        self.number += 1
        line = None if self._too_long else bytes(self._buf)
        self._buf, self._too_long = bytearray(), False
        return [(self.number, line)]
