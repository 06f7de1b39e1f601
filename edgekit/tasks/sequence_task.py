"""Any sequence-to-sequence dataset in the reference layout: exact-sequence and per-token accuracy, nothing
task-specific (the task for a user's own data that no built-in task describes)."""

from __future__ import annotations

from typing import Any

from .base import Task, register


@register
class SequenceTask(Task):
    name = "sequence"
    description = "any token dataset from task.data: exact-sequence and per-token accuracy over labelled positions"
    generates = False

    def fits(self, input_spec: dict[str, Any], family: str | None = None) -> bool:
        return self.takes(input_spec)
