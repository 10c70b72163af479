"""`distok sample` (not implemented yet)."""

from __future__ import annotations

from ..errors import NotImplementedYet


def sample() -> None:
    """Not implemented yet."""
    raise NotImplementedYet("'distok sample' is not implemented yet")
