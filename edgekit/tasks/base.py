"""What every task provides: examples to validate on, and how to recognise artefacts it can feed.

A task is one file in `edgekit/tasks/` that defines a `Task` subclass and registers it with `@register`; the
pipeline, the validation stage and `edgekit bench` only ever go through `get_task(name)`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np

from ..contracts import TOKENS, contract_of


@dataclass
class TaskData:
    """Examples a stage runs on: inputs, labels ([N, L] for sequence tasks, [N, 1] for classification) and a
    one-line description recorded in results.json so a reader knows what was measured."""

    inputs: np.ndarray
    labels: np.ndarray  # positions the metrics skip (the reference's ignore_label_id) hold files.IGNORE
    description: str
    source: dict[str, Any] | None = None  # file, split and examples measured (task data read from files)
    meta: Any = None  # files.Meta of a dataset folder: what it declares, checked against the model
    puzzle_ids: np.ndarray | None = None
    names: list[str] | None = None  # identifier name of each example (ARC: task and augmentation)
    augmentations: list[Any] | None = None  # runtime.arc.Augmentation of each example (ARC)
    scoring: Any = None  # computed once by the task's answer_metrics (ARC: each example's test input and truth)


class TaskSettings(Protocol):
    """The recipe's `task` section as tasks read it (edgekit.schema.TaskSection)."""

    name: str
    n: int
    seed: int
    givens: tuple[int, int] | None
    data: str | None  # a dataset folder (reference layout) or .npz; None: the task generates examples
    split: str
    calibration_split: str


class Task:
    """One task: `load` returns examples of a split (read from `task.data`, else generated); `fits` says whether
    an artefact's input contract is this task's, so device commands can generate held-out inputs without a
    recipe; `parse_line` / `render` are its text form."""

    name: ClassVar[str]
    description: ClassVar[str]
    reads_files: ClassVar[bool] = True  # accepts task.data (a reference-layout folder or .npz)
    generates: ClassVar[bool] = True  # can make examples itself when task.data is not set
    contract: ClassVar[str] = TOKENS  # the kind of input it fits (edgekit.contracts), whatever the model family

    def load(self, settings: TaskSettings, n: int, seed: int, split: str) -> TaskData:
        """`split` is "test" (the validation examples) or "train" (calibration, threshold and search sets)."""
        if getattr(settings, "data", None):
            from .loading import load_files

            return load_files(settings, n, seed, split)
        return _cached_generate(self, settings, n, seed, split)

    def generate(self, settings: TaskSettings, n: int, seed: int, split: str) -> TaskData:
        raise NotImplementedError(f"task {self.name} reads its examples from task.data")

    def fits(self, input_spec: dict[str, Any], family: str | None = None) -> bool:
        """Whether an artefact's input contract is this task's (`family` is not consulted: tasks fit inputs)."""
        return False

    def takes(self, input_spec: dict[str, Any]) -> bool:
        """The input is of this task's contract kind (token ids, feature vectors)."""
        return contract_of(input_spec) == self.contract

    def answer_metrics(
        self, data: TaskData, preds: list[np.ndarray], halts: list[np.ndarray], threshold: float
    ) -> dict[str, Any] | None:
        """Task-level scores beyond exact accuracy per example, from a variant's per-step predictions and halting
        logits (ARC: pass@k after voting); None for tasks scored per example."""
        return None

    def answers_file(self, data: TaskData, preds: list[np.ndarray], halts: list[np.ndarray]) -> tuple[str, Any] | None:
        """A file of answers the artefact carries (ARC: submission.json), as (name, JSON object)."""
        return None

    def parse_line(self, line: str, length: int) -> np.ndarray:
        """One example from a line of text (`edgekit solve --inputs FILE.txt`, `serve`): numbers separated by spaces
        or commas, whole token ids for a token contract, finite numbers for features. ValueError with a one-line
        reason naming the token when the line is not an example."""
        return parse_numbers(line, length, integers=self.contract == TOKENS)

    def render(self, prediction: np.ndarray) -> str:
        """An answer as one line of text."""
        return " ".join(str(int(v)) for v in np.asarray(prediction).reshape(-1))


