"""What every task provides: examples to validate on, and how to recognise artefacts it can feed.

A task is one file in `edgekit/tasks/` that defines a `Task` subclass and registers it with `@register`; the
pipeline, the validation stage and `edgekit bench` only ever go through `get_task(name)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np


@dataclass
class TaskData:
    """Examples a stage runs on: inputs, labels ([N, L] for sequence tasks, [N, 1] for classification) and a
    one-line description recorded in results.json so a reader knows what was measured."""

    inputs: np.ndarray
    labels: np.ndarray
    description: str


class TaskSettings(Protocol):
    """The recipe's `task` section as tasks read it (edgekit.schema.TaskSection)."""

    name: str
    n: int
    seed: int
    givens: tuple[int, int] | None


class Task:
    """One task: `load` returns examples of a split; `fits` says whether an artefact's input contract is this
    task's, so device commands can generate held-out inputs without a recipe."""

    name: ClassVar[str]
    description: ClassVar[str]

    def load(self, settings: TaskSettings, n: int, seed: int, split: str) -> TaskData:
        raise NotImplementedError

    def fits(self, input_spec: dict[str, Any], family: str) -> bool:
        return False

    def parse_line(self, line: str, length: int) -> np.ndarray:
        """One example from a line of text (`edgekit solve --inputs FILE.txt`): numbers separated by spaces or
        commas. ValueError with a one-line reason when the line is not an example."""
        fields = line.replace(",", " ").split()
        if len(fields) != length:
            raise ValueError(f"expected {length} numbers, got {len(fields)}")
        try:
            return np.array([float(f) for f in fields])
        except ValueError:
            bad = next(f for f in fields if not _is_number(f))
            raise ValueError(f"{bad[:20]!r} is not a number") from None

    def render(self, prediction: np.ndarray) -> str:
        """An answer as one line of text."""
        return " ".join(str(int(v)) for v in np.asarray(prediction).reshape(-1))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


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
    """The registered task whose inputs an artefact takes, if any (first match in name order)."""
    return next((_REGISTRY[n] for n in task_names() if _REGISTRY[n].fits(input_spec, family)), None)
