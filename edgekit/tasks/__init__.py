"""Tasks: one file per task (sudoku, maze, sequence, digits for the DEQ), each registered by name; examples come
from `task.data` (reference-layout dataset folders or .npz, edgekit/tasks/files.py) or the task's generator.

`get_task(name).load(settings, n, seed, split)` returns `TaskData`; `load_task` applies a recipe's defaults.
Importing this package registers the built-in tasks; it needs numpy only.
"""

from __future__ import annotations

from . import arc_task, digits_task, maze_task, sequence_task, sudoku_task  # noqa: F401  (registration)
from .base import Task, TaskData, TaskSettings, get_task, register, task_for_inputs, task_names


def load_task(settings: TaskSettings, n: int | None = None, seed: int | None = None, split: str = "test") -> TaskData:
    """The recipe's validation set by default; calibration and search sets pass their own n, seed and split."""
    return get_task(settings.name).load(
        settings, settings.n if n is None else n, settings.seed if seed is None else seed, split
    )


__all__ = ["Task", "TaskData", "TaskSettings", "get_task", "load_task", "register", "task_for_inputs", "task_names"]
