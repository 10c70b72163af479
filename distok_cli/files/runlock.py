"""One writer per run folder: an exclusive kernel lock (``flock``) on ``RUN/.distok-lock``.

The lock is held by an open file descriptor, so it dies with the process (Ctrl-C, ``kill -9``, a power
loss): the file's presence means nothing, and a stale one never blocks a later run. The file holds the
holder's pid, so a refusal can name it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from distok_cli.errors import BadInput

LOCK_NAME = ".distok-lock"


class RunLock:
    """``with RunLock(folder):`` holds the folder's lock, or refuses at once (exit 2) naming the holder."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.path = Path(folder), Path(folder) / LOCK_NAME
        self.fd: int | None = None

    def acquire(self) -> RunLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise BadInput(
                f"{self.folder} is being written by another distok process (pid {holder}); wait for it or stop it"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)  # closing the descriptor drops the lock
            self.fd = None

    def __enter__(self) -> RunLock:
        return self.acquire() if self.fd is None else self

    def __exit__(self, *exc: object) -> None:
        self.release()
