"""Errors users see: one line that says what is wrong and how to fix it, plus the documented exit code.

Exit codes (the CLI contract, also in docs/commands.md): 0 passed, 2 usage or input error, 3 an accuracy gate
failed, 4 a latency or size gate failed, 5 the target's toolchain is unavailable, 6 the artefact (or a built engine)
is incompatible with the target or the device present (`edgekit check`, engine manifest mismatch).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_ACCURACY_GATE = 3
EXIT_BUDGET_GATE = 4
EXIT_TOOLCHAIN = 5
EXIT_INCOMPATIBLE = 6


class ArtefactError(ValueError):
    """An artefact folder that is missing, incomplete, damaged or does not match this runtime (one-line message;
    exit 2). Defined here so the manifest reader (`edgekit.manifest`) and the runtime share it."""


class EdgekitError(Exception):
    """Base of all user-facing errors; `str()` is the one-line message."""

    exit_code = EXIT_USAGE

    def __init__(self, problem: str, fix: str | None = None) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem}; {fix}" if fix else problem)


class CheckpointError(EdgekitError):
    """A checkpoint is missing, unreadable, unsafe or does not match its architecture."""


class RecipeError(EdgekitError):
    """A recipe or target file is invalid."""


class InputError(EdgekitError):
    """Data given to a model or runtime has the wrong shape, dtype or values."""


class ExportError(EdgekitError):
    """ONNX export failed; the message names the module or op at fault."""


class ToolchainUnavailable(EdgekitError):
    exit_code = EXIT_TOOLCHAIN


class IncompatibleError(EdgekitError):
    """The artefact cannot run on the target, or an engine was built for another GPU / TensorRT version."""

    exit_code = EXIT_INCOMPATIBLE


def first_line(e: BaseException, limit: int = 160, default: str | None = None) -> str:
    """First line of an exception's message, cut to `limit`, for one-line user errors (default: its type name)."""
    text = str(e).strip()
    return text.splitlines()[0][:limit] if text else (default or type(e).__name__)
