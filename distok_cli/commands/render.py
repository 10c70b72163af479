"""`distok render` (not implemented yet)."""

from __future__ import annotations

from ..errors import NotImplementedYet


def render() -> None:
    """Not implemented yet."""
    raise NotImplementedYet("'distok render' is not implemented yet")
