"""ARC-AGI from a reference-built dataset folder: augmented copies of each task under their own puzzle
identifiers, scored as the reference evaluators do (undo each augmentation, vote per test input, pass@k).

Examples come from `task.data` only (the reference ARC builders' layout, with identifiers.json naming every
augmented puzzle). Metrics per variant, from the recorded rollouts: pass@1 / pass@2 at the full budget (the
reference evaluation, which runs every step and breaks vote ties by the last step's halting logit) and at each
example's halting step (the deployed runtime), each as TRM's fractional credit per test input and HRM's
all-test-inputs-right per task.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Task, TaskData, TaskSettings, register
from .files import DataError, read_identifiers

KS = (1, 2)
SEQ = 900  # 30 x 30 tokens (runtime/arc.py holds the grid code: numpy only, imported when used)


@register
class ARCTask(Task):
    name = "arc"
    description = "ARC-AGI grids (reference ARC dataset folders: 30x30 tokens, augmented puzzles, voting)"
    generates = False

    def load(self, settings: TaskSettings, n: int, seed: int, split: str) -> TaskData:
        from pathlib import Path

        from ..runtime.arc import ARCError, parse_name

        data = super().load(settings, n, seed, split)
        assert settings.data is not None and data.puzzle_ids is not None
        root = Path(settings.data)
        names = read_identifiers(root)
        ids = data.puzzle_ids
        if len(ids) and int(ids.max()) >= len(names):
            raise DataError(f"{root}/identifiers.json names {len(names)} identifiers; examples use {int(ids.max())}")
        try:
            augs = {int(i): parse_name(names[int(i)]) for i in np.unique(ids)}
        except ARCError as e:
            raise DataError(f"{root}/identifiers.json: {e}", "rebuild the dataset with the reference builder") from None
        data.names = [names[int(i)] for i in ids]
        data.augmentations = [augs[int(i)] for i in ids]
        if split == "test":
            _check_test_split(root, settings.split)
        return data

    def fits(self, input_spec: dict[str, Any], family: str | None = None) -> bool:
        return (
            self.takes(input_spec)
            and list(input_spec.get("shape", []))[1:] == [SEQ]
            and list(input_spec.get("range", []))[1:] == [11]
        )

    def answer_metrics(self, data: TaskData, preds: list[np.ndarray], halts: list[np.ndarray], threshold: float):
        """pass@k after undoing augmentations and voting, at the budget and at each example's halting step."""
        from ..runtime.arc import pass_at, vote
        from .metrics import halting_steps

        if data.augmentations is None or not halts:
            return None
        idx = np.arange(len(data.inputs))
        out: dict[str, Any] = {}
        steps = halting_steps(np.stack(halts), threshold)
        for where, p, h in (
            ("budget", preds[-1], halts[-1]),
            ("halt", np.stack(preds)[steps - 1, idx], np.stack(halts)[steps - 1, idx]),
        ):
            tasks = vote(data.inputs, p.reshape(len(idx), -1), h, data.augmentations, prepared=_prepared(data))
            out[where] = {f"pass@{k}": pass_at(tasks, k) for k in KS}
            if where == "budget":
                out["tasks"] = len(tasks)
                out["test_inputs"] = sum(len(v) for v in tasks.values())
                out["copies_per_test_input"] = round(len(idx) / max(out["test_inputs"], 1), 2)
        return out

    def answers_file(self, data: TaskData, preds: list[np.ndarray], halts: list[np.ndarray]):
        """submission.json as TRM writes it: the voted top-2 per test input at the full budget."""
        from ..runtime.arc import submission, vote

        if data.augmentations is None or not halts:
            return None
        tasks = vote(
            data.inputs,
            preds[-1].reshape(len(data.inputs), -1),
            halts[-1],
            data.augmentations,
            prepared=_prepared(data),
        )
        return "submission.json", submission(tasks)


def _prepared(data: TaskData):
    """Each example's test input and truth in the original frame, computed once per data set: every variant's
    two votes and the submission share them (an ARC-1 test split is 385,815 examples)."""
    from ..runtime.arc import prepare

    if data.scoring is None:
        assert data.augmentations is not None
        data.scoring = prepare(data.inputs, data.augmentations, data.labels)
    return data.scoring


def _check_test_split(root, split: str) -> None:
    """Every task (group) and augmented puzzle of the validation split has test examples: an empty one would
    score 0 without anyone noticing."""
    from .files import _npy, open_data

    s = open_data(root, split)  # checks the index arrays cover the examples
    for name in s.sets:
        for what, kind in (("puzzle_indices", "puzzle"), ("group_indices", "task")):
            d = np.diff(np.asarray(_npy(root / split / f"{name}__{what}.npy"), np.int64))
            if len(d) and d.min() == 0:
                raise DataError(
                    f"{root}/{split}: {kind} {int(np.argmin(d))} of set {name} has no test examples",
                    "rebuild the dataset with the reference builder (every task needs its test pairs)",
                )


def headline(family: str) -> str:
    """The reference's own pass@k definition for a model family: TRM fractional, HRM all test inputs."""
    return "all_inputs" if family == "hrm" else "fractional"
