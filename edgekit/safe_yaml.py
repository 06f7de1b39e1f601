"""YAML from untrusted files (recipes, a checkpoint's all_config.yaml): a regular file (a device such as /dev/zero
or a pipe is refused before a byte is read), read with a byte limit, bounded aliases, plain data only
(`yaml.safe_load`: nothing is imported or constructed), and errors as one line that never quotes the file."""

from __future__ import annotations

import reprlib
from pathlib import Path
from typing import Any

import yaml

from .npyio import FileTooLarge, NotRegularFile, read_limited

MAX_BYTES = 1 << 20  # a recipe or config is a few KB; a 1 MiB one is not what it claims to be
MAX_ALIASES = 20  # recipes need none; aliases can make a small file expand into a huge structure

_REPR = reprlib.Repr()
_REPR.maxstring, _REPR.maxother, _REPR.maxlist, _REPR.maxdict, _REPR.maxlevel = 60, 60, 6, 6, 3


def short_repr(value: object) -> str:
    """repr bounded in work and length (aliases may make a value huge): for echoing input in a one-line error."""
    return _REPR.repr(value)[:100]


class YAMLFileError(ValueError):
    """What is wrong with the file, as (problem, fix) for the caller's own error type."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.problem, self.fix = problem, fix


def load_yaml_file(path: Path, what: str = "file") -> Any:
    path = Path(path)
    try:
        if path.is_dir():
            raise YAMLFileError(f"{path} is a folder, not a {what}", f"pass a .yaml {what}")
        text = read_limited(path, MAX_BYTES).decode("utf-8")
    except FileNotFoundError:
        raise YAMLFileError(f"{what} {path} does not exist", "check the path") from None
    except NotRegularFile:
        raise YAMLFileError(f"{path} is not a regular file (a device or a pipe)", f"pass a .yaml {what}") from None
    except FileTooLarge:
        raise YAMLFileError(f"{path} is over {MAX_BYTES >> 20} MiB, too large for a {what}", f"pass a {what}") from None
    except UnicodeDecodeError:
        raise YAMLFileError(f"{path} is not UTF-8 text", f"pass a YAML {what}") from None
    except OSError as e:
        raise YAMLFileError(f"cannot read {path}: {e.strerror}", "check the path and its permissions") from None
    try:
        aliases = sum(isinstance(ev, yaml.AliasEvent) for ev in yaml.parse(text, Loader=yaml.SafeLoader))
        if aliases > MAX_ALIASES:
            raise YAMLFileError(
                f"{path} uses {aliases} YAML aliases (at most {MAX_ALIASES})", f"write the {what} out plainly"
            )
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise YAMLFileError(
            f"{path} is not valid YAML{where}", "fix the syntax (indentation, colons, quotes)"
        ) from None
    except RecursionError:
        raise YAMLFileError(f"{path} nests too deeply", f"write the {what} out plainly") from None
