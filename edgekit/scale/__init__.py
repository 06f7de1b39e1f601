"""Validation at scale: the same rollouts, sharded over processes or a Ray cluster, resumable, PyTorch references
on a GPU.

  settings.py   validate.executor / workers / ray_address / device, command-line overrides, checks (exit 2)
  plan.py       the shard plan: from the data and the batch size only, so every executor computes the same numbers
  work.py       a worker: one onnxruntime Runner or one PyTorch model, a shard's record
  executors.py  serial | processes | ray, registered by name
  rollouts.py   the driver: per-shard cache records (resume), progress across workers, the merge

Nothing here is imported by the device runtime; Ray is imported only when the ray executor runs.
"""

from .executors import EXECUTORS, Executor, get_executor, register
from .plan import Shard, plan_shards
from .rollouts import begin, onnx_rollout, reference_rollout, sharded
from .settings import EXECUTOR_NAMES, ScaleError, ScaleRun, ScaleSettings, check, overriding, settings_for

__all__ = [
    "EXECUTORS",
    "EXECUTOR_NAMES",
    "Executor",
    "ScaleError",
    "ScaleRun",
    "ScaleSettings",
    "Shard",
    "begin",
    "check",
    "get_executor",
    "onnx_rollout",
    "overriding",
    "plan_shards",
    "reference_rollout",
    "register",
    "settings_for",
    "sharded",
]
