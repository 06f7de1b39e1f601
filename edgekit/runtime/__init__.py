"""On-device runtime: numpy + onnxruntime only (no torch), so it runs where the model is deployed."""

from .backends import open_runner
from .errors import ArtefactError, RuntimeInputError
from .runner import MODES, Runner, RunResult, Solution

__all__ = ["MODES", "ArtefactError", "Runner", "RunResult", "RuntimeInputError", "Solution", "open_runner"]
