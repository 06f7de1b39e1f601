"""The tune stage: the accuracy-latency front of an artefact's configurations and the best one for a budget."""

from .stage import TuneSettings, apply_defaults, run_tune

__all__ = ["TuneSettings", "apply_defaults", "run_tune"]