_WHOLE = re.compile(r"[+-]?[0-9]+", re.ASCII)  # decimal digits only: never `1_0`, `1.5`, `0x10` or `²`
_INT64 = np.iinfo(np.int64)


def parse_numbers(line: str, length: int, integers: bool) -> np.ndarray:
    """`length` numbers separated by spaces or commas: int64 token ids (whole decimal numbers in the int64 range;
    `1.5`, `nan`, `1e3` are refused, never truncated) or float64 features (finite; `nan`, `inf`, `1e400` refused).
    ValueError naming the first bad token by position and the fix."""
    fields = line.replace(",", " ").split()
    if len(fields) != length:
        raise ValueError(f"expected {length} numbers, got {len(fields)}")
    if integers:
        out = np.empty(length, np.int64)
        for i, f in enumerate(fields):
            if not _WHOLE.fullmatch(f):
                raise ValueError(f"token {i + 1} ({_shown(f)}) is not a whole number: write token ids like 0 or 7")
            value = int(f) if len(f) <= 20 else None  # int64 has 19 digits: longer strings are never parsed
            if value is None or not _INT64.min <= value <= _INT64.max:
                raise ValueError(f"token {i + 1} ({_shown(f)}) is beyond int64: write the model's token ids")
            out[i] = value
        return out
    values = np.empty(length, np.float64)
    for i, f in enumerate(fields):
        try:
            values[i] = float(f) if "_" not in f else math.nan
        except ValueError:
            values[i] = math.nan
        if not math.isfinite(values[i]):
            raise ValueError(f"value {i + 1} ({_shown(f)}) is not a finite number: write numbers such as 0.5 or -2")
    return values


def _shown(text: str) -> str:
    """A token as an error shows it: at most 20 characters, escaped."""
    return repr(text[:20]) + ("..." if len(text) > 20 else "")


_REGISTRY: dict[str, Task] = {}


def register(cls: type[Task]) -> type[Task]:
    """Class decorator: make a task selectable by its `name` in recipes."""
    _REGISTRY[cls.name] = cls()
    return cls


def task_names() -> list[str]:
    return sorted(_REGISTRY)


def get_task(name: str) -> Task:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; known: {', '.join(task_names())}") from None


def task_for_inputs(input_spec: dict[str, Any], family: str) -> Task | None:
    """The registered task whose inputs an artefact takes, if any: tasks that generate examples first (they can
    feed `bench` / `solve` without files), then in name order."""
    order = sorted(_REGISTRY.values(), key=lambda t: (not t.generates, t.name))
    return next((t for t in order if t.fits(input_spec, family)), None)


GENERATED_VERSION = 1  # bump when a generator changes the examples it makes for the same settings


def _cached_generate(task: Task, settings: TaskSettings, n: int, seed: int, split: str) -> TaskData:
    """Generated examples are a pure function of (task, settings, n, seed, split): cached by that key, since
    generating 256 unique-solution Sudokus takes ~30 s on a small CPU. Best effort: an unwritable cache only
    costs the time."""
    import hashlib
    import json

    from .. import __version__
    from ..cache import entry, read_arrays, write_arrays

    givens = getattr(settings, "givens", None)
    parts = [GENERATED_VERSION, __version__, task.name, n, seed, split, list(givens) if givens else None]
    e = entry("tasks", hashlib.sha256(json.dumps(parts).encode()).hexdigest())  # an unusable cache: always a miss

    def decode(z: dict[str, np.ndarray]) -> TaskData:
        if len(z["inputs"]) != n or z["labels"].shape != z["inputs"].shape:
            raise ValueError("not the examples asked for")
        return TaskData(z["inputs"], z["labels"], str(z["description"]))

    cached = read_arrays(e, decode)
    if cached is not None:
        return cached
    data = task.generate(settings, n, seed, split)
    write_arrays(e, {"inputs": data.inputs, "labels": data.labels, "description": np.array(data.description)})
    return data
