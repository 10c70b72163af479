"""Typed errors. Every one carries the exit code the CLI maps it to.

Exit codes (documented in docs/conventions.md): 0 success, 1 the operation failed, 2 bad usage or bad input;
an interrupted training exits 128 + the signal's number (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP).
"""

from __future__ import annotations


class DistokError(Exception):
    """An error with a one-line message meant for a person."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def one_line(self) -> str:
        msg = " ".join(str(self).split())
        if self.hint:
            msg += f" ({' '.join(self.hint.split())})"
        return msg


class BadInput(DistokError):
    """The user's input (file, distribution, recipe, prompt, flag) is wrong: exit 2."""

    exit_code = 2


class InvalidTokenFile(BadInput):
    """A file is not a readable token file."""


class ModelNotAvailable(DistokError):
    """A model is neither a local folder nor in the Hugging Face cache."""


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP during training, handled like Ctrl-C (checkpoint, then exit 128 + signum)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class StoppedBySignal(DistokError):
    """Training stopped by a signal after saving its checkpoint: exit 128 + the signal's number."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum
