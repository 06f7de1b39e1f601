"""TensorRT version ranges as targets write them (">=10.3,<10.4"): parse, test, bound, and render for bash.

Own parser, not `packaging`: the forms are few, and the same logic must be emitted into on-device build scripts.
"""

from __future__ import annotations

import re

from ..errors import RecipeError

Version = tuple[int, int, int]
_CLAUSE = re.compile(r"^\s*(>=|<=|==|>|<)\s*(\d+(?:\.\d+){0,2})\s*$")
_OPS = {
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
    "==": lambda a, b: a == b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
}
_BASH = {">=": "-ge", "<=": "-le", "==": "-eq", ">": "-gt", "<": "-lt"}


def parse_version(text: str) -> Version:
    """'10.3' -> (10, 3, 0); '10.3.0.26' -> (10, 3, 0) (the build number does not change compatibility)."""
    m = re.match(r"^\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?", str(text))
    if not m:
        raise ValueError(f"not a version: {text!r}")
    return int(m.group(1)), int(m.group(2) or 0), int(m.group(3) or 0)


def version_str(v: tuple[int, ...]) -> str:
    return ".".join(map(str, v))


def parse_range(spec: str) -> list[tuple[str, Version]]:
    clauses = []
    for part in spec.split(","):
        m = _CLAUSE.match(part)
        if not m:
            raise RecipeError(f"TensorRT range {spec!r}: cannot read {part.strip()!r}", "write it like '>=10.3,<10.4'")
        clauses.append((m.group(1), parse_version(m.group(2))))
    return clauses


def in_range(version: Version | str, spec: str | None) -> bool:
    v = parse_version(version) if isinstance(version, str) else version
    return spec is None or all(_OPS[op](v, bound) for op, bound in parse_range(spec))


def lowest(spec: str | None, default: Version = (10, 0, 0)) -> Version:
    """The oldest TensorRT a range admits: what a check must assume is on the device."""
    lows = [b for op, b in parse_range(spec) if op in (">=", "==", ">")] if spec else []
    return max(lows) if lows else default


def admits_at_least(spec: str | None, version: Version) -> bool:
    """Whether some TensorRT the range admits is >= `version` (an op added in `version` may then be present)."""
    if not spec:
        return True
    for op, bound in parse_range(spec):
        if (op == "<" and bound <= version) or (op in ("<=", "==") and bound < version):
            return False
    return True


def admits_major(spec: str | None, major: int) -> bool:
    """Whether the range admits some release of TensorRT `major` (e.g. 11: strongly typed only)."""
    return admits_at_least(spec, (major, 0, 0)) and lowest(spec, (0, 0, 0)) < (major + 1, 0, 0)


def number(v: Version) -> int:
    """NV_TENSORRT_VERSION style integer (major*10000 + minor*100 + patch, as trtexec prints 'TensorRT v100300')."""
    return v[0] * 10000 + v[1] * 100 + v[2]


def bash_test(spec: str, var: str = "TRT_NUM") -> str:
    """A bash condition over the integer `$var` that is true exactly inside `spec`."""
    return " && ".join(f'[ "${var}" {_BASH[op]} {number(b)} ]' for op, b in parse_range(spec))
