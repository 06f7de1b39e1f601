"""Recursive models behind one interface (encode, initial_state, step, readout, step_budget)."""

from .act import HRM, TRM, ACTModel, build_act_model
from .base import Readout, RecursiveModel, Rollout
from .checkpoint import load_model
from .config import ACTConfig, DEQConfig, SolverConfig
from .deq import DEQModel, build_deq, from_torchdeq

__all__ = [
    "ACTConfig",
    "ACTModel",
    "DEQConfig",
    "DEQModel",
    "HRM",
    "TRM",
    "Readout",
    "RecursiveModel",
    "Rollout",
    "SolverConfig",
    "build_act_model",
    "build_deq",
    "from_torchdeq",
    "load_model",
]
