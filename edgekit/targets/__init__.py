"""The deployment targets edgekit ships: one YAML file per target in this package folder, read through
importlib.resources so that a wheel install has exactly the targets a clone has.

Standard library only: `edgekit targets` (and any check on the device) must work on the base install, which has no
YAML library. The reader takes the small subset of YAML the target files are written in — one `key: value` per line,
plain or quoted scalars, flow lists `[a, b]` and flow mappings `{k: v}`, `#` comments — and refuses anything else
with the line number, so it never reads a file differently from `yaml.safe_load` (a test compares the two on every
shipped file). `edgekit.schema.load_target` validates the mapping (pydantic, strict) on the workstation.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

SUFFIX = ".yaml"
MAX_BYTES = 64 << 10  # a target file is a few hundred bytes

_KEY = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*):(?:[ \t]+(.*))?$")
_INT = re.compile(r"^[-+]?(0|[1-9][0-9]*)$")
_FLOAT = re.compile(r"^[-+]?(0|[1-9][0-9]*)\.[0-9]*$")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_NULL = {"null", "Null", "NULL", "~"}
# Plain words YAML 1.1 (PyYAML) reads as booleans, and first characters with a meaning in YAML: quote such values.
_AMBIGUOUS = {"yes", "Yes", "YES", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF"}
_INDICATORS = set("-?:,[]{}#&*!|>'\"%@`<=.+0123456789")


class TargetFileError(ValueError):
    """A target file outside the subset this reader takes (a packaging mistake, not a user's input)."""


def target_names() -> list[str]:
    """Every shipped target, sorted."""
    folder = resources.files(__name__)
    return sorted(p.name[: -len(SUFFIX)] for p in folder.iterdir() if p.name.endswith(SUFFIX) and p.is_file())


def read_target(name: str) -> dict[str, Any]:
    """The mapping in <name>.yaml; KeyError for a name that is not a shipped target (never a path: a recipe's
    `target` is untrusted)."""
    if name not in target_names():
        raise KeyError(name)
    data = resources.files(__name__).joinpath(name + SUFFIX).read_bytes()
    if len(data) > MAX_BYTES:
        raise TargetFileError(f"{name}{SUFFIX} is over {MAX_BYTES >> 10} KiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise TargetFileError(f"{name}{SUFFIX} is not UTF-8 text") from None
    return parse(text, name + SUFFIX)


def platform(target: dict[str, Any]) -> str:
    """One line for tables: the JetPack, CUDA and Python a Jetson target assumes ('' for other targets)."""
    parts = [f"JetPack {' / '.join(map(str, target['jetpack']))}"] if target.get("jetpack") else []
    parts += [f"CUDA {target['cuda']}"] if target.get("cuda") else []
    parts += [f"Python {target['python']}"] if target.get("python") else []
    return ", ".join(parts)


def parse(text: str, source: str = "target") -> dict[str, Any]:
    """One flat mapping from the target subset of YAML (see the module docstring)."""
    out: dict[str, Any] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = _strip_comment(raw, source, n).rstrip()
        if not line:
            continue
        where = f"{source} line {n}"
        if line[0].isspace():
            raise TargetFileError(f"{where}: indented (nested blocks are not used in target files)")
        m = _KEY.match(line)
        if not m or not (m.group(2) or "").strip():
            raise TargetFileError(f"{where}: expected `key: value`")
        key, value = m.group(1), m.group(2).strip()
        if key in out:
            raise TargetFileError(f"{where}: {key!r} is given twice")
        out[key] = _value(value, where)
    return out


def _strip_comment(line: str, source: str, n: int) -> str:
    """The line without its `#` comment (a # at the start or after whitespace, outside quotes)."""
    quote = ""
    for i, c in enumerate(line):
        if quote:
            quote = "" if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i]
    if quote:
        raise TargetFileError(f"{source} line {n}: unterminated quote")
    return line


def _value(text: str, where: str) -> Any:
    if text[0] in "[{":
        close = "]" if text[0] == "[" else "}"
        if text[-1] != close:
            raise TargetFileError(f"{where}: a flow collection must open and close on one line")
        inner = text[1:-1].strip()
        items = [i.strip() for i in _split(inner, where)] if inner else []
        if text[0] == "[":
            return [_scalar(i, where, flow=True) for i in items]
        mapping: dict[str, Any] = {}
        for item in items:
            k, sep, v = item.partition(":")
            if not sep or not _KEY.match(f"{k.strip()}:") or not v.startswith((" ", "\t")) or k.strip() in mapping:
                raise TargetFileError(f"{where}: expected `{{key: value, ...}}`")
            mapping[k.strip()] = _scalar(v.strip(), where, flow=True)
        return mapping
    return _scalar(text, where, flow=False)


def _split(inner: str, where: str) -> list[str]:
    """Comma-separated items, commas inside quotes kept; nested collections are refused."""
    items, cur, quote = [], "", ""
    for c in inner:
        if quote:
            quote = "" if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c in "[]{}":
            raise TargetFileError(f"{where}: nested collections are not used in target files")
        elif c == ",":
            items.append(cur)
            cur = ""
            continue
        cur += c
    return [*items, cur]


def _scalar(text: str, where: str, flow: bool) -> Any:
    if not text:
        raise TargetFileError(f"{where}: empty value")
    if text[0] in "'\"":
        if len(text) < 2 or text[-1] != text[0] or text[0] in text[1:-1] or "\\" in text:
            raise TargetFileError(f"{where}: a quoted value must be one simple quoted string")
        return text[1:-1]
    if _INT.match(text):
        return int(text)
    if _FLOAT.match(text):
        return float(text)
    if text in _BOOL:
        return _BOOL[text]
    if text in _NULL:
        return None
    mapping_like = ": " in text or text.endswith(":")
    if text in _AMBIGUOUS or text[0] in _INDICATORS or mapping_like or (flow and any(c in ",[]{}" for c in text)):
        raise TargetFileError(f"{where}: quote the value {text[:40]!r}")
    return text
