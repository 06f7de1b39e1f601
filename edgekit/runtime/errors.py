"""The runtime's own errors: one-line messages, no dependency beyond the standard library."""

from __future__ import annotations

from ..errors import ArtefactError

__all__ = ["ArtefactError", "RuntimeInputError"]


class RuntimeInputError(ValueError):
    """Inputs or settings that do not match the artefact's input contract (one-line message)."""
