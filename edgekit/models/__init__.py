"""Recursive models behind one interface (encode, initial_state, step, readout, step_budget)."""

from . import family_deq, family_hrm, family_trm  # noqa: F401  (registration, as tasks do)
from .act import HRM, TRM, ACTModel, build_act_model
from .base import Readout, RecursiveModel, Rollout
from .checkpoint import load_model
from .config import ACTConfig, DEQConfig, SolverConfig
from .deq import DEQModel, build_deq, from_torchdeq
from .families import FAMILIES, Family, family_for_arch, get_family, register_family

__all__ = [
    "ACTConfig",
    "ACTModel",
    "DEQConfig",
    "DEQModel",
    "FAMILIES",
    "Family",
    "HRM",
    "TRM",
    "Readout",
    "RecursiveModel",
    "Rollout",
    "SolverConfig",
    "build_act_model",
    "build_deq",
    "family_for_arch",
    "get_family",
    "register_family",
    "from_torchdeq",
    "load_model",
]
