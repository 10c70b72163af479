"""`distok encode` (not implemented yet)."""

from __future__ import annotations

from ..errors import NotImplementedYet


def encode() -> None:
    """Not implemented yet."""
    raise NotImplementedYet("'distok encode' is not implemented yet")
