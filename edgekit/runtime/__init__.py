"""On-device runtime: numpy + onnxruntime only (no torch), so it runs where the model is deployed."""
from .runner import MODES, ArtefactError, Runner, RunResult, RuntimeInputError, Solution

__all__ = ["MODES", "ArtefactError", "Runner", "RunResult", "RuntimeInputError", "Solution"]
