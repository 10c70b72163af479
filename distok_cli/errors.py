"""Typed errors. Every one carries the exit code the CLI maps it to.

Exit codes (documented in the README): 0 success, 1 the operation failed, 2 bad usage or bad input.
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
