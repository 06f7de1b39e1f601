"""The whole ARC answer on a device: every augmented copy of a task the artefact knows, one batch with early
halting and batch compaction, predictions undone and voted, top answers per test input (`Runner.solve_arc`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .arc import ARCError, Augmentation, TestInput, check_grid, key, parse_name, to_tokens, vote
from .errors import RuntimeInputError

if TYPE_CHECKING:
    from .base import HostRunner as Runner


def task_index(runner: Runner) -> dict[str, list[tuple[int, Augmentation]]]:
    """Task name -> (row, augmentation) of every identifier of the artefact's puzzle table (names parsed once)."""
    cached: dict[str, list[tuple[int, Augmentation]]] | None = getattr(runner, "_arc_index", None)
    if cached is not None:
        return cached
    pm = runner.puzzles
    out: dict[str, list[tuple[int, Augmentation]]] = {}
    for row in range(pm.rows):
        name = pm.name(row)
        if name is None:
            raise RuntimeInputError("this artefact's puzzle table has no names; ARC answers need them")
        if name == "<blank>":
            continue
        try:
            aug = parse_name(name)
        except ARCError as e:
            raise RuntimeInputError(str(e)) from None
        out.setdefault(aug.task, []).append((row, aug))
    runner._arc_index = out  # type: ignore[attr-defined]
    return out


def solve_arc(runner: Runner, task: str, test_inputs: list[Any], **solve_kw: Any) -> list[TestInput]:
    """Top-ranked answers for each distinct test input grid of `task` (original frame, in the order given), voted
    over the augmented copies the artefact's puzzle table holds for it; `solve_kw` go to `Runner.solve` (mode,
    max_steps, threshold)."""
    if not isinstance(task, str):
        raise RuntimeInputError(f"task must be a task name (str), got {type(task).__name__}")
    copies = task_index(runner).get(task)
    if not copies:
        raise RuntimeInputError(f"task {task[:60]!r} has no puzzle identifiers in this artefact's table")
    if not isinstance(test_inputs, (list, tuple)) or not test_inputs:
        raise RuntimeInputError("test_inputs must be a non-empty list of grids")
    try:
        grids = [check_grid(g, f"test input {i}") for i, g in enumerate(test_inputs)]
    except ARCError as e:
        raise RuntimeInputError(str(e)) from None
    augs = [aug for _, aug in copies]
    ids = runner.puzzles.original[np.array([row for row, _ in copies], np.int64)]
    out: list[TestInput] = []
    seen: set[bytes] = set()
    for g in grids:  # one grid's copies at a time: memory follows the task's copies, not the request's size
        if key(g) in seen:  # the same grid twice is one test input (its votes would only double)
            continue
        seen.add(key(g))
        tokens = np.stack([to_tokens(aug.apply(g)) for aug in augs]).astype(np.int64)
        sol = runner.solve(tokens, puzzle_ids=ids, **solve_kw)
        halt = sol.halt if sol.halt is not None else np.zeros(len(tokens), np.float32)
        out += vote(tokens, sol.preds, halt, augs)[task]
    return out
