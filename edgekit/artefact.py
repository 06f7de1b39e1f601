"""Artefact folders: written into a temporary sibling and renamed into place, so a reader (or a killed run)
only ever sees the previous complete artefact or the new complete one.

Safety rules (an output path comes from a recipe or the command line, both untrusted):
- an existing output is replaced only when edgekit made it (it holds edgekit's marker file, `manifest.json`) or it
  is empty; a symlink, a file, `/`, the home folder, the current folder or a parent of a protected folder (the
  recipe's) is refused with one line;
- one writer per output: a lock file next to it makes a second concurrent run refuse at once;
- tidying after a killed run touches only this output's own temporary folders, matched by literal name prefix;
- the new folder gets the permissions the umask gives (mkdtemp's 0700 is widened accordingly).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .errors import EdgekitError

ARTEFACT_SCHEMA_VERSION = 1
MARKER = "manifest.json"


class OutputError(EdgekitError):
    """An output folder edgekit must not write or replace."""


NAME_MAX = 255  # bytes in one file name (Linux file systems, macOS, Windows)
PATH_MAX = 4096  # bytes in a whole path (Linux)
SIBLINGS = 24  # an output folder's lock, temporary and old siblings add at most this to its name


def _shown(path: str | Path) -> str:
    text = str(path)
    return text if len(text) <= 100 else f"{text[:60]}...{text[-30:]}"


def name_problem(path: str | Path, siblings: int = 0) -> str | None:
    """Why no file system can hold `path` (a name over NAME_MAX bytes, the whole over PATH_MAX), else None; the
    last name must leave `siblings` bytes for the temporary siblings named after it. Checked before any call on
    the path: the operating system would answer ENAMETOOLONG as a traceback."""
    raw = os.fsencode(os.path.abspath(os.path.expanduser(str(path))))
    if len(raw) >= PATH_MAX - siblings:
        return f"is {len(raw):,} bytes long, over the {PATH_MAX - siblings:,} a path may have here"
    *parents, last = raw.split(b"/")
    longest = max(parents, key=len, default=b"")
    if len(longest) > NAME_MAX:
        return f"has a name of {len(longest):,} bytes, over the {NAME_MAX} a file system allows"
    if len(last) > NAME_MAX - siblings:
        limit = (
            "a file system allows" if not siblings else "an output folder may have (its temporary siblings add to it)"
        )
        return f"has a name of {len(last):,} bytes, over the {NAME_MAX - siblings} {limit}"
    return None


def writable_folder(path: str | Path, what: str) -> Path:
    """`path` (absolute) as a folder a command may create or write into, or OutputError (one line, exit 2): its
    names fit the file system, and it and the nearest of its parents that exists are folders, not files."""
    why = name_problem(path)
    if why:
        raise OutputError(f"{what} {_shown(path)} {why}", "use shorter names")
    p = Path(os.path.abspath(os.path.expanduser(str(path))))
    for q in (p, *p.parents):
        if q.exists() or q.is_symlink():
            if q == p and not q.is_dir():
                raise OutputError(f"{what} {_shown(path)} exists and is not a folder", "name a folder")
            if not q.is_dir():
                raise OutputError(f"{what} {_shown(path)}: {_shown(q)} on the way is not a folder", "name a folder")
            break
    return p


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")


def replace_file(path: Path, data: bytes) -> None:
    """Replace one file of an existing folder atomically (temporary file beside it, then rename): readers see the
    old file or the new one, never half of it. The temporary file comes from mkstemp (O_CREAT | O_EXCL: a file or
    link planted at a predictable name is never followed) and keeps the replaced file's permissions (else the
    umask's)."""
    path = Path(path)
    try:
        mode = stat.S_IMODE(os.stat(path, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        mode = 0o666 & _umask_mode()
    fd, name = tempfile.mkstemp(prefix=f".{path.name[:64]}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def private_folder_problem(folder: Path) -> str | None:
    """Why another user could change what is in `folder` (None: only this user can): it must be a real folder (not
    a symbolic link), owned by this user and writable by no one else. The one rule for every cache edgekit keeps
    (cache entries, timing caches, TensorRT and OpenVINO engine caches): a planted entry there would be trusted."""
    try:
        st = os.lstat(folder)
    except OSError as e:
        return f"cannot be read ({e.strerror})"
    if stat.S_ISLNK(st.st_mode):
        return "is a symbolic link"
    if not stat.S_ISDIR(st.st_mode):
        return "is not a folder"
    if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
        return f"is owned by another user (uid {st.st_uid})"
    if st.st_mode & 0o022:
        return f"is writable by group or others (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def make_private_levels(folder: Path) -> None:
    """Create every missing level of `folder` with mode 0700 (mkdir's `parents` would give them the umask's mode);
    a level made meanwhile by another process is fine (the caller checks it like any folder). Raises OSError."""
    for level in [*reversed(folder.parents), folder]:
        if not os.path.lexists(level):
            with contextlib.suppress(FileExistsError):
                level.mkdir(mode=0o700)


def _is_within(child: Path, parent: Path) -> bool:
    try:
        child.relative_to(parent)
        return True
    except ValueError:
        return False


def output_folder(name: str, output: str | None, base: Path, out: str | Path | None = None) -> Path:
    """The artefact folder an export of recipe `name` writes (--out, else the recipe's `output` relative to the
    recipe's folder `base`, else artefacts/<name> under the current folder), checked: never a folder edgekit does
    not own, a link, `/`, home, or the recipe's folder."""
    if out or output is None:
        final = Path(out).expanduser() if out else Path.cwd() / "artefacts" / name
    else:
        raw = Path(output).expanduser()
        final = raw if raw.is_absolute() else base / raw
    return check_output(final, protect=[base])


def check_output(final: Path, marker: str = MARKER, protect: Sequence[Path] = ()) -> Path:
    """The output folder as an absolute path, or OutputError when writing it could destroy what edgekit does not
    own. `protect`: folders that must survive (the recipe's folder): the output may be inside them, never them or
    a parent of them."""
    fix = "choose another output folder (recipe `output:` or --out)"
    why = name_problem(final, siblings=SIBLINGS)
    if why:
        raise OutputError(f"output {_shown(final)} {why}", fix)
    final = Path(os.path.expanduser(str(final)))
    final = Path(os.path.abspath(final))
    if final.is_symlink():
        raise OutputError(f"output {final} is a symbolic link; edgekit does not write through links", fix)
    try:
        resolved = final.resolve()
    except (RuntimeError, OSError):  # a symlink loop on the way
        raise OutputError(f"output {final} goes through a loop of symbolic links", fix) from None
    danger = [Path("/"), Path.home().resolve(), Path.cwd().resolve(), *(Path(p).resolve() for p in protect)]
    for d in danger:
        if resolved == d or _is_within(d, resolved):
            raise OutputError(f"output {final} is {d} or a folder above it; replacing it would delete it", fix)
    if final.exists() and not final.is_dir():
        raise OutputError(f"output {final} exists and is not a folder", fix)
    if final.is_dir() and any(final.iterdir()) and not (final / marker).is_file():
        raise OutputError(f"output {final} holds files edgekit did not write (no {marker}); it is not replaced", fix)
    parent = final.parent
    if parent.exists() and not parent.is_dir():
        raise OutputError(f"the parent of output {final} is a file, not a folder", fix)
    return final


@contextlib.contextmanager
def _lock(final: Path) -> Iterator[None]:
    lock = final.parent / f".{final.name}.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputError(
                f"another edgekit run is writing {final} right now",
                "wait for it to finish, or choose another output folder",
            ) from None
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                lock.unlink()
    finally:
        os.close(fd)


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o777 & ~mask


@contextlib.contextmanager
def atomic_folder(final: Path, marker: str = MARKER, protect: Sequence[Path] = ()) -> Iterator[Path]:
    """Yield a temporary folder next to `final`; on success it replaces `final`, on any error it is removed."""
    final = check_output(Path(final), marker, protect)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create {final.parent}: {e.strerror}", "choose a writable output folder") from None
    with _lock(final):
        _recover(final)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
        os.chmod(tmp, _umask_mode())
        try:
            yield tmp
            check_output(final, marker, protect)  # nothing foreign appeared there while we worked
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        old = None
        if final.exists():
            old = final.parent / f".{final.name}.old-{os.getpid()}"
            os.rename(final, old)
        os.rename(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _own_leftovers(final: Path, kind: str) -> list[Path]:
    """This output's temporary (`tmp`) or set-aside (`old`) folders, by literal prefix: never a glob pattern."""
    prefix = f".{final.name}.{kind}-"
    with os.scandir(final.parent) as it:
        return sorted(Path(e.path) for e in it if e.name.startswith(prefix) and e.is_dir(follow_symlinks=False))


def _recover(final: Path) -> None:
    """Tidy up after a run that was killed: its temporary folder is removed, and if it died between moving
    the previous artefact aside and moving the new one in, the previous artefact is put back."""
    olds = _own_leftovers(final, "old")
    if not final.exists() and olds:
        os.rename(olds[-1], final)
        olds = olds[:-1]
    for stale in [*olds, *_own_leftovers(final, "tmp")]:
        shutil.rmtree(stale, ignore_errors=True)


def disk_error(e: OSError, where: Path | str) -> EdgekitError | None:
    """A one-line error for a full or read-only disk, or None for other OS errors."""
    if e.errno == errno.ENOSPC:
        return OutputError(f"no space left on the disk holding {where}", "free some space and run again")
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return OutputError(f"cannot write {where}: {e.strerror}", "choose a writable folder")
    return None
