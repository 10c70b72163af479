"""Writing files safely, for every writer in distok (token files, checkpoints, runs, pages, images).

* :func:`check_target` and :func:`check_new_path` refuse a bad or existing output before any work;
* :func:`atomic_write` writes to a temporary file, fsyncs it and moves it in (exclusively, without
  ``overwrite``), so no reader ever sees half a file and no race overwrites another writer's file;
* :func:`locked` serialises read-modify-writes of one file; :func:`fsync_dir` makes moved names durable;
* :func:`write_error` turns a failed write into one line (exit 2 when the path is at fault).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from distok_cli.errors import BadInput, DistokError

_UMASK: int | None = None


def _file_mode() -> int:
    """What a plain ``open()`` would give a new file: 0o666 minus the process umask."""
    global _UMASK
    if _UMASK is None:
        _UMASK = os.umask(0o022)
        os.umask(_UMASK)
    return 0o666 & ~_UMASK


def _replaced_mode(path: Path) -> int:
    """The mode of the file ``path`` names, kept when it is replaced (``estimate --write`` must not
    change who can read a token); a new file's mode when there is none."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return _file_mode()
    return stat.S_IMODE(st.st_mode) if stat.S_ISREG(st.st_mode) else _file_mode()


def atomic_write(path: str | os.PathLike[str], data: bytes, overwrite: bool = True) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync it, then move it in.

    With ``overwrite`` the move is ``os.replace``. Without it the move is a hard link, which fails if
    ``path`` exists, so of two writers racing for one name exactly one wins and the other gets
    :class:`BadInput` (no check-then-replace window). A new file gets the mode ``open()`` would give it;
    a replaced file keeps its mode.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:64]}.", suffix=".tmp", dir=path.parent)
    except (OSError, ValueError) as exc:
        raise write_error(path, exc) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), _replaced_mode(path) if overwrite else _file_mode())
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            _move_exclusive(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise write_error(path, exc) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _move_exclusive(tmp: str, path: Path) -> None:
    """Move ``tmp`` to ``path`` only if no file has that name, atomically: a hard link fails if the name
    exists. Where hard links are not supported (exFAT, some network shares), the name is claimed with
    ``O_EXCL`` first and then replaced by the finished file."""
    try:
        try:
            os.link(tmp, path)
            return
        except FileExistsError:
            raise BadInput(f"{path} exists (use --overwrite to replace)") from None
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS):
                raise
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            raise BadInput(f"{path} exists (use --overwrite to replace)") from None
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def safe_name(text: str, limit: int = 120) -> str:
    """``text`` as one harmless file name: no folders (``/``, ``\\``), no NUL or control characters, no
    leading dot, at most ``limit`` characters; ``token`` if nothing is left."""
    name = "".join("_" if (c in "/\\" or ord(c) < 32 or c == "\x7f") else c for c in text)
    name = name.lstrip(".").strip()[:limit]
    return name or "token"


#: errno values that mean the output path itself is wrong (exit 2), not that the machine failed (exit 1)
_PATH_ERRNOS = {
    errno.ENAMETOOLONG,
    errno.EEXIST,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.ENOENT,
    errno.ELOOP,
}


def write_error(path: str | os.PathLike[str], exc: OSError | ValueError) -> DistokError:
    """One line for a failed write: :class:`BadInput` when the path is at fault, else an exit-1 error."""
    reason = getattr(exc, "strerror", None) or str(exc)
    cls = BadInput if isinstance(exc, ValueError) or getattr(exc, "errno", None) in _PATH_ERRNOS else DistokError
    return cls(f"cannot write {str(path)!r}: {reason}")


def check_target(path: str | os.PathLike[str], folder: bool = False, what: str = "-o") -> Path:
    """Refuse an output path that cannot be written, before any work is done: a NUL, a name longer than
    255 bytes, a file where a folder must be (``-o FILE`` for a folder, or a file among the parents), a
    folder where the file must go, or a read-only folder or file system."""
    text = os.fspath(path)
    if "\0" in text:
        raise BadInput(f"{what}: a path cannot contain a NUL character")
    p = Path(text)
    for part in p.parts:
        if len(os.fsencode(part)) > 255:
            raise BadInput(f"{what}: the name {part[:24]}… is longer than 255 bytes")
    if p.exists():
        if folder and not p.is_dir():
            raise BadInput(f"{what} {p}: exists and is not a folder")
        if not folder and p.is_dir():
            raise BadInput(f"{what} {p}: is a folder (give a file name)")
    for parent in ([p] if folder and p.is_dir() else []) + list(p.parents):
        if parent.exists():
            if not parent.is_dir():
                raise BadInput(f"{what} {p}: {parent} is a file, not a folder")
            # A read-only folder or file system (EROFS: even root cannot write there): refuse now, not
            # after the work; os.access asks the kernel, so it sees mount flags as well as modes.
            if not os.access(parent, os.W_OK | os.X_OK):
                raise BadInput(f"{what} {p}: {parent} is read-only")
            break
    return p


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Make the names moved into ``folder`` durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def locked(path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the file at ``path`` (waiting for another holder). Writers replace the
    file, so the lock is taken again until the path still names the locked file: two read-modify-writes of
    one token file never interleave, and nothing is left behind."""
    while True:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise write_error(path, exc) from None
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except OSError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        yield
    finally:
        os.close(fd)


def check_new_path(paths: Iterable[str | os.PathLike[str]], overwrite: bool) -> None:
    """Refuse outputs that exist, before slow work (writers check again, atomically): one line naming the
    first. Every command asks this one function, so the line is the same everywhere."""
    if overwrite:
        return
    for p in paths:
        if Path(p).exists():
            raise BadInput(f"{p} exists (use --overwrite to replace)")
