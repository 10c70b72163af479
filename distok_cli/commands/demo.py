"""`distok demo` (not implemented yet)."""

from __future__ import annotations

from ..errors import NotImplementedYet


def demo() -> None:
    """Not implemented yet."""
    raise NotImplementedYet("'distok demo' is not implemented yet")
