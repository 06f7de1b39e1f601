"""The one reader of `.npy` / `.npz` files (datasets, `--inputs`, golden answers, initial states, puzzle tables,
cache entries): every such file is untrusted, so nothing is allocated before its size is known to be honest.

Each array's header is read first (`numpy.lib.format.read_magic` / `read_array_header_1_0` / `_2_0`); its declared
bytes (shape x item size) are checked against a limit the caller states and against what the file really holds
(the bytes after the header of a `.npy`, the zip member's uncompressed size in an `.npz`), before one byte of
data is read. `.npz` members are then streamed into an array of the declared size, so a deflate bomb can never
inflate past it, and the member's CRC is checked. Object dtypes are refused (nothing is ever unpickled). Every
failure, including a corrupt zip, a truncated file and an allocation that fails, is one line raised as the
caller's error type (an artefact's files: ArtefactError; a user's inputs: InputError or RuntimeInputError; a
dataset: DataError). Needs numpy and the standard library only: the device runtime uses it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO

import numpy as np
import numpy.lib.format as npformat

from .errors import InputError

ErrorType = Callable[[str], Exception]

NUMERIC = "biuf"  # booleans, integers, floats: what graphs, datasets and answers hold
MAX_MEMBERS = 1 << 16  # an .npz edgekit reads holds a few (cache entries: a few thousand) arrays
MAX_HEADER = 10_000  # numpy's own bound on a header's size
_CHUNK = 1 << 22  # bytes read per call while streaming an array


class _Bad(Exception):
    """What is wrong with a file (the text follows the file's name), turned into the caller's error type."""


class NotRegularFile(_Bad):
    """A path that names a folder, a device, a pipe or a socket where a file is expected."""


class FileTooLarge(_Bad):
    """A file over the byte limit its reader states."""


def _size(n: int) -> str:
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.1f} {unit}"
    return f"{n} bytes"


def open_regular(path: Path, nofollow: bool = False) -> IO[bytes]:
    """`path` opened for reading if it is a regular file: a FIFO, a device (`/dev/zero`) or a folder is refused
    before a byte is read (opened non-blocking, so a FIFO nobody writes never hangs); `nofollow`: a symbolic link
    is refused too. Raises OSError (ELOOP for a link, ENOENT, EACCES) or _Bad."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | (os.O_NOFOLLOW if nofollow else 0)
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile("is not a regular file (a folder, a device or a pipe)")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_limited(path: Path, limit: int, nofollow: bool = False) -> bytes:
    """The bytes of a regular file of at most `limit` bytes, read with that bound (a file that grows, or a size
    that lies, never makes it read more). Raises OSError, NotRegularFile or FileTooLarge."""
    with open_regular(path, nofollow) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise FileTooLarge(f"is over {_size(limit)}")
    return data


def _header(f: IO[bytes], kinds: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran_order, dtype) of the .npy stream at `f`, checked: a format numpy writes, no object
    dtype, a dtype of the accepted kinds, non-negative dimensions."""
    version = npformat.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = npformat.read_array_header_1_0(f, max_header_size=MAX_HEADER)
    elif version == (2, 0):
        shape, fortran, dtype = npformat.read_array_header_2_0(f, max_header_size=MAX_HEADER)
    else:
        raise _Bad(f"is .npy format {version[0]}.{version[1]}, which edgekit does not read (save with numpy.save)")
    if dtype.hasobject:
        raise _Bad("holds Python objects (reading it would take unpickling, which edgekit never does)")
    if dtype.kind not in kinds or dtype.fields is not None or dtype.subdtype is not None:
        raise _Bad(f"has dtype {str(dtype)[:40]}, not a plain array of the expected kind")
    if dtype.itemsize == 0 and dtype.kind in "SU":
        raise _Bad("has a zero-length string dtype")
    if any(d < 0 for d in shape) or len(shape) > 32:
        raise _Bad(f"declares an impossible shape {list(shape)[:8]}")
    return tuple(int(d) for d in shape), bool(fortran), dtype


def _declared(shape: tuple[int, ...], dtype: np.dtype) -> int:
    count = 1
    for d in shape:
        count *= d  # Python ints: a shape of (10**12,)*4 is a large number, never an overflow
    return count * dtype.itemsize


def _fill(f: IO[bytes], shape: tuple[int, ...], fortran: bool, dtype: np.dtype, nbytes: int) -> np.ndarray:
    """The array read from `f` into a buffer of exactly the declared size (chunked: never more than that)."""
    try:
        flat = np.empty(nbytes, np.uint8)
    except MemoryError:
        raise _Bad(f"needs {_size(nbytes)} of memory, which this machine cannot allocate") from None
    view = flat.data
    done = 0
    while done < nbytes:
        got = f.readinto(view[done : done + _CHUNK])  # type: ignore[attr-defined]
        if not got:
            raise _Bad(f"is truncated ({_size(done)} of the {_size(nbytes)} its header declares)")
        done += got
    a = flat.view(dtype) if nbytes else np.empty(0, dtype)
    return a.reshape(shape, order="F" if fortran else "C")


def _one_npy(f: IO[bytes], available: int, limit: int, kinds: str, mmap_path: Path | None) -> np.ndarray:
    """One array from a .npy stream whose data may take at most `available` bytes after its header."""
    start = f.tell()
    shape, fortran, dtype = _header(f, kinds)
    nbytes = _declared(shape, dtype)
    left = available - (f.tell() - start)
    if nbytes > limit:
        raise _Bad(f"declares {_size(nbytes)} (shape {list(shape)[:8]}), over the {_size(limit)} allowed here")
    if nbytes > left:
        raise _Bad(f"declares {_size(nbytes)} (shape {list(shape)[:8]}) but holds {_size(max(left, 0))}")
    if mmap_path is not None:
        if nbytes == 0:
            return np.empty(shape, dtype)
        offset = f.tell()
        return np.memmap(mmap_path, dtype, "r", offset, shape, "F" if fortran else "C")
    return _fill(f, shape, fortran, dtype, nbytes)


def _fail(error: ErrorType, what: str, reason: str) -> Exception:
    return error(f"{what} {reason}")


def _why(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0][:120] if text else type(e).__name__).replace("\x00", "\\x00")


# What a damaged or hostile file can raise inside numpy's header parser and zipfile.
_READ_ERRORS = (OSError, ValueError, EOFError, SyntaxError, struct.error, zlib.error, zipfile.BadZipFile,
                zipfile.LargeZipFile, NotImplementedError, RuntimeError, KeyError, TypeError, OverflowError,
                RecursionError, UnicodeDecodeError)  # fmt: skip


@contextlib.contextmanager
def _guard(error: ErrorType, what: str) -> Iterator[None]:
    """Every way reading can fail, as the caller's one-line error."""
    try:
        yield
    except _Bad as e:
        raise _fail(error, what, str(e)) from None
    except FileNotFoundError:
        raise _fail(error, what, "does not exist") from None
    except IsADirectoryError:
        raise _fail(error, what, "is a folder, not a file") from None
    except MemoryError:
        raise _fail(error, what, "is too large for this machine's memory") from None
    except OSError as e:
        if e.errno == errno.ELOOP:  # O_NOFOLLOW met a symbolic link
            raise _fail(error, what, "is a symbolic link, which is not followed here") from None
        raise _fail(error, what, f"cannot be read ({e.strerror or _why(e)})") from None
    except _READ_ERRORS as e:
        raise _fail(error, what, f"is not a readable array file ({type(e).__name__}: {_why(e)})") from None


def load_npy(
    path: str | Path,
    limit_bytes: int,
    *,
    error: ErrorType = InputError,
    what: str | None = None,
    kinds: str = NUMERIC,
    mmap: bool = False,
    nofollow: bool = False,
) -> np.ndarray:
    """The array of a `.npy` file, at most `limit_bytes` of data; `mmap`: memory-mapped read-only (datasets),
    after the same checks, so a header that promises more than the file holds is refused, not mapped."""
    path = Path(path)
    what = what or str(path)
    with _guard(error, what), open_regular(path, nofollow) as f:
        size = os.fstat(f.fileno()).st_size
        return _one_npy(f, size, limit_bytes, kinds, path if mmap else None)


def npz_names(
    path: str | Path, *, error: ErrorType = InputError, what: str | None = None, nofollow: bool = False
) -> list[str]:
    """The array names an `.npz` holds (members `<name>.npy`), read from its directory alone."""
    path = Path(path)
    what = what or str(path)
    with _guard(error, what), open_regular(path, nofollow) as f, zipfile.ZipFile(f) as z:
        return _members(z)[0]


def _members(z: zipfile.ZipFile) -> tuple[list[str], dict[str, zipfile.ZipInfo]]:
    infos = z.infolist()
    if len(infos) > MAX_MEMBERS:
        raise _Bad(f"holds {len(infos)} members (at most {MAX_MEMBERS})")
    by_name = {i.filename[:-4]: i for i in infos if i.filename.endswith(".npy") and not i.is_dir()}
    return list(by_name), by_name


def load_npz(
    path: str | Path,
    limit_bytes: int,
    keys: Sequence[str] | None = None,
    *,
    error: ErrorType = InputError,
    what: str | None = None,
    kinds: str = NUMERIC,
    nofollow: bool = False,
    file: IO[bytes] | None = None,
) -> dict[str, np.ndarray]:
    """The arrays of an `.npz`: all of them, or those of `keys` it holds (a missing one is simply absent: the
    caller names what it needs). `limit_bytes` bounds their declared bytes together, checked from the zip
    directory and each header before anything is inflated. `file`: an already opened file (the cache's,
    opened without following links) instead of `path`."""
    path = Path(path)
    what = what or str(path)
    with _guard(error, what), contextlib.ExitStack() as stack:
        f = file if file is not None else stack.enter_context(open_regular(path, nofollow))
        z = stack.enter_context(zipfile.ZipFile(f))
        names, infos = _members(z)
        wanted = names if keys is None else [k for k in keys if k in infos]
        total = sum(infos[k].file_size for k in wanted)
        if total > limit_bytes + 256 * len(wanted):  # headers take at most a few hundred bytes each
            raise _Bad(f"declares {_size(total)} of arrays, over the {_size(limit_bytes)} allowed here")
        out: dict[str, np.ndarray] = {}
        left = limit_bytes
        for k in wanted:
            info = infos[k]
            if info.flag_bits & 0x1:
                raise _Bad(f"member {k[:60]!r} is encrypted")
            with z.open(info) as m:
                try:
                    a = _one_npy(m, info.file_size, left, kinds, None)
                except _Bad as e:
                    raise _Bad(f"array {k[:60]!r} {e}") from None
                if m.read(1):  # reading to the end checks the member's CRC
                    raise _Bad(f"array {k[:60]!r} has bytes after its data")
            left -= a.nbytes
            out[k] = a
        return out
