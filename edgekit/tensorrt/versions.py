"""TensorRT version ranges live in the runtime (the device's doctor reads them too); the TensorRT stage imports
them here."""

from __future__ import annotations

from ..runtime.versions import (
    Version,
    admits_at_least,
    admits_major,
    bash_test,
    in_range,
    lowest,
    number,
    parse_range,
    parse_version,
    version_str,
)

__all__ = [
    "Version",
    "admits_at_least",
    "admits_major",
    "bash_test",
    "in_range",
    "lowest",
    "number",
    "parse_range",
    "parse_version",
    "version_str",
]
