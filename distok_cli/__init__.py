"""distok: creative tokens from class distributions (DisTok, CVPR 2026).

The Python API (``distok_cli.api``; docs/api.md) is importable from here, lazily, so that ``import
distok_cli`` (and ``distok --help``) stays light::

    from distok_cli import load, Token, inject
"""

from __future__ import annotations

from typing import Any

from distok_cli._version import __version__ as __version__

__all__ = [
    "BadInput",
    "DistokError",
    "Model",
    "Rendered",
    "StoppedBySignal",
    "Sweep",
    "Token",
    "Trained",
    "inject",
    "load",
    "render",
    "rerender",
    "train",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from distok_cli import api

        return getattr(api, name)
    raise AttributeError(f"module 'distok_cli' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
