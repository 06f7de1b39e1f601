"""Progress of long stages: rich bars on a terminal, a plain line every few seconds in CI logs, nothing in library
use or tests unless a caller asks for it.

Stages call `with progress.task("reference rollout", total=n) as t: ... t.advance(k)`; the CLI installs a reporter
(`with progress.reporting(...)`) around a command. Output goes to stderr, so `--json` output on stdout stays
clean. Needs only the standard library (rich is imported by the terminal reporter alone).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO


class Task:
    """One running stage: `advance(k)` items done; `total` may be 0 for stages without a count."""

    def __init__(self, label: str, total: int, on_update: Callable[[Task], None] | None = None) -> None:
        self.label, self.total, self.done = label, max(0, int(total)), 0
        self.started = time.monotonic()
        self._on_update = on_update

    def advance(self, k: int = 1) -> None:
        self.done += k
        if self._on_update is not None:
            self._on_update(self)

    def line(self) -> str:
        """'label: 64/256 (25%), 12.3/s, about 15 s left' (what plain logs show)."""
        elapsed = max(time.monotonic() - self.started, 1e-9)
        if not self.total:
            return f"{self.label}: {self.done} done, {elapsed:.0f} s"
        rate = self.done / elapsed
        left = (self.total - self.done) / rate if rate > 0 else float("inf")
        eta = f", about {left:.0f} s left" if self.done and left != float("inf") else ""
        return f"{self.label}: {self.done}/{self.total} ({100 * self.done / self.total:.0f}%), {rate:.1f}/s{eta}"


class Reporter:
    """No output: the default for library calls and tests."""

    def start(self, t: Task) -> None:
        pass

    def update(self, t: Task) -> None:
        pass

    def finish(self, t: Task) -> None:
        pass

    def close(self) -> None:
        pass


class PlainReporter(Reporter):
    """CI logs: a line when a stage starts, every `every` seconds while it runs, and when it ends."""

    def __init__(self, stream: TextIO | None = None, every: float = 10.0) -> None:
        self.stream = stream or sys.stderr
        self.every = every
        self._last: dict[int, float] = {}

    def _print(self, text: str) -> None:
        print(f"  … {text}", file=self.stream, flush=True)

    def start(self, t: Task) -> None:
        self._last[id(t)] = time.monotonic()
        self._print(f"{t.label}: started ({t.total} to do)" if t.total else f"{t.label}: started")

    def update(self, t: Task) -> None:
        now = time.monotonic()
        if now - self._last.get(id(t), 0.0) >= self.every:
            self._last[id(t)] = now
            self._print(t.line())

    def finish(self, t: Task) -> None:
        self._last.pop(id(t), None)
        self._print(f"{t.label}: done in {time.monotonic() - t.started:.1f} s")


class RichReporter(Reporter):
    """A terminal: one rich bar per running stage (items, rate, time left), removed when it ends."""

    def __init__(self, console: Any = None) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._p = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self._p.start()
        self._ids: dict[int, Any] = {}

    def start(self, t: Task) -> None:
        self._ids[id(t)] = self._p.add_task(t.label, total=t.total or None)

    def update(self, t: Task) -> None:
        self._p.update(self._ids[id(t)], completed=t.done)

    def finish(self, t: Task) -> None:
        self._p.remove_task(self._ids.pop(id(t)))

    def close(self) -> None:
        self._p.stop()


_reporter: Reporter = Reporter()


@contextmanager
def reporting(reporter: Reporter) -> Iterator[Reporter]:
    """Install `reporter` for the duration of a command."""
    global _reporter
    previous, _reporter = _reporter, reporter
    try:
        yield reporter
    finally:
        reporter.close()
        _reporter = previous


def for_stream(stream: TextIO, console: Any = None, quiet: bool = False) -> Reporter:
    """The reporter a command uses: rich bars when `stream` is a terminal, plain lines otherwise."""
    if quiet:
        return Reporter()
    if stream.isatty():
        return RichReporter(console)
    return PlainReporter(stream)


@contextmanager
def task(label: str, total: int = 0) -> Iterator[Task]:
    """A stage with `total` items (0: uncounted); reported through the installed reporter."""
    r = _reporter
    t = Task(label, total, r.update)
    r.start(t)
    try:
        yield t
    finally:
        r.finish(t)
