"""`distok estimate` (not implemented yet)."""

from __future__ import annotations

from ..errors import NotImplementedYet


def estimate() -> None:
    """Not implemented yet."""
    raise NotImplementedYet("'distok estimate' is not implemented yet")
