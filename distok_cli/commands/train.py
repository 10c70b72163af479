"""`distok train` (not implemented yet)."""

from __future__ import annotations

from ..errors import NotImplementedYet


def train() -> None:
    """Not implemented yet."""
    raise NotImplementedYet("'distok train' is not implemented yet")
