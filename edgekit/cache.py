"""The content-addressed cache every stage shares (`$EDGEKIT_CACHE`, default ~/.cache/edgekit): generated task data,
calibration items, search results, reference and ONNX rollouts, golden answers.

The cache is untrusted: a result read from it decides whether an artefact passes its gates, so it must be exactly
what edgekit computed for exactly these inputs.
- The folder must be this user's own and writable by no one else: it is created 0700; an existing folder that is
  a file, belongs to another user or is writable by group or others is not used. One warning line says so and
  the run continues without the cache (every result is recomputed, nothing is stored).
- An entry is named by its key, the full sha256 over everything it is computed from (graph bytes, examples,
  settings, versions: see each caller), and it carries that key, its kind and a sha256 of its own content. On
  read all three are checked; an entry that is damaged, truncated, too large, copied under another key or
  edited is discarded and recomputed, never trusted. Arrays are read with the bounded reader (`edgekit.npyio`).
- Writes go through `tempfile.mkstemp` in the entry's folder (O_EXCL: a planted file or link at the temporary
  name is never followed or overwritten), written through that descriptor and renamed into place.
- Storing is best effort: a full disk or an unwritable folder costs the time, with one warning line.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from .artefact import make_private_levels, private_folder_problem
from .npyio import load_npz, open_regular

T = TypeVar("T")

ENTRY_FORMAT = 1
MAX_ARRAY_BYTES = 2 << 30  # an entry's arrays together; callers store far less (rollouts: 256 MiB at most)
MAX_JSON_BYTES = 16 << 20
RECORD = "__entry__"  # the member of an .npz entry holding its kind, key and content digest
KIND = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,199}$")  # callers pass a full sha256, maybe after a prefix

_warned: set[str] = set()


def cache_dir() -> Path:
    return Path(os.environ.get("EDGEKIT_CACHE", Path.home() / ".cache" / "edgekit")).expanduser()


def _warn(text: str) -> None:
    """One line per problem and process on stderr (stdout may carry --json output)."""
    if text not in _warned:
        _warned.add(text)
        print(f"warning: {text}", file=sys.stderr)


def key_of(*parts: object) -> str:
    """The full sha256 over `parts` (JSON, keys sorted; non-JSON values by str): a cache key."""
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def private_folder(folder: Path) -> Path | None:
    """`folder`, created 0700 when absent, when it is safe to use; else None after one warning line. For any cache
    edgekit keeps (entries here; engine and timing caches elsewhere). Every missing level is created 0700 (mkdir's
    `parents` would give the parents the umask's mode)."""
    try:
        make_private_levels(folder)
    except OSError as e:
        _warn(
            f"the cache folder {folder} cannot be created ({e.strerror}); running without the cache (results are "
            "recomputed); set EDGEKIT_CACHE to a folder of your own"
        )
        return None
    why = private_folder_problem(folder)
    if why is not None:
        _warn(
            f"the cache folder {folder} {why}; running without the cache (results are recomputed, nothing is "
            f"stored); make it yours and private (chmod 700 {folder}) or set EDGEKIT_CACHE to a private folder"
        )
        return None
    return folder


@dataclass(frozen=True)
class Entry:
    """One cache entry: `kind` (its subfolder), `key` (see KEY) and its file, or None when no cache is usable."""

    kind: str
    key: str
    path: Path | None

    def record(self, content: str) -> dict[str, Any]:
        return {"format": ENTRY_FORMAT, "kind": self.kind, "key": self.key, "content": content}


def entry(kind: str, key: str, suffix: str = ".npz") -> Entry:
    """The entry `key` of `kind` (`suffix` .npz for arrays, .json for JSON results). The cache folder and its
    `kind` subfolder are checked on every call (a folder made unsafe mid-run is not used from then on)."""
    if not KIND.match(kind) or not KEY.match(key) or suffix not in (".npz", ".json"):
        raise ValueError(f"not a cache kind / key: {kind!r} / {key!r}")
    root = Path(os.path.realpath(cache_dir()))  # a link to a private folder of the user's own is fine
    folder = private_folder(root)
    sub = private_folder(folder / kind) if folder is not None else None
    return Entry(kind, key, None if sub is None else sub / f"{key}{suffix}")


def _digest_arrays(arrays: Mapping[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(json.dumps([name, a.dtype.str, list(a.shape)]).encode())
        h.update(a.reshape(-1).view(np.uint8).data)
    return h.hexdigest()


def _digest_json(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _discard(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


class _Mismatch(Exception):
    """An entry that is not what its name says."""


def read_arrays(e: Entry, decode: Callable[[dict[str, np.ndarray]], T]) -> T | None:
    """`decode(arrays)` of a stored entry, or None when there is none (or no usable cache). An entry that fails any
    check, or that `decode` rejects (KeyError, ValueError, TypeError, IndexError: a missing array or a wrong
    shape), is discarded so the caller recomputes it."""
    if e.path is None:
        return None
    try:
        f = open_regular(e.path, nofollow=True)
    except FileNotFoundError:
        return None
    except Exception:  # a link, a FIFO, a folder: not an entry edgekit wrote
        _discard(e.path)
        return None
    try:
        with f:
            arrays = load_npz(e.path, MAX_ARRAY_BYTES, kinds="biufSU", file=f, error=_Mismatch)
        raw = arrays.pop(RECORD, None)
        if raw is None or raw.dtype != np.uint8 or raw.ndim != 1:
            raise _Mismatch("no record")
        rec = json.loads(raw.tobytes().decode("utf-8"))
        if rec != e.record(_digest_arrays(arrays)):
            raise _Mismatch("record")
        return decode(arrays)
    except (_Mismatch, KeyError, ValueError, TypeError, IndexError, UnicodeDecodeError, RecursionError):
        _discard(e.path)
        return None


def write_arrays(e: Entry, arrays: Mapping[str, np.ndarray]) -> None:
    """Store `arrays` (numeric or string arrays, never objects) as entry `e`."""
    if e.path is None:
        return
    if RECORD in arrays:
        raise ValueError(f"{RECORD} is reserved")
    plain = {k: np.asarray(v) for k, v in arrays.items()}
    rec = json.dumps(e.record(_digest_arrays(plain))).encode()
    _store(e.path, lambda f: np.savez(f, **plain, **{RECORD: np.frombuffer(rec, np.uint8)}))  # type: ignore[arg-type]


def read_json(e: Entry) -> Any:
    """The stored JSON result of entry `e`, or None (absent, no usable cache, or discarded as for read_arrays)."""
    if e.path is None:
        return None
    try:
        f = open_regular(e.path, nofollow=True)
    except FileNotFoundError:
        return None
    except Exception:
        _discard(e.path)
        return None
    try:
        with f:
            raw = f.read(MAX_JSON_BYTES + 1)
        if len(raw) > MAX_JSON_BYTES:
            raise _Mismatch("too large")
        doc = json.loads(raw.decode("utf-8"))
        if not isinstance(doc, dict) or "data" not in doc:
            raise _Mismatch("not an entry")
        data = doc.pop("data")
        if doc != e.record(_digest_json(data)):
            raise _Mismatch("record")
        return data
    except (_Mismatch, OSError, ValueError, UnicodeDecodeError, RecursionError, TypeError):
        _discard(e.path)
        return None


def write_json(e: Entry, data: Any) -> None:
    """Store the JSON-serialisable `data` as entry `e`."""
    if e.path is None:
        return
    text = json.dumps({**e.record(_digest_json(data)), "data": data}).encode()
    _store(e.path, lambda f: f.write(text))


def _store(path: Path, write: Callable[[Any], object]) -> None:
    """Write through a fresh temporary file in the entry's folder (mkstemp: O_CREAT | O_EXCL, never an existing
    file or link), then rename it over the entry; a failure leaves no temporary file and costs one warning line."""
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem[:16]}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
        tmp = None
    except OSError as err:
        _warn(f"cannot store a cache entry in {path.parent} ({err.strerror}); the result is used but not cached")
    finally:
        if tmp is not None:
            _discard(Path(tmp))
