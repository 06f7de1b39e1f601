"""On-device runtime: numpy + onnxruntime only (no torch), so it runs where the model is deployed."""
from .runner import Runner, RunResult

__all__ = ["Runner", "RunResult"]
