"""The runtime's own errors: one-line messages, no dependency beyond the standard library."""

from __future__ import annotations


class RuntimeInputError(ValueError):
    """Inputs or settings that do not match the artefact's input contract (one-line message)."""


class ArtefactError(ValueError):
    """An artefact folder that is missing, incomplete, damaged or does not match this runtime (one-line message)."""
